/**
 * `npm run bench`'s figures from what it measured (scripts/bench.ts), again with `--from` on a
 * saved bench-results.json: medians and best of rounds, and the printed table.
 */
import type { WireDtype } from '../../shared/wire/wire-dtype.js';
import { median } from '../../shared/util/stats.js';
import { type BackendProfile, formatBackendProfiles } from '../bench-profile.js';
import { PER_WORKER_BATCH } from '../reference-job.js';

/** Steps of each dptrain run. */
export const STEPS = 60;

export interface RunFigures {
  workers: number;
  wireDtype: WireDtype;
  /** How payloads reached the local workers: /dev/shm files, or the WebSocket. */
  path: 'shm' | 'socket';
  /** One of the workers ran inside the coordinator's process (--coordinator-worker). */
  coordinatorWorker?: boolean;
  samplesPerSec: number;
  medianStepMs: number;
  overheadShare: number;
  wireShare: number;
  codecShare: number;
  wireBytesPerStep: number;
  finalLoss: number;
}

/** One round's figures: each dptrain configuration beside its own baseline, the ceiling, DDP, plain TF.js. */
export interface Round {
  baselineSps: number;
  ceiling: number;
  ceilingRatio: number;
  runs: Array<RunFigures & { baselineSps: number; efficiency: number; ofCeiling: number | null }>;
  ddp: { one: number; two: number; efficiency: number } | null;
  /** Absent from runs saved before it was measured. */
  layers?: { minimize: number; fit: number; engine: number };
}

/** What a run measured; the summary is computed from it (again, with --from). */
export interface Measured {
  date: string;
  params: number;
  rounds: number;
  adam: { simdParamsPerSec: number; scalarParamsPerSec: number };
  codec16MB: Record<string, { encodeGBps: number; decodeGBps: number }>;
  loopbackTcpMs: { down: number; roundTrip: number };
  profiles: BackendProfile[];
  perRound: Round[];
}

/** Median of numbers (the rounds of one figure). */
const med = (xs: number[]) => median(xs) ?? NaN;

/**
 * Medians over rounds of ratios taken within each round; and best of rounds: interference from
 * other processes only ever slows a run down, so the fastest of N repeats is the least disturbed
 * (the reason Python's timeit reports the minimum time).
 */
export function summarize(m: Measured) {
  const all = m.perRound;
  const best = (xs: number[]) => Math.max(...xs);
  const baselineBest = best(all.flatMap((a) => a.runs.map((r) => r.baselineSps)));
  const rows = all[0].runs.map((r0, k) => {
    const rs = all.map((a) => a.runs[k]);
    const md = (f: (r: (typeof rs)[number]) => number) => med(rs.map(f));
    const bestSps = best(rs.map((r) => r.samplesPerSec));
    return {
      workers: r0.workers,
      path: r0.path,
      wireDtype: r0.wireDtype,
      coordinatorWorker: r0.coordinatorWorker ?? false,
      samplesPerSec: md((r) => r.samplesPerSec),
      efficiency: md((r) => r.efficiency),
      ofCeiling: r0.ofCeiling === null ? null : md((r) => r.ofCeiling!),
      overheadShare: md((r) => r.overheadShare),
      wireShare: md((r) => r.wireShare),
      codecShare: md((r) => r.codecShare),
      wireBytesPerStep: md((r) => r.wireBytesPerStep),
      finalLoss: r0.finalLoss,
      best: { samplesPerSec: bestSps, efficiency: bestSps / (r0.workers * baselineBest) },
    };
  });
  const ddps = all.map((a) => a.ddp).filter((d) => d !== null);
  const ddp = ddps.length
    ? {
        samplesPerSec1: med(ddps.map((d) => d.one)),
        samplesPerSec2: med(ddps.map((d) => d.two)),
        efficiency: med(ddps.map((d) => d.efficiency)),
        best: {
          samplesPerSec1: best(ddps.map((d) => d.one)),
          samplesPerSec2: best(ddps.map((d) => d.two)),
          efficiency: best(ddps.map((d) => d.two)) / (2 * best(ddps.map((d) => d.one))),
        },
      }
    : null;
  const baseline = { samplesPerSec: med(all.map((a) => a.baselineSps)), best: baselineBest };
  // Within-round ratios: the engine's single process against plain TF.js; 2 workers against DDP.
  const layers = all.flatMap((a) => (a.layers ? [a.layers] : [])); // absent from runs saved before they were measured
  const plainTfjs = {
    layersMinimize: med(layers.map((l) => l.minimize)),
    layersFit: med(layers.map((l) => l.fit)),
    engineOverMinimize: med(layers.map((l) => l.engine / l.minimize)),
    engineOverFit: med(layers.map((l) => l.engine / l.fit)),
  };
  const overDdp = (k: number) =>
    ddps.length && k >= 0 ? med(all.filter((a) => a.ddp).map((a) => a.runs[k].samplesPerSec / a.ddp!.two)) : null;
  const twoInCoordinator = all[0].runs.findIndex((r) => r.workers === 2 && r.coordinatorWorker);
  const ceiling2 = {
    ratio: med(all.map((a) => a.ceilingRatio)),
    best: best(all.map((a) => a.ceiling)) / (2 * baselineBest),
  };
  return {
    model: '784-512-512-10',
    backend: 'wasm',
    perWorkerBatch: PER_WORKER_BATCH,
    steps: STEPS,
    baseline,
    plainTfjs,
    ceiling2,
    ddpAnchor: ddp,
    twoWorkersOverDdp: overDdp(1),
    twoWithCoordinatorWorkerOverDdp: overDdp(twoInCoordinator),
    runs: rows,
  };
}

