/**
 * The HTML around the charts: the live page (scripts served from the coordinator, so its
 * Content-Security-Policy allows no inline script), the login form, and the self-contained
 * report (uPlot, the chart code, the styles and the runs' data inlined: it opens with no
 * network). The browser code lives in client/ next to this file and ships with the package.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunView } from './view.js';

/** The package root (holds package.json), from here in the sources or in dist/. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('dptrain: cannot find the package root for the dashboard assets');
    dir = up;
  }
  return dir;
}

const require = createRequire(import.meta.url);

/** Files a page loads, by the name it asks for. */
export const ASSETS: Record<string, { file: () => string; type: string }> = {
  'uplot.js': { file: () => require.resolve('uplot/dist/uPlot.iife.min.js'), type: 'text/javascript' },
  'uplot.css': { file: () => require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css' },
  'widgets.js': { file: () => join(packageRoot(), 'coordinator/dashboard/client/widgets.js'), type: 'text/javascript' },
  'charts.js': { file: () => join(packageRoot(), 'coordinator/dashboard/client/charts.js'), type: 'text/javascript' },
  'live.js': { file: () => join(packageRoot(), 'coordinator/dashboard/client/live.js'), type: 'text/javascript' },
  'dashboard.css': { file: () => join(packageRoot(), 'coordinator/dashboard/client/dashboard.css'), type: 'text/css' },
};

const cache = new Map<string, string>();
export function asset(name: string): string {
  let text = cache.get(name);
  if (text === undefined) {
    text = readFileSync(ASSETS[name].file(), 'utf8');
    cache.set(name, text);
  }
  return text;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** JSON safe inside a <script> element (no "</script>", no "<!--"). */
const scriptJson = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c');

export function livePage(title: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>${esc(title)} · dptrain</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/assets/uplot.css"><link rel="stylesheet" href="/assets/dashboard.css">
</head><body>
<p id="connection">Connecting to the coordinator…</p>
<div id="app"></div>
<script src="/assets/uplot.js"></script><script src="/assets/widgets.js"></script><script src="/assets/charts.js"></script>
<script src="/assets/live.js"></script>
</body></html>
`;
}

export function loginPage(error: string | null): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>dptrain · sign in</title>
<link rel="stylesheet" href="/assets/dashboard.css"></head><body>
<form class="login" method="post" action="/login">
<h1>dptrain dashboard</h1>
<p>This coordinator listens beyond this machine: enter the job token (the one workers use) to see the run.</p>
${error ? `<p class="error">${esc(error)}</p>` : ''}
<input type="password" name="token" autocomplete="current-password" autofocus required aria-label="job token">
<button type="submit">Open the dashboard</button>
</form></body></html>
`;
}

/**
 * One self-contained HTML file: the runs drawn as the live page draws them, overlaid, with the
 * summaries side by side and the config differences; `extra` is more HTML placed after the
 * charts (e.g. the scaling table and plots of `dptrain scale`); `heading`, the page's visible
 * title when given (report --title), else one naming the runs.
 */
export function reportPage(title: string, runs: RunView[], extra = '', heading?: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>${asset('uplot.css')}</style><style>${asset('dashboard.css')}</style>
</head><body>
<div id="app"></div>
${extra}
<script id="runs" type="application/json">${scriptJson(runs)}</script>
<script>${asset('uplot.js')}</script>
<script>${asset('widgets.js')}</script>
<script>${asset('charts.js')}</script>
<script>DptrainCharts.mount(document.getElementById('app'), { live: false, heading: ${scriptJson(heading ?? null)} }).update(JSON.parse(document.getElementById('runs').textContent));</script>
</body></html>
`;
}
