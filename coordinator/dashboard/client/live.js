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

  // A run that stopped before the end (a signal, a failure) may be resumed on this address:
  // the page keeps reconnecting, as after a network drop, and takes the resumed run's snapshot.
  var STOPPED_NOTE = 'The run stopped before the end; waiting for it to be resumed on this address…';
  var RETRY_MS = 2000;
  var events = null;
  function connect() {
    events = new EventSource('/events');
    events.addEventListener('snapshot', (e) => {
      run = JSON.parse(e.data);
      note.textContent = run.state === 'stopped' ? STOPPED_NOTE : '';
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
      } else if (run.state === 'stopped') note.textContent = STOPPED_NOTE;
      draw();
    });
    events.onerror = () => {
      var stopped = run && run.state === 'stopped';
      if (events.readyState !== EventSource.CLOSED) {
        note.textContent = stopped ? STOPPED_NOTE : 'Reconnecting to the coordinator…';
        return;
      }
      // The browser gave up on this stream (an error status, e.g. too many pages): a run that
      // has not finished is tried again, as the browser itself does after a network drop.
      if (run && run.state !== 'finished') {
        note.textContent = stopped ? STOPPED_NOTE : 'Reconnecting to the coordinator…';
        setTimeout(connect, RETRY_MS);
      } else note.textContent = 'Disconnected from the coordinator.';
    };
  }
  connect();
  // "last seen" counts on between updates (and after the run ends), not only when rows come.
  setInterval(draw, 5000);
})();
