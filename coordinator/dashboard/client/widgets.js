/*
 * The pieces the dashboard pages are drawn with: DOM elements, number formats, a uPlot line
 * chart, the step breakdown bars and tables. Plain browser JavaScript, no build step, loaded
 * before charts.js (which lays them out into a page); exposes window.DptrainWidgets.
 */
(() => {
  var PARTS = ['compute', 'encode/decode', 'wire', 'optimizer', 'reduce and idle'];
  var PART_COLORS = ['#4c78a8', '#f58518', '#54a24b', '#b279a2', '#bab0ac'];

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'style') e.style.cssText = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    (children || []).forEach((c) => {
      if (c) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return e;
  }

  /** 1234567 → "1.23 M"; null/NaN → "–". */
  function si(x, digits) {
    if (x === null || x === undefined || !Number.isFinite(x)) return '–';
    var units = [
      [1e15, 'P'],
      [1e12, 'T'],
      [1e9, 'G'],
      [1e6, 'M'],
      [1e3, 'k'],
    ];
    for (var i = 0; i < units.length; i++)
      if (Math.abs(x) >= units[i][0]) return (x / units[i][0]).toPrecision(digits || 3) + ' ' + units[i][1];
    return Math.abs(x) >= 100 || x === 0 ? x.toFixed(0) : x.toPrecision(digits || 3);
  }
  function pct(x) {
    return x === null || x === undefined || !Number.isFinite(x) ? '–' : (x * 100).toFixed(1) + '%';
  }
  function duration(sec) {
    if (sec === null || sec === undefined || !Number.isFinite(sec)) return '–';
    if (sec < 90) return sec.toFixed(0) + ' s';
    if (sec < 5400) return (sec / 60).toFixed(0) + ' min';
    if (sec < 172800) return (sec / 3600).toFixed(1) + ' h';
    return (sec / 86400).toFixed(1) + ' days';
  }
  function last(xs) {
    return xs.length ? xs[xs.length - 1] : undefined;
  }
  function median(xs) {
    if (!xs.length) return null;
    var s = xs.slice().sort((a, b) => a - b);
    var m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  }

  /**
   * One uPlot line chart; series: [{label, x: [], y: [], dash}] on possibly different x values.
   * opts.yMax: the y axis never goes above it (an accuracy's 1).
   */
  function LineChart(parent, key, title, xLabel, yLabel, opts) {
    this.box = el('div', { class: 'chart', 'data-chart': key });
    parent.appendChild(this.box);
    this.title = title;
    this.xLabel = xLabel;
    this.yLabel = yLabel;
    this.yMax = opts && opts.yMax !== undefined ? opts.yMax : null;
    this.plot = null;
    this.labels = '';
  }
  LineChart.prototype.set = function (series) {
    var visible = series.filter((s) => s.x.length > 0);
    this.box.style.display = visible.length ? '' : 'none';
    if (!visible.length) return;
    var labels = visible.map((s) => s.label).join('\u0000');
    var data = visible.length === 1 ? [visible[0].x, visible[0].y] : uPlot.join(visible.map((s) => [s.x, s.y]));
    if (this.plot && labels === this.labels) {
      this.plot.setData(data);
      return;
    }
    if (this.plot) this.plot.destroy();
    this.labels = labels;
    var width = Math.max(320, this.box.clientWidth || 480);
    this.plot = new uPlot(
      {
        title: this.title,
        width: width,
        height: 240,
        scales: {
          x: { time: false, range: xRange },
          y: yRange(this.yMax),
        },
        axes: [{ label: this.xLabel }, { label: this.yLabel, size: 60, values: (_u, vals) => vals.map((v) => si(v)) }],
        series: [{ label: this.xLabel }].concat(
          visible.map((s) => ({
            label: s.label,
            stroke: s.color,
            width: 1.5,
            spanGaps: true,
            dash: s.dash ? [6, 4] : undefined,
            fill: s.fill,
            points: { show: s.x.length < 60 },
          })),
        ),
      },
      data,
      this.box,
    );
  };

  /** One x value (a single evaluation): a step either side, where uPlot would run from 0 to twice it. */
  function xRange(u, min, max) {
    var xs = u.data[0];
    return xs.length && xs[0] === xs[xs.length - 1] ? [xs[0] - 1, xs[0] + 1] : [min, max];
  }

  /** A y scale capped at `max` (null: uPlot's own), padded a little, and at least a little tall. */
  function yRange(max) {
    if (max === null) return {};
    return {
      range: (_u, lo, hi) => {
        var pad = Math.max((hi - lo) * 0.05, max * 0.02);
        return [Math.max(0, Math.min(lo, hi) - pad), Math.min(max, Math.max(lo, hi) + pad)];
      },
    };
  }

  /**
   * Horizontal stacked bars of the step's critical path, one bar per label, each as long as its
   * total against the longest (so runs compare by length). b.total 'sum': the parts are
   * separate medians, and the label says their figure is a sum.
   */
  function breakdownBars(parent, bars) {
    var box = el('div', { class: 'breakdown' });
    var sums = bars.map((b) => b.parts.reduce((a, c) => a + c, 0));
    var longest = Math.max.apply(null, sums.concat([0])) || 1;
    bars.forEach((b, n) => {
      var total = sums[n] || 1;
      var bar = el('div', { class: 'bar' }, [
        el(
          'div',
          { class: 'fill', style: 'width:' + ((100 * sums[n]) / longest).toFixed(2) + '%' },
          b.parts.map((ms, i) =>
            el('span', {
              style: 'width:' + ((100 * ms) / total).toFixed(2) + '%;background:' + PART_COLORS[i],
              title: PARTS[i] + ': ' + ms.toFixed(1) + ' ms',
            }),
          ),
        ),
      ]);
      box.appendChild(
        el('div', { class: 'bar-row' }, [
          el('span', {
            class: 'bar-label',
            text: b.label + ' (' + (b.total === 'sum' ? 'sum ' : '') + sums[n].toFixed(1) + ' ms)',
          }),
          bar,
        ]),
      );
    });
    box.appendChild(
      el(
        'div',
        { class: 'legend' },
        PARTS.map((p, i) => el('span', {}, [el('i', { style: 'background:' + PART_COLORS[i] }), p])),
      ),
    );
    parent.appendChild(box);
  }

  function table(headers, rows, cls) {
    return el('table', { class: cls || '' }, [
      el('thead', {}, [
        el(
          'tr',
          {},
          headers.map((h) => el('th', { text: h })),
        ),
      ]),
      el(
        'tbody',
        {},
        rows.map((r) =>
          el(
            'tr',
            {},
            r.map((c) => el('td', { text: String(c) })),
          ),
        ),
      ),
    ]);
  }

  window.DptrainWidgets = {
    PARTS: PARTS,
    PART_COLORS: PART_COLORS,
    el: el,
    si: si,
    pct: pct,
    duration: duration,
    last: last,
    median: median,
    LineChart: LineChart,
    breakdownBars: breakdownBars,
    table: table,
  };
})();
