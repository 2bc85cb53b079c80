/**
 * `dptrain scale`: how throughput grows with workers, in one command. For each worker count it
 * runs `dptrain train` on this machine (strong scaling: the global batch stays fixed; weak: the
 * batch per worker stays fixed, optionally for several per-worker batches), takes the median
 * samples/s after warm-up and the step timeline, and measures in the same run the
 * single-process baselines for the same model, batch and backend (one set per per-worker
 * batch, see baseline.ts): efficiency is against the engine's own single process, and what
 * plain TF.js gives (a tfjs-layers minimize loop, model.fit) is reported beside it.
 * Writes scale.json, scale.md, SVG plots and report.html (the runs drawn as `dptrain report`
 * draws them, with the scaling table and plots) into --out.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type RunSummary, type StepRecord, warmupSteps } from '../coordinator/summary.js';
import { median } from '../shared/util/stats.js';
import { fail, isDptrainError } from '../shared/util/errors.js';
import { selectBackend } from '../worker/backend.js';
import { allBaselines, BASELINE_LABELS, BASELINES, type BaselineKind } from './baseline.js';
import { resolveConfig, type JobFlags } from './flags.js';
import { argsOf } from './flag-table.js';
import { launchSection, sshOptions, type LaunchFlags } from './launch-cmd.js';
import { parseConfig, type Config } from '../shared/job/config.js';
import type { LaunchSection } from '../shared/job/launch.js';
import { lineChart, stackedBars } from './svg.js';
import { breakdown } from '../coordinator/dashboard/view.js';
import { reportPage } from '../coordinator/dashboard/page.js';
import { loadRuns } from './report-cmd.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

export interface ScaleFlags extends JobFlags {
  workers?: never;
  /** Through a launcher (`dptrain launch`) instead of local processes: its flags, as for launch. */
  launcher?: LaunchSection['launcher'];
  hosts?: string;
  hostfile?: string;
  listen?: { host: string; port: number };
  tokenFile?: string;
  hostAgents?: boolean;
  agentWorkers?: number;
  workerCounts: number[];
  mode: 'strong' | 'weak';
  /** Batches per worker to sweep in weak mode (default: the config's batchSize). */
  perWorkerBatch?: number[];
}

export interface ScaleRow {
  workers: number;
  /**
   * Workers that computed a step (median over the steps after warm-up): fewer than `workers`
   * when the batch was cut into fewer virtual shards than workers, and the rest waited.
   */
  computingWorkers: number;
  globalBatch: number;
  /** The batch each worker gets (weak mode); null in strong mode, where it is globalBatch ÷ workers. */
  perWorkerBatch: number | null;
  samplesPerSec: number;
  /** Against the engine's single process at this row's 1-worker batch. */
  speedup: number;
  efficiency: number;
  timeline: RunSummary['timeline'];
}

function parseList(flag: string, v: string, max: number, example: string): number[] {
  const xs = v.split(',').map((s) => Number(s.trim()));
  if (xs.length === 0 || xs.some((x) => !Number.isInteger(x) || x < 1 || x > max))
    fail('CONFIG_INVALID', `${flag} ${v}: expected a list like ${example}`);
  return [...new Set(xs)].sort((a, b) => a - b);
}

export const parseWorkerList = (v: string): number[] => parseList('--workers', v, 64, '1,2,4');
export const parseBatchList = (v: string): number[] => parseList('--per-worker-batch', v, 1 << 20, '64,128,256');

/** The flags scale hands on to `dptrain launch` as they were given (hosts are cut per point). */
const LAUNCH_SCOPES = ['launch', 'advertise', 'join', 'agents'] as const;

/** "a:2,b:2" cut to its first n slots: "a:2,b:1" for n = 3 (a sweep fills hosts in order). */
export function firstSlots(hosts: Array<{ host: string; slots: number }>, n: number): string {
  const out: string[] = [];
  let left = n;
  for (const h of hosts) {
    if (left === 0) break;
    const k = Math.min(h.slots, left);
    out.push(`${h.host.includes(':') ? `[${h.host}]` : h.host}:${k}`);
    left -= k;
  }
  return out.join(',');
}

/**
 * How each point starts its workers: `dptrain train --workers N` here, or, with a launcher (its
 * flags, or a `launch` section in the config), `dptrain launch` on the first N slots of the hosts.
 */
