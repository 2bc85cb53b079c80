/*
 * The live dashboard: the run's snapshot, then updates, over server-sent events (GET /events);
 * drawn by charts.js at most once per animation frame. Read-only: nothing is ever sent back.
 */
(() => {
  var view = window.DptrainCharts.mount(document.getElementById('app'), { live: true });
  var run = null;
  var MAX_ROWS = 20000;
  var KEEP_TAIL = 1000;
  var drawPending = false;
  var note = document.getElementById('connection');

  // Redraw at most this often: a page on the coordinator's machine takes CPU from training.
  var MIN_DRAW_MS = 500;
  var lastDraw = 0;
  function draw() {
    if (drawPending || !run || document.hidden) return; // a hidden tab draws when shown again
    drawPending = true;
    setTimeout(
      () => {
        requestAnimationFrame(() => {
          drawPending = false;
          lastDraw = performance.now();
          view.update([run]);
        });
      },
      Math.max(0, lastDraw + MIN_DRAW_MS - performance.now()),
    );
  }

  function lastOf(xs, key) {
    return xs.length ? xs[xs.length - 1][key] : -Infinity;
  }

  document.addEventListener('visibilitychange', draw);

  var events = new EventSource('/events');
  events.addEventListener('snapshot', (e) => {
    run = JSON.parse(e.data);
    note.textContent = '';
    draw();
  });
  events.addEventListener('update', (e) => {
    if (!run) return;
    var u = JSON.parse(e.data);
    // The snapshot may already hold rows that were pending when it was taken.
    u.steps.forEach((s) => {
      if (s.step > lastOf(run.steps, 'step')) run.steps.push(s);
    });
    u.evals.forEach((x) => {
      if (x.step > lastOf(run.evals, 'step')) run.evals.push(x);
    });
    u.warnings.forEach((w) => {
      if (w.seq > lastOf(run.warnings, 'seq')) run.warnings.push(w);
    });
    if (run.warnings.length > 100) run.warnings.splice(0, run.warnings.length - 100);
    // As the server does (view.ts thin): past MAX_ROWS, older rows at half the resolution.
    if (run.steps.length > MAX_ROWS) {
      var head = run.steps.length - KEEP_TAIL;
      run.steps = run.steps
        .slice(0, head)
        .filter((_, i) => i % 2 === 0)
        .concat(run.steps.slice(head));
    }
    if (u.workers) run.workers = u.workers;
    if (u.summary) run.summary = u.summary;
    run.state = u.state;
    if (run.state === 'finished') {
      events.close();
      note.textContent = 'The run has finished; the coordinator has stopped serving.';
    }
    draw();
  });
  events.onerror = () => {
    if (events.readyState === EventSource.CLOSED) note.textContent = 'Disconnected from the coordinator.';
    else note.textContent = 'Reconnecting to the coordinator…';
  };
})();
