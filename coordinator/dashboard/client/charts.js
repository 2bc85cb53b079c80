/*
 * Draws runs (RunView, coordinator/dashboard/view.ts) into a page with uPlot: the live
 * dashboard (one run, updated from server-sent events) and `dptrain report` (several finished
 * runs overlaid), from the pieces in widgets.js (loaded first). Plain browser JavaScript, no
 * build step; exposes window.DptrainCharts.
 */
(() => {
  var COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
  var { PARTS, PART_COLORS, el, si, pct, duration, last, median, LineChart, breakdownBars, table } =
    window.DptrainWidgets;

  /** Flatten a config into dotted paths (arrays by index) for the differences table. */
  function flatten(obj, prefix, out) {
    out = out || {};
    if (obj !== null && typeof obj === 'object') {
      var keys = Object.keys(obj);
      if (!keys.length) out[prefix] = Array.isArray(obj) ? '[]' : '{}';
      keys.forEach((k) => {
        flatten(obj[k], prefix ? prefix + '.' + k : k, out);
      });
    } else out[prefix] = JSON.stringify(obj);
    return out;
  }

  function configDiff(runs) {
    var flat = runs.map((r) => flatten(r.config || {}, ''));
    var keys = {};
    flat.forEach((f) => {
      Object.keys(f).forEach((k) => {
        keys[k] = true;
      });
    });
    return Object.keys(keys)
      .sort()
      .filter((k) => flat.some((f) => f[k] !== flat[0][k]))
      .map((k) => [k].concat(flat.map((f) => (f[k] === undefined ? '(absent)' : f[k]))));
  }

  // [label, value of a summary, and whether a stopped run's metrics.jsonl gives it (view.ts DerivedSummary)].
  var SUMMARY_ROWS = [
    ['steps', (s) => s.steps, true],
    ['stopped by', (s) => s.stoppedBy],
    ['workers', (s) => s.workers],
    ['backend', (s) => s.backend],
    ['global batch', (s) => s.batchSize + (s.accumulate > 1 ? ' × ' + s.accumulate : '')],
    ['parameters', (s) => si(s.params)],
    ['final loss', (s) => (s.finalLoss === null ? '–' : s.finalLoss.toPrecision(4)), true],
    ['test accuracy', (s) => pct(s.testAccuracy), true],
    ['samples/s (median)', (s) => si(s.samplesPerSec), true],
    ['median step', (s) => (s.medianStepMs === null ? '–' : s.medianStepMs.toFixed(1) + ' ms'), true],
    ['model FLOP/s', (s) => si(s.modelFlopsPerSec), true],
    ['MFU', (s) => pct(s.mfu), true],
    ['model FLOPs', (s) => si(s.totalFlops), true],
    ['budget used', (s) => pct(s.budgetUsed), true],
    ['step overhead', (s) => pct(s.timeline?.overheadShare), true],
    ['wire dtype', (s) => s.wireDtype],
    ['bytes per step', (s) => si(s.wireBytesPerStep), true],
    // After a resume summary.json's wall time is the last session's (summary.ts resumedAt).
    [
      'wall time',
      (s) => duration(s.wallSeconds) + (s.resumedAt ? ' (since the resume after step ' + s.resumedAt + ')' : ''),
    ],
    [
      'stale / reassigned / recomputed shards',
      (s) => s.staleResults + ' / ' + s.reassignedShards + ' / ' + s.recomputedShards,
    ],
    ['dropped workers', (s) => s.droppedWorkers],
  ];

  /** A summary table cell: summary.json's, else what a stopped run's metrics.jsonl gives. */
  function summaryCell(row, r) {
    if (r.summary) return row[1](r.summary);
    if (!r.derived) return '(no summary.json)';
    if (row[0] === 'stopped by') return 'stopped before the end (figures from metrics.jsonl)';
    return row[2] ? row[1](r.derived) : '–';
  }

  /**
   * Mount the view into `root`. opts.live: one run that grows (status line, workers, latest
   * step's breakdown); otherwise a report of finished runs (summary and config side by side),
   * under opts.heading when given (report --title).
   */
  function mount(root, opts) {
    opts = opts || {};
    var header = el('div', { class: 'status' });
    var budget = el('div', { class: 'budget' });
    var grid = el('div', { class: 'grid' });
    var breakdown = el('section', {}, []);
    var tables = el('section', {});
    root.appendChild(header);
    root.appendChild(budget);
    root.appendChild(grid);
    root.appendChild(breakdown);
    root.appendChild(tables);
    var charts = {
      loss: new LineChart(grid, 'loss', 'Loss', 'step', 'loss'),
      accuracy: new LineChart(grid, 'accuracy', 'Test accuracy', 'step', 'accuracy', { yMax: 1 }),
      throughput: new LineChart(grid, 'throughput', 'Throughput', 'time in steps (s)', 'samples/s'),
      tokens: new LineChart(grid, 'tokens', 'Tokens per second', 'time in steps (s)', 'tokens/s'),
      mfu: new LineChart(grid, 'mfu', 'Model FLOPs utilization', 'time in steps (s)', 'MFU'),
      timeline: new LineChart(grid, 'timeline', 'Step time, stacked', 'step', 'ms'),
    };
    window.dptrain = { charts: charts, runs: [] };

    function update(runs) {
      window.dptrain.runs = runs;
      var name = (r, what) => (runs.length > 1 ? r.name + (what ? ' ' + what : '') : what || r.name);
      var color = (i) => COLORS[i % COLORS.length];
      var col = (rows, k) => rows.map((r) => r[k]);
      charts.loss.set(
        runs.flatMap((r, i) => [
          { label: name(r, 'train'), x: col(r.steps, 'step'), y: col(r.steps, 'loss'), color: color(i) },
          { label: name(r, 'test'), x: col(r.evals, 'step'), y: col(r.evals, 'testLoss'), color: color(i), dash: true },
        ]),
      );
      charts.accuracy.set(
        runs.map((r, i) => {
          var ev = r.evals.filter((e) => e.testAccuracy !== null);
          return { label: name(r), x: col(ev, 'step'), y: col(ev, 'testAccuracy'), color: color(i) };
        }),
      );
      charts.throughput.set(
        runs.map((r, i) => ({
          label: name(r),
          x: col(r.steps, 't'),
          y: col(r.steps, 'samplesPerSec'),
          color: color(i),
        })),
      );
      charts.tokens.set(
        runs.map((r, i) => {
          var rows = r.steps.filter((s) => typeof s.tokensPerSec === 'number');
          return { label: name(r), x: col(rows, 't'), y: col(rows, 'tokensPerSec'), color: color(i) };
        }),
      );
      charts.mfu.set(
        runs.map((r, i) => {
          var rows = r.steps.filter((s) => s.mfu !== null);
          return { label: name(r), x: col(rows, 't'), y: col(rows, 'mfu'), color: color(i) };
        }),
      );
      // Stacked: each line is the sum of the parts up to it, drawn from the top down so each
      // fill covers only its own band.
      var one = runs.length === 1 ? runs[0] : null;
      charts.timeline.set(
        one
          ? PARTS.map((p, k) => ({
              label: p,
              x: col(one.steps, 'step'),
              y: one.steps.map((s) => {
                var acc = 0;
                for (var j = 0; j <= k; j++) acc += s.parts[j];
                return acc;
              }),
              color: PART_COLORS[k],
              fill: PART_COLORS[k],
            })).reverse()
          : [],
      );

      header.textContent = '';
      budget.textContent = '';
      breakdown.textContent = '';
      tables.textContent = '';
      if (opts.live && one) drawLive(one);
      else drawReport(runs);
      breakdown.insertBefore(el('h2', { text: 'Where a step goes' }), breakdown.firstChild);
      breakdownBars(
        breakdown,
        runs.flatMap((r) => {
          var bars = [];
          var recent = r.steps.slice(-50);
          if (opts.live && recent.length)
            bars.push({ label: 'last step (' + last(recent).step + ')', parts: last(recent).parts });
          if (recent.length) {
            var rows = opts.live ? recent : r.steps.slice(Math.min(20, Math.floor(r.steps.length / 10)));
            // Each part's own median: their sum is not the median step (the summary's), so it is not called that.
            bars.push({
              label: name(r, opts.live ? 'per-part medians of the last ' + recent.length : 'per-part medians'),
              total: 'sum',
              parts: PARTS.map((_, k) => median(rows.map((s) => s.parts[k]))),
            });
          }
          return bars;
        }),
      );
    }

    function drawLive(r) {
      var s = last(r.steps);
      var ev = last(r.evals);
      var state =
        r.state === 'finished'
          ? 'finished'
          : r.state === 'stopped'
            ? 'stopped before the end'
            : r.state === 'training'
              ? 'training'
              : 'waiting for workers';
      header.appendChild(el('h1', { text: 'dptrain · ' + r.name }));
      header.appendChild(
        el('p', { class: 'facts' }, [
          el('span', { 'data-field': 'state', text: state }),
          el('span', { 'data-field': 'step', text: 'step ' + (s ? s.step : 0) + ' of ' + r.totalSteps }),
          el('span', { 'data-field': 'loss', text: 'loss ' + (s ? s.loss.toPrecision(4) : '–') }),
          el('span', { text: 'test accuracy ' + (ev ? pct(ev.testAccuracy) : '–') }),
          el('span', { text: (s ? si(s.samplesPerSec) : '–') + ' samples/s' }),
          el('span', { text: 'MFU ' + (s ? pct(s.mfu) : '–') }),
        ]),
      );
      drawBudget(r, s);
      tables.appendChild(el('h2', { text: 'Workers' }));
      tables.appendChild(
        table(
          [
            'name',
            'host',
            'backend',
            'adapter',
            'declared FLOP/s',
            'measured FLOP/s',
            'achieved FLOP/s',
            'state',
            'last seen',
            'shards done',
            'stale',
            'recomputed',
          ],
          r.workers.map((w) => [
            w.name + ' (' + w.id + ')',
            w.host,
            w.backend,
            w.adapter || '–',
            si(w.declaredFlops),
            si(w.measuredFlops),
            si(w.achievedFlops),
            w.state,
            lastSeen(w),
            w.shardsDone,
            w.staleShards,
            w.recomputedShards,
          ]),
          'workers',
        ),
      );
      drawWarnings([r]);
    }

    /** Age of the last frame (redrawn every few seconds, so it counts on), with the time of day once it has gone. */
    function lastSeen(w) {
      var ago = duration((Date.now() - w.lastSeen) / 1000) + ' ago';
      return w.state === 'gone' ? new Date(w.lastSeen).toLocaleTimeString() + ' (' + ago + ')' : ago;
    }

    function drawBudget(r, s, label) {
      if (r.budget === null || !s) return;
      var used = s.budgetUsed || 0;
      var eta = r.state === 'finished' || r.state === 'stopped' ? null : s.budgetEtaSec;
      budget.appendChild(el('h2', { text: 'Compute budget' + (label ? ' · ' + label : '') }));
      budget.appendChild(
        el('div', { class: 'meter' }, [el('span', { style: 'width:' + Math.min(100, used * 100).toFixed(2) + '%' })]),
      );
      budget.appendChild(
        el('p', {
          text:
            si(s.cumulativeFlops) +
            'FLOPs of ' +
            si(r.budget) +
            'FLOPs used (' +
            pct(used) +
            ')' +
            (eta === null
              ? ''
              : eta <= 0
                ? '; spent'
                : '; at the current rate it runs out in ' +
                  duration(eta) +
                  ', at ' +
                  new Date(Date.now() + eta * 1000).toLocaleString()),
        }),
      );
    }

    function drawWarnings(runs) {
      var rows = runs.flatMap((r) => r.warnings.map((w) => [runs.length > 1 ? r.name : null, w]));
      tables.appendChild(el('h2', { text: 'Recent warnings' }));
      if (!rows.length) {
        tables.appendChild(el('p', { text: 'none' }));
        return;
      }
      tables.appendChild(
        el(
          'ul',
          { class: 'warnings' },
          rows
            .slice(-50)
            .reverse()
            .map((x) => {
              var w = x[1];
              return el('li', { class: w.level }, [
                new Date(w.time).toLocaleTimeString() + ' ' + (x[0] ? x[0] + ': ' : '') + w.msg,
              ]);
            }),
        ),
      );
    }

    function drawReport(runs) {
      header.appendChild(el('h1', { text: opts.heading || 'dptrain report · ' + runs.map((r) => r.name).join(', ') }));
      runs.forEach((r) => {
        var s = last(r.steps);
        if (r.budget !== null && s) drawBudget(r, s, r.name);
      });
      tables.appendChild(el('h2', { text: 'Summary' }));
      tables.appendChild(
        table(
          [''].concat(runs.map((r) => r.name)),
          SUMMARY_ROWS.map((row) => [row[0]].concat(runs.map((r) => summaryCell(row, r)))),
          'summary',
        ),
      );
      tables.appendChild(el('h2', { text: 'Config differences' }));
      var diff = configDiff(runs);
      if (runs.length < 2) tables.appendChild(el('p', { text: 'one run: nothing to compare' }));
      else if (!diff.length) tables.appendChild(el('p', { text: 'the runs have the same config' }));
      else tables.appendChild(table(['field'].concat(runs.map((r) => r.name)), diff, 'config-diff'));
      drawWarnings(runs);
    }

    return { update: update };
  }

  window.DptrainCharts = { mount: mount, configDiff: configDiff };
})();