function pointCommand(f: ScaleFlags, cfg: Config): (n: number) => string[] {
  if (f.launcher === undefined && f.hosts === undefined && f.hostfile === undefined && cfg.launch === null) {
    if (f.hostAgents || f.agentWorkers !== undefined)
      fail(
        'CONFIG_INVALID',
        `--${f.hostAgents ? 'host-agents' : 'agent-workers'}: host agents start through a launcher; add --launcher local (or --hosts H:N,…)`,
      );
    return (n) => ['train', '--workers', String(n)];
  }
  const section = launchSection(f as LaunchFlags, cfg);
  if (section.launcher === 'slurm')
    fail(
      'CONFIG_INVALID',
      'dptrain scale runs its points through the local or ssh launcher; under Slurm, submit one job per worker count',
    );
  // Each point names its own launcher and hosts; the other launch flags go on as given.
  const { launcher: _l, hosts: _h, hostfile: _f, ...rest } = f;
  const passOn = [
    ...argsOf(rest as unknown as Record<string, unknown>, LAUNCH_SCOPES),
    ...(f.tokenFile ? ['--token-file', f.tokenFile] : []),
    ...(f.listen ? ['--listen', `${f.listen.host}:${f.listen.port}`] : []),
  ];
  if (section.launcher === 'local') return (n) => ['launch', '--launcher', 'local', '--workers', String(n), ...passOn];
  const hosts = sshOptions(section).hosts;
  const slots = hosts.reduce((k, h) => k + h.slots, 0);
  const most = Math.max(...f.workerCounts);
  if (slots < most)
    fail(
      'CONFIG_INVALID',
      `--workers ${f.workerCounts.join(',')}: ${most} workers need ${most} slots; the hosts give ${slots}`,
    );
  return (n) => ['launch', '--launcher', 'ssh', '--hosts', firstSlots(hosts, n), ...passOn];
}

/**
 * The job every point trains (its batch given on its command line): no run directory, evaluation
 * or checkpoints. Shards the config leaves unset become one per worker: chosen from the batch
 * alone, they can be fewer than a point's workers, and the point would then measure fewer
 * workers than it names (the rest wait).
 */
export function pointJob(cfg: Config, batchSize: number): Record<string, unknown> {
  const job = { ...cfg, out: null, evalEvery: 0, checkpointEvery: 0, batchSize, shards: cfg.shards ?? 'per-worker' };
  return JSON.parse(JSON.stringify(job)) as Record<string, unknown>; // as job.json holds it
}

/** Fewer steps leave no warm-up out of a point's samples/s (summary.ts warmupSteps): its figure would be a cold start. */
export const MIN_POINT_STEPS = 10;

/** Workers that computed a point's steps: the median of each step's `workers` after warm-up (metrics.jsonl). */
export function computingWorkers(metricsJsonl: string): number {
  const records = metricsJsonl
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Pick<StepRecord, 'workers' | 'skipped'>);
  const steady = records.slice(warmupSteps(records.length)).filter((r) => !r.skipped);
  return Math.floor(median(steady.map((r) => r.workers)) ?? 0);
}

/** A row's worker count as the table shows it: with how many computed, when fewer did. */
export function workersCell(r: Pick<ScaleRow, 'workers' | 'computingWorkers'>): string {
  return r.computingWorkers < r.workers ? `${r.workers} (${r.computingWorkers} computing)` : String(r.workers);
}

function runDptrain(args: string[]): Promise<void> {
  return new Promise((res, rej) =>
    execFile(process.execPath, [MAIN, ...args], { maxBuffer: 64 << 20 }, (err, _o, stderr) =>
      err
        ? rej(
            new Error(
              stderr
                .trim()
                .split('\n')
                .filter((l) => l.startsWith('dptrain:'))
                .pop() ?? String(err),
            ),
          )
        : res(),
    ),
  );
}

