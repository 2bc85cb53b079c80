/**
 * What an open dashboard costs the training loop, in the step timeline. Runs the same local job
 * (`dptrain train`) under three conditions, interleaved over rounds in a rotating order:
 *   none     nobody watching
 *   stream   a client reading GET /events (the server-side cost alone: rows, JSON, sockets)
 *   browser  the page open in headless chromium (adds the browser's own CPU on this machine)
 * and reports, per condition, the medians over rounds of each run's median step time, samples/s
 * and timeline entries, and the ratio to `none` within each round (this machine is noisy:
 * compare ratios, not absolute times). For each run it also reads the coordinator process's own
 * CPU time (/proc, sampled until it exits) and the browser's CPU time over the run. Then it
 * replays a run's metrics.jsonl through the dashboard's live state in this process, with and
 * without a page's event stream attached, and times what the loop itself executes per step.
 * Usage: node dist/scripts/dashboard-cost.js [--rounds N] [--steps N] [--config FILE] [--out FILE]
 * The browser condition needs chromium (DPTRAIN_CHROMIUM, default /usr/bin/chromium).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { LiveRun, FLUSH_MS } from '../coordinator/dashboard/live.js';
import type { StepRecord } from '../coordinator/summary.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { TIMELINE_KEYS, type RunSummary } from '../coordinator/summary.js';
import { median } from '../shared/util/stats.js';

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
  /** CPU ms of the coordinator process per step, and of the browser over the whole run. */
  coordinatorCpuMsPerStep: number;
  browserCpuMs: number;
  runDir: string;
}

/** Linux clock ticks per second (USER_HZ), as /proc/<pid>/stat counts. */
const TICK_MS = 10;

/** utime + stime of a process in ms, or null once it is gone. */
function cpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * TICK_MS; // fields 14 and 15 of stat(5)
  } catch {
    return null;
  }
}

/**
 * CPU ms of the browser's processes: every process whose program is chromium (/usr/bin/chromium
 * is a wrapper; the processes run /usr/lib/chromium/chromium), or the given executable.
 */
function cpuOfExecutable(exe: string): number {
  let sum = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv0 = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0')[0];
      if (argv0 !== exe && !/\/chromium$/.test(argv0)) continue;
    } catch {
      continue;
    }
    sum += cpuMs(Number(d)) ?? 0;
  }
  return sum;
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

