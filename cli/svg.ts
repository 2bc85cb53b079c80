/** Small hand-written SVG charts (no canvas, no dependencies): lines and stacked bars. */

const W = 560;
const H = 320;
const M = { l: 76, r: 20, t: 52, b: 44 };
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/** One row of colour-keyed names under the title, clear of the plot. */
function legend(names: string[]): string {
  let x = M.l;
  return names
    .map((n, i) => {
      const item = `<rect x="${x}" y="30" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/><text x="${x + 14}" y="39">${esc(n)}</text>`;
      x += 24 + n.length * 6.5;
      return item;
    })
    .join('\n');
}

function frame(title: string, xLabel: string, yLabel: string, body: string): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`,
    `<text x="${W / 2}" y="${H - 8}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text transform="translate(16 ${H / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
    `<line x1="${M.l}" y1="${H - M.b}" x2="${W - M.r}" y2="${H - M.b}" stroke="black"/>`,
    `<line x1="${M.l}" y1="${M.t}" x2="${M.l}" y2="${H - M.b}" stroke="black"/>`,
    body,
    '</svg>',
  ].join('\n');
}

function yTicks(max: number, y: (v: number) => number): string {
  const out: string[] = [];
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    out.push(
      `<line x1="${M.l - 4}" y1="${y(v)}" x2="${W - M.r}" y2="${y(v)}" stroke="#ddd"/><text x="${M.l - 6}" y="${y(v) + 4}" ` +
        `text-anchor="end">${+v.toPrecision(3)}</text>`,
    );
  }
  return out.join('\n');
}

export interface Series {
  name: string;
  points: Array<[number, number]>;
  dashed?: boolean;
}

export function lineChart(title: string, xLabel: string, yLabel: string, series: Series[]): string {
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const yMax = Math.max(...ys) * 1.1 || 1;
  const x = (v: number) => M.l + ((v - x0) / (x1 - x0 || 1)) * (W - M.l - M.r);
  const y = (v: number) => H - M.b - (v / yMax) * (H - M.t - M.b);
  const body = [yTicks(yMax, y)];
  for (const v of [...new Set(xs)]) body.push(`<text x="${x(v)}" y="${H - M.b + 16}" text-anchor="middle">${v}</text>`);
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const d = s.points.map(([a, b], k) => `${k ? 'L' : 'M'}${x(a).toFixed(1)},${y(b).toFixed(1)}`).join(' ');
    body.push(
      `<path d="${d}" fill="none" stroke="${c}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5,4"' : ''}/>`,
    );
    for (const [a, b] of s.points) body.push(`<circle cx="${x(a)}" cy="${y(b)}" r="3" fill="${c}"/>`);
  });
  body.push(legend(series.map((s) => s.name)));
  return frame(title, xLabel, yLabel, body.join('\n'));
}

export function stackedBars(
  title: string,
  xLabel: string,
  yLabel: string,
  bars: Array<{ label: string; parts: Record<string, number> }>,
): string {
  const keys = [...new Set(bars.flatMap((b) => Object.keys(b.parts)))];
  const yMax = Math.max(...bars.map((b) => Object.values(b.parts).reduce((a, c) => a + c, 0))) * 1.1 || 1;
  const y = (v: number) => H - M.b - (v / yMax) * (H - M.t - M.b);
  const slot = (W - M.l - M.r) / bars.length;
  const body = [yTicks(yMax, y)];
  bars.forEach((b, i) => {
    let acc = 0;
    const left = M.l + i * slot + slot * 0.2;
    keys.forEach((k, j) => {
      const v = b.parts[k] ?? 0;
      body.push(
        `<rect x="${left.toFixed(1)}" y="${y(acc + v).toFixed(1)}" width="${(slot * 0.6).toFixed(1)}" ` +
          `height="${(y(acc) - y(acc + v)).toFixed(1)}" fill="${COLORS[j % COLORS.length]}"/>`,
      );
      acc += v;
    });
    body.push(`<text x="${left + slot * 0.3}" y="${H - M.b + 16}" text-anchor="middle">${esc(b.label)}</text>`);
  });
  body.push(legend(keys));
  return frame(title, xLabel, yLabel, body.join('\n'));
}