export async function scaleCommand(f: ScaleFlags): Promise<number> {
  if (f.mode === 'strong' && (f.perWorkerBatch?.length ?? 0) > 0)
    fail('CONFIG_INVALID', '--per-worker-batch is for --mode weak; in strong mode the global batch is --batch-size');
  const cfg = resolveConfig({ ...f, workers: undefined });
  // Every point is judged by its samples/s after warm-up, read from its run: a point of no steps
  // has none, and would fail only after the baselines and every point had run.
  if (cfg.steps < 1)
    fail('CONFIG_INVALID', `steps ${cfg.steps}: each scaling point must train at least one step; give --steps N ≥ 1`);
  const command = pointCommand(f, cfg); // its refusals come before anything is written
  const perWorker = f.perWorkerBatch ?? [cfg.batchSize];
  const weak = f.mode === 'weak';
  // Each point's job as its `dptrain train` will read it (a weak point's global batch grows with
  // its workers), checked now rather than after the runs before it.
  for (const b of weak ? perWorker : [cfg.batchSize])
    for (const n of f.workerCounts)
      try {
        parseConfig(pointJob(cfg, weak ? b * n : cfg.batchSize));
      } catch (e) {
        if (!isDptrainError(e)) throw e;
        fail(e.code, `the point of ${n} worker${n > 1 ? 's' : ''}${weak ? `, ${b} per worker` : ''}: ${e.message}`);
      }
  if (cfg.steps < MIN_POINT_STEPS)
    fail(
      'CONFIG_INVALID',
      `steps ${cfg.steps}: each scaling point needs at least ${MIN_POINT_STEPS} steps, so that its warm-up (the first 10%) is left out of its samples/s; give --steps ${MIN_POINT_STEPS} or more`,
    );
  const out = resolve(f.out ?? join('runs', `scale-${new Date().toISOString().slice(0, 19).replace(/:/g, '-')}`));
  mkdirSync(out, { recursive: true });
  const job = join(out, 'job.json');
  writeFileSync(job, JSON.stringify(pointJob(cfg, cfg.batchSize)));

  const backend = await selectBackend(cfg.backend, { allowSoftwareGpu: cfg.allowSoftwareGpu });
  const baselines: Array<{ batch: number; samplesPerSec: number; singleProcess: Record<BaselineKind, number | null> }> =
    [];
  const rows: ScaleRow[] = [];
  const runDirs: string[] = [];
  for (const b of weak ? perWorker : [cfg.batchSize]) {
    const batchFor = (n: number) => (weak ? b * n : cfg.batchSize);
    // The baseline trains on what one worker gets at the smallest count: the global batch of a
    // 1-worker run, so speed-up = samples/s(N) ÷ samples/s(single process, batch(1)).
    process.stderr.write(`scale: baselines (single process, ${backend.name}, batch ${b})…\n`);
    const singleProcess = await allBaselines(cfg, b, Math.max(20, Math.min(cfg.steps, 60)));
    const baseline = singleProcess.engine;
    baselines.push({ batch: b, samplesPerSec: baseline, singleProcess });
    for (const n of f.workerCounts) {
      const dir = join(out, perWorker.length > 1 ? `batch-${b}-workers-${n}` : `workers-${n}`);
      process.stderr.write(`scale: ${n} worker${n > 1 ? 's' : ''}, global batch ${batchFor(n)}…\n`);
      runDirs.push(dir);
      await runDptrain([
        ...command(n),
        '--config',
        job,
        '--batch-size',
        String(batchFor(n)),
        '--backend',
        backend.name,
        '--out',
        dir,
      ]);
      const s = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as RunSummary;
      const sps = s.samplesPerSec ?? 0;
      const computing = computingWorkers(readFileSync(join(dir, 'metrics.jsonl'), 'utf8'));
      if (computing < n)
        process.stderr.write(
          `scale: WARNING: the point of ${n} workers ran with ${computing} computing (its batch was cut into fewer virtual shards than workers); set shards to per-worker or ${n} or more\n`,
        );
      rows.push({
        workers: n,
        computingWorkers: computing,
        globalBatch: batchFor(n),
        perWorkerBatch: weak ? b : null,
        samplesPerSec: sps,
        speedup: sps / baseline,
        efficiency: sps / (n * baseline),
        timeline: s.timeline,
      });
    }
  }
  const result = {
    mode: f.mode,
    backend: backend.name,
    steps: cfg.steps,
    shards: cfg.shards ?? 'per-worker',
    coordinatorWorker: cfg.coordinatorWorker,
    baseline: baselines[0],
    baselines,
    rows,
  };
  writeFileSync(join(out, 'scale.json'), JSON.stringify(result, null, 2) + '\n');
  const md = [
    `| workers | batch per worker | global batch | samples/s | speed-up | efficiency | step overhead | wire | codec |`,
    `| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |`,
    ...rows.map(
      (r) =>
        `| ${workersCell(r)} | ${r.perWorkerBatch ?? '–'} | ${r.globalBatch} | ${r.samplesPerSec.toFixed(0)} | ${r.speedup.toFixed(2)}× | ` +
        `${r.efficiency.toFixed(2)} | ${pct(r.timeline.overheadShare)} | ${pct(r.timeline.wireShare)} | ${pct(r.timeline.codecShare)} |`,
    ),
    '',
    ...(rows.some((r) => r.computingWorkers < r.workers)
      ? [
          'WARNING: a point marked "(K computing)" had only K of its workers computing: its batch was cut into fewer ' +
            'virtual shards than workers and the rest waited, so its speed-up and efficiency measure K workers. ' +
            'Set shards to per-worker, or a count at least the workers.',
          '',
        ]
      : []),
    `Speed-up and efficiency are against the fastest single process of the same engine. Mode: ${f.mode} scaling.` +
      (cfg.coordinatorWorker
        ? " One worker of each point ran inside the coordinator's process (--coordinator-worker)."
        : '') +
      ` Single-process samples/s (${backend.name}):`,
    '',
    `| batch | ${BASELINES.map((k) => BASELINE_LABELS[k]).join(' | ')} |`,
    `| ---: | ${BASELINES.map(() => '---:').join(' | ')} |`,
    ...baselines.map(
      (x) => `| ${x.batch} | ${BASELINES.map((k) => x.singleProcess[k]?.toFixed(0) ?? '–').join(' | ')} |`,
    ),
    '',
    'Shares are medians over steps of: step time minus the slowest compute (overhead); frames in flight, parameters down and ' +
      'gradients up (wire); encoding and decoding them (codec).',
  ].join('\n');
  writeFileSync(join(out, 'scale.md'), md + '\n');
  // One series per per-worker batch (one in strong mode).
  const series = baselines.map((base) => {
    const own = rows.filter((r) => r.perWorkerBatch === (weak ? base.batch : null));
    return {
      name: weak && baselines.length > 1 ? `${base.batch} per worker` : 'dptrain',
      base: base.samplesPerSec,
      own,
    };
  });
  writeFileSync(
    join(out, 'throughput.svg'),
    lineChart(`Throughput (${f.mode} scaling, ${backend.name})`, 'workers', 'samples/s', [
      ...series.map((s) => ({
        name: s.name,
        points: s.own.map((r) => [r.workers, r.samplesPerSec] as [number, number]),
      })),
      ...series.map((s) => ({
        name: `ideal${series.length > 1 ? `, ${s.name}` : ' (N × single process)'}`,
        points: s.own.map((r) => [r.workers, r.workers * s.base] as [number, number]),
        dashed: true,
      })),
    ]),
  );
  writeFileSync(
    join(out, 'efficiency.svg'),
    lineChart(
      'Scaling efficiency',
      'workers',
      'efficiency',
      series.map((s) => ({ name: s.name, points: s.own.map((r) => [r.workers, r.efficiency] as [number, number]) })),
    ),
  );
  writeFileSync(
    join(out, 'breakdown.svg'),
    stackedBars(
      'Where a step goes (median ms)',
      'workers',
      'ms',
      rows.map((r) => ({
        label: baselines.length > 1 ? `${r.workers}×${r.perWorkerBatch}` : String(r.workers),
        parts: breakdown(medians(r.timeline)),
      })),
    ),
  );
  const plots = ['throughput.svg', 'efficiency.svg', 'breakdown.svg'].map((f) => readFileSync(join(out, f), 'utf8'));
  const extra = `<section class="scale"><h2>Scaling (${f.mode}, ${backend.name})</h2>${markdownTable(md)}<div>${plots.join('\n')}</div></section>`;
  writeFileSync(
    join(out, 'report.html'),
    reportPage(`dptrain scale: ${f.mode} scaling, ${backend.name}`, loadRuns(runDirs), extra),
  );
  process.stdout.write(
    `${md}\n\nwritten to ${out} (scale.json, scale.md, throughput.svg, efficiency.svg, breakdown.svg, report.html)\n`,
  );
  return 0;
}