async function runOnce(
  condition: Condition,
  round: number,
  browser: Browser | null,
  exe: string,
  job: string,
  steps: number,
): Promise<Measured> {
  const out = mkdtempSync(join(tmpdir(), `dptrain-dashcost-${condition}-`));
  const proc = spawn(
    process.execPath,
    [CLI, 'train', '-c', job, '--steps', String(steps), '--workers', '2', '--checkpoint-every', '0', '--out', out],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  let watching: Promise<number> | null = null;
  const browserCpu0 = browser ? cpuOfExecutable(exe) : 0;
  let coordCpu = 0;
  const sampler = setInterval(() => {
    coordCpu = cpuMs(proc.pid!) ?? coordCpu;
  }, 100);
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
  clearInterval(sampler);
  const browserCpuMs = browser ? cpuOfExecutable(exe) - browserCpu0 : 0;
  if (code !== 0) throw new Error(`dptrain train (${condition}) exited ${code}:\n${err}`);
  const streamBytes = (await watching) ?? 0;
  const s = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as RunSummary;
  const timeline: Record<string, number> = {};
  for (const k of TIMELINE_KEYS) timeline[k] = s.timeline[k].median;
  return {
    condition,
    round,
    medianStepMs: s.medianStepMs ?? NaN,
    samplesPerSec: s.samplesPerSec ?? NaN,
    timeline,
    streamBytes,
    coordinatorCpuMsPerStep: coordCpu / steps,
    browserCpuMs,
    runDir: out,
  };
}

/**
 * What the training loop itself executes for the dashboard per step: the run's records replayed
 * through LiveRun (the onStep hook, and the flush that encodes and writes an update, once per
 * FLUSH_MS of the run's own step time), with and without a page's stream attached. Only the
 * synchronous calls are timed: that is what the loop waits for.
 */
async function loopCost(
  records: StepRecord[],
  repeat: number,
): Promise<{ withoutUs: number; withUs: number; rowsPerFlush: number }> {
  const stepMs = median(records.map((r) => r.stepMs)) ?? 1;
  const rowsPerFlush = Math.max(1, Math.round(FLUSH_MS / stepMs));
  const timeIt = async (attach: boolean): Promise<number> => {
    const run = new LiveRun('bench', {}, records.length * repeat);
    const server = createServer((_req, res) => run.subscribe(res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    let reading: Promise<number> | null = null;
    if (attach) {
      reading = watchStream(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      while (run.clientCount === 0) await new Promise((r) => setTimeout(r, 5));
    }
    let spent = 0;
    let n = 0;
    for (let k = 0; k < repeat; k++) {
      for (const r of records) {
        const rec = { ...r, step: ++n };
        const t0 = performance.now();
        run.onStep(rec);
        if (n % rowsPerFlush === 0) run.flush();
        spent += performance.now() - t0;
        if (n % rowsPerFlush === 0) await new Promise((res) => setImmediate(res)); // let the socket drain, as between real steps
      }
    }
    run.close();
    server.close();
    await reading;
    return (spent * 1000) / n;
  };
  await timeIt(true); // warm-up (JIT)
  const withoutUs = median([await timeIt(false), await timeIt(false), await timeIt(false)])!;
  const withUs = median([await timeIt(true), await timeIt(true), await timeIt(true)])!;
  return { withoutUs, withUs, rowsPerFlush };
}

async function main(): Promise<void> {
  const rounds = Number(arg('--rounds', '4'));
  const steps = Number(arg('--steps', '500'));
  const job = arg('--config', fileURLToPath(new URL('../../examples/spirals.json', import.meta.url)));
  const outFile = arg('--out', 'dashboard-cost.json');
  const exe = process.env.DPTRAIN_CHROMIUM ?? '/usr/bin/chromium';
  const browser = existsSync(exe)
    ? await chromium.launch({ executablePath: exe, args: ['--headless=new', '--no-sandbox'] })
    : null;
  const conditions = CONDITIONS.filter((c) => c !== 'browser' || browser);
  if (!browser)
    process.stderr.write(`dashboard-cost: no chromium at ${exe}; measuring without the browser condition\n`);
  const runs: Measured[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      // Rotate the order so no condition always runs first (warm caches, other load).
      const order = conditions.map((_, i) => conditions[(i + r) % conditions.length]);
      for (const c of order) {
        const m = await runOnce(c, r, browser, exe, job, steps);
        runs.push(m);
        process.stderr.write(
          `round ${r + 1}/${rounds} ${c.padEnd(7)} median step ${m.medianStepMs.toFixed(2)} ms, ${m.samplesPerSec.toFixed(0)} samples/s, overhead ` +
            `${m.timeline.overheadMs.toFixed(2)} ms, coordinator CPU ${m.coordinatorCpuMsPerStep.toFixed(2)} ` +
            `ms/step${c === 'browser' ? `, browser CPU ${(m.browserCpuMs / 1000).toFixed(1)} s` : ''}\n`,
        );
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
    ['coordinator CPU per step (ms)', (m) => m.coordinatorCpuMsPerStep],
    ...TIMELINE_KEYS.map((k): [string, (m: Measured) => number] => [`${k}`, (m) => m.timeline[k]]),
  ];
  const lines = [
    `| median over ${rounds} rounds | ${conditions.join(' | ')} | ${conditions
      .filter((c) => c !== 'none')
      .map((c) => `${c} ÷ none`)
      .join(' | ')} |`,
    `| --- | ${conditions.map(() => '---:').join(' | ')} | ${conditions
      .filter((c) => c !== 'none')
      .map(() => '---:')
      .join(' | ')} |`,
    ...keys.map(
      ([name, f]) =>
        `| ${name} | ${conditions.map((c) => (median(of(c).map(f)) ?? NaN).toFixed(name === 'samples/s' ? 0 : 2)).join(' | ')} | ${conditions
          .filter((c) => c !== 'none')
          .map((c) => (ratio(c, f) ?? NaN).toFixed(3))
          .join(' | ')} |`,
    ),
  ];
  const browserRuns = of('browser');
  if (browserRuns.length)
    lines.push(
      '',
      `browser CPU over a run (median): ${((median(browserRuns.map((m) => m.browserCpuMs)) ?? 0) / 1000).toFixed(1)} s`,
    );
  const records = readFileSync(join(runs[0].runDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as StepRecord);
  const loop = await loopCost(records, 20);
  lines.push(
    `loop time in the dashboard per step, ${records.length * 20} replayed steps (median of 3): ${loop.withoutUs.toFixed(2)} µs with no page, ` +
      `${loop.withUs.toFixed(2)} µs with a page's stream attached (an update every ${loop.rowsPerFlush} steps)`,
  );
  writeFileSync(outFile, JSON.stringify({ rounds, steps, job, runs, loop }, null, 2) + '\n');
  process.stdout.write(lines.join('\n') + `\n\nruns written to ${outFile}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`dashboard-cost: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
