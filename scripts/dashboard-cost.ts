/**
 * What an open dashboard costs the training loop, in the step timeline. Runs the same local job
 * (`dptrain train`) under three conditions, interleaved over rounds in a rotating order:
 *   none     nobody watching
 *   stream   a client reading GET /events (the server-side cost alone: rows, JSON, sockets)
 *   browser  the page open in headless chromium (adds the browser's own CPU on this machine)
 * and reports, per condition, the medians over rounds of each run's median step time, samples/s
 * and timeline entries, and the ratio to `none` within each round (this machine is noisy:
 * compare ratios, not absolute times).
 * Usage: node dist/scripts/dashboard-cost.js [--rounds N] [--steps N] [--config FILE] [--out FILE]
 * The browser condition needs chromium (DPTRAIN_CHROMIUM, default /usr/bin/chromium).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { median, TIMELINE_KEYS, type RunSummary } from '../coordinator/summary.js';

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const CONDITIONS = ['none', 'stream', 'browser'] as const;
type Condition = (typeof CONDITIONS)[number];

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

interface Measured {
  condition: Condition;
  round: number;
  medianStepMs: number;
  samplesPerSec: number;
  timeline: Record<string, number>;
  /** Bytes the watcher received over the run (0 for none). */
  streamBytes: number;
}

/** Read /events until the stream ends; resolves with the bytes read. */
async function watchStream(url: string): Promise<number> {
  const res = await fetch(`${url}events`);
  const reader = res.body!.getReader();
  let bytes = 0;
  for (;;) {
    const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
    if (done) return bytes;
    bytes += value!.length;
  }
}

async function runOnce(condition: Condition, round: number, browser: Browser | null, job: string, steps: number): Promise<Measured> {
  const out = mkdtempSync(join(tmpdir(), `dptrain-dashcost-${condition}-`));
  const proc = spawn(process.execPath, [CLI, 'train', '-c', job, '--steps', String(steps), '--workers', '2', '--checkpoint-every', '0', '--out', out], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  let watching: Promise<number> | null = null;
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d: string) => {
    err += d;
    const m = /dashboard url=(\S+)/.exec(err);
    if (m && !watching && condition !== 'none') {
      if (condition === 'stream') watching = watchStream(m[1]);
      else
        watching = (async () => {
          const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
          await page.goto(m[1]);
          await new Promise((r) => proc.once('exit', r));
          await page.close();
          return 0;
        })();
    }
  });
  const code = await new Promise<number | null>((r) => proc.once('exit', r));
  if (code !== 0) throw new Error(`dptrain train (${condition}) exited ${code}:\n${err}`);
  const streamBytes = (await watching) ?? 0;
  const s = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as RunSummary;
  const timeline: Record<string, number> = {};
  for (const k of TIMELINE_KEYS) timeline[k] = s.timeline[k].median;
  return { condition, round, medianStepMs: s.medianStepMs ?? NaN, samplesPerSec: s.samplesPerSec ?? NaN, timeline, streamBytes };
}

async function main(): Promise<void> {
  const rounds = Number(arg('--rounds', '4'));
  const steps = Number(arg('--steps', '500'));
  const job = arg('--config', fileURLToPath(new URL('../../examples/spirals.json', import.meta.url)));
  const outFile = arg('--out', 'dashboard-cost.json');
  const exe = process.env.DPTRAIN_CHROMIUM ?? '/usr/bin/chromium';
  const browser = existsSync(exe) ? await chromium.launch({ executablePath: exe, args: ['--headless=new', '--no-sandbox'] }) : null;
  const conditions = CONDITIONS.filter((c) => c !== 'browser' || browser);
  if (!browser) process.stderr.write(`dashboard-cost: no chromium at ${exe}; measuring without the browser condition\n`);
  const runs: Measured[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      // Rotate the order so no condition always runs first (warm caches, other load).
      const order = conditions.map((_, i) => conditions[(i + r) % conditions.length]);
      for (const c of order) {
        const m = await runOnce(c, r, browser, job, steps);
        runs.push(m);
        process.stderr.write(`round ${r + 1}/${rounds} ${c.padEnd(7)} median step ${m.medianStepMs.toFixed(2)} ms, ${m.samplesPerSec.toFixed(0)} samples/s, overhead ${m.timeline.overheadMs.toFixed(2)} ms\n`);
      }
    }
  } finally {
    await browser?.close();
  }
  const of = (c: Condition) => runs.filter((m) => m.condition === c);
  const ratio = (c: Condition, f: (m: Measured) => number) =>
    median(of(c).map((m) => f(m) / f(runs.find((n) => n.condition === 'none' && n.round === m.round)!)));
  const keys: Array<[string, (m: Measured) => number]> = [
    ['median step (ms)', (m) => m.medianStepMs],
    ['samples/s', (m) => m.samplesPerSec],
    ...TIMELINE_KEYS.map((k): [string, (m: Measured) => number] => [`${k}`, (m) => m.timeline[k]]),
  ];
  const lines = [
    `| median over ${rounds} rounds | ${conditions.join(' | ')} | ${conditions.filter((c) => c !== 'none').map((c) => `${c} ÷ none`).join(' | ')} |`,
    `| --- | ${conditions.map(() => '---:').join(' | ')} | ${conditions.filter((c) => c !== 'none').map(() => '---:').join(' | ')} |`,
    ...keys.map(([name, f]) => `| ${name} | ${conditions.map((c) => (median(of(c).map(f)) ?? NaN).toFixed(name === 'samples/s' ? 0 : 2)).join(' | ')} | ${conditions.filter((c) => c !== 'none').map((c) => (ratio(c, f) ?? NaN).toFixed(3)).join(' | ')} |`),
  ];
  writeFileSync(outFile, JSON.stringify({ rounds, steps, job, runs }, null, 2) + '\n');
  process.stdout.write(lines.join('\n') + `\n\nruns written to ${outFile}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`dashboard-cost: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