const pct = (x: number | null) => (x === null ? '–' : `${(x * 100).toFixed(1)}%`);

/** The medians of a summary's timeline, as one step's timeline. */
function medians(t: RunSummary['timeline']) {
  const m = (k: keyof typeof t) => (t[k] as { median: number }).median;
  return {
    slowestComputeMs: m('slowestComputeMs'),
    encodeMs: m('encodeMs'),
    decodeMs: m('decodeMs'),
    workerEncodeMs: m('workerEncodeMs'),
    wireMs: m('wireMs'),
    broadcastMs: m('broadcastMs'),
    optimizerMs: m('optimizerMs'),
    overheadMs: m('overheadMs'),
  };
}

/** scale.md's table and notes as HTML (the report shows what scale.md says). */
function markdownTable(md: string): string {
  const esc = (x: string) => x.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const lines = md.split('\n');
  const cells = (l: string) =>
    l
      .slice(1, -1)
      .split('|')
      .map((c) => esc(c.trim()));
  const body = lines.slice(2).filter((l) => l.startsWith('|'));
  const notes = lines.filter((l) => l && !l.startsWith('|'));
  return `<table class="scale-table"><thead><tr>${cells(lines[0])
    .map((c) => `<th>${c}</th>`)
    .join('')}</tr></thead><tbody>${body
    .map(
      (l) =>
        `<tr>${cells(l)
          .map((c) => `<td>${c}</td>`)
          .join('')}</tr>`,
    )
    .join('')}</tbody></table>${notes.map((n) => `<p>${esc(n)}</p>`).join('')}`;
}