/** "2 workers shm    float32 ", and where one ran inside the coordinator, "(1 in the coordinator)". */
function label(r: Pick<RunFigures, 'workers' | 'path' | 'wireDtype' | 'coordinatorWorker'>): string {
  const where = r.coordinatorWorker ? ' (1 in the coordinator)' : '';
  return `${r.workers} worker${r.workers > 1 ? 's' : ' '} ${r.path.padEnd(6)} ${r.wireDtype.padEnd(8)}${where}`;
}

export function report(m: Measured, s: ReturnType<typeof summarize>): string[] {
  const f = (x: number, d = 2) => x.toFixed(d);
  const pct = (x: number) => `${f(x * 100, 1)}%`;
  const n = m.rounds;
  const two = s.runs[1];
  return [
    `central Adam        ${f(m.adam.simdParamsPerSec / 1e6, 0)} M parameters/s with the SIMD kernel, ` +
      `${f(m.adam.scalarParamsPerSec / 1e6, 0)} M scalar (${m.params.toLocaleString('en-US')} parameters)`,
    ...Object.entries(m.codec16MB).map(
      ([d, c]) =>
        `codec ${d.padEnd(9)}     encode ${f(c.encodeGBps)} GB/s, decode (unaligned) ${f(c.decodeGBps)} GB/s of float32 data, 16 MB`,
    ),
    `loopback TCP        ${f(m.loopbackTcpMs.down)} ms one way, ${f(m.loopbackTcpMs.roundTrip)} ms there and back for ` +
      `${((m.params * 4) / 1e6).toFixed(2)} MB (plain sockets)`,
    `medians over ${n} round${n > 1 ? 's' : ''}; each efficiency against a baseline measured just before:`,
    ...formatBackendProfiles(m.profiles ?? []),
    `baseline (1 proc)   ${f(s.baseline.samplesPerSec, 0)} samples/s (the engine's graph, fast matMul gradient, tf.train.adam, batch ${PER_WORKER_BATCH})`,
    `plain TF.js         tfjs-layers minimize ${f(s.plainTfjs.layersMinimize, 0)}, model.fit ${f(s.plainTfjs.layersFit, 0)} samples/s; the engine's ` +
      `single process is ${f(s.plainTfjs.engineOverMinimize)}× minimize and ${f(s.plainTfjs.engineOverFit)}× fit (within-round ratios)`,
    `2 baselines at once ${f(s.ceiling2.ratio)} of 2× one (no communication at all: this machine's ceiling for 2 workers)`,
    ...s.runs.map(
      (r) =>
        `dptrain ${label(r)}  ` +
        `${f(r.samplesPerSec, 0)} samples/s, efficiency ${f(r.efficiency)}` +
        (r.ofCeiling !== null ? ` (${f(r.ofCeiling)} of the ceiling)` : '') +
        `; of a step: overhead ${pct(r.overheadShare)}, wire ${pct(r.wireShare)}, codec ${pct(r.codecShare)}; ` +
        `${(r.wireBytesPerStep / 1e6).toFixed(2)} MB/step on the socket`,
    ),
    `2 workers, shm, per round: efficiency ${m.perRound.map((a) => f(a.runs[1].efficiency)).join(', ')}; overhead ` +
      `${m.perRound.map((a) => pct(a.runs[1].overheadShare)).join(', ')}`,
    ...(s.ddpAnchor
      ? [
          `PyTorch DDP (gloo)  1 rank ${f(s.ddpAnchor.samplesPerSec1, 0)}, 2 ranks ${f(s.ddpAnchor.samplesPerSec2, 0)} samples/s: efficiency ` +
            `${f(s.ddpAnchor.efficiency)}; dptrain 2 workers (shm) ${f(s.twoWorkersOverDdp ?? NaN)}× DDP 2 ranks, ` +
            `with one in the coordinator ${f(s.twoWithCoordinatorWorkerOverDdp ?? NaN)}× (within-round ratios)`,
        ]
      : []),
    `best of ${n} rounds (the least disturbed): baseline ${f(s.baseline.best, 0)} samples/s; 2 baselines at once ${f(s.ceiling2.best)} of 2× one`,
    ...s.runs.map(
      (r) => `  dptrain ${label(r)} ` + `${f(r.best.samplesPerSec, 0)} samples/s, efficiency ${f(r.best.efficiency)}`,
    ),
    ...(s.ddpAnchor
      ? [
          `  PyTorch DDP (gloo) 1 rank ${f(s.ddpAnchor.best.samplesPerSec1, 0)}, 2 ranks ${f(s.ddpAnchor.best.samplesPerSec2, 0)} ` +
            `samples/s: efficiency ${f(s.ddpAnchor.best.efficiency)}`,
        ]
      : []),
    `2 workers, shm: ${f(two.best.samplesPerSec / s.baseline.best, 2)}× the best baseline`,
  ];
}
