/**
 * What a page shows of a run, in the shape the browser code (client/charts.js) draws: one row
 * per step, evaluations, the worker table, warnings and the summary. The live dashboard builds
 * it from the coordinator's records as they happen; `dptrain report` from a finished run
 * directory. Both go through the same rows, so a live page and a report draw the same charts.
 */
import type { RunSummary, StepRecord, StepTimeline } from '../summary.js';

/** A step's critical path: these parts add up to the step time (see breakdown). */
export const BREAKDOWN_KEYS = ['compute', 'encode/decode', 'wire', 'optimizer', 'reduce and idle'] as const;
export type Breakdown = Record<(typeof BREAKDOWN_KEYS)[number], number>;

/**
 * A step's critical path in ms. Reduction mostly overlaps other workers' compute, so it is not
 * a part of its own: what it adds after the last shard lands is in "reduce and idle", together
 * with the event-loop turns and waiting that no span covers.
 */
export function breakdown(
  t: Pick<
    StepTimeline,
    | 'slowestComputeMs'
    | 'encodeMs'
    | 'decodeMs'
    | 'workerEncodeMs'
    | 'wireMs'
    | 'broadcastMs'
    | 'optimizerMs'
    | 'overheadMs'
  >,
): Breakdown {
  const codec = t.encodeMs + t.decodeMs + t.workerEncodeMs;
  const wire = t.wireMs + t.broadcastMs;
  return {
    compute: t.slowestComputeMs,
    'encode/decode': codec,
    wire,
    optimizer: t.optimizerMs,
    'reduce and idle': Math.max(0, t.overheadMs - codec - wire - t.optimizerMs),
  };
}

/** One step as the page draws it. */
export interface StepRow {
  step: number;
  /** Seconds spent in steps up to and including this one (the time axis of throughput charts). */
  t: number;
  loss: number;
  samplesPerSec: number;
  /** Present when the records carry it (token-based models). */
  tokensPerSec?: number;
  mfu: number | null;
  modelFlopsPerSec: number;
  cumulativeFlops: number;
  budgetUsed: number | null;
  budgetEtaSec: number | null;
  stepMs: number;
  workers: number;
  /** BREAKDOWN_KEYS in order, ms. */
  parts: number[];
}

export interface EvalRow {
  step: number;
  testLoss: number;
  testAccuracy: number | null;
}

export interface WorkerRow {
  id: string;
  name: string;
  host: string;
  backend: string;
  /** The worker's account of its backend choice (names the GPU adapter for webgpu). */
  adapter: string;
  /** Declared peak FLOP/s (null: none) and what its calibration measured at join. */
  declaredFlops: number | null;
  measuredFlops: number;
  /** Model FLOP/s it achieved on its shards in the last step it worked in. */
  achievedFlops: number | null;
  state: string;
  /** Epoch ms of the last frame from it. */
  lastSeen: number;
  shardsDone: number;
  staleShards: number;
  recomputedShards: number;
}

export interface WarningRow {
  seq: number;
  time: number;
  level: 'warn' | 'error';
  msg: string;
}

export interface RunView {
  name: string;
  /** The config as written to config.json (any JSON). */
  config: Record<string, unknown>;
  steps: StepRow[];
  evals: EvalRow[];
  workers: WorkerRow[];
  warnings: WarningRow[];
  budget: number | null;
  /** Steps the run was asked for. */
  totalSteps: number;
  summary: RunSummary | null;
  /** A run directory without summary.json: the summary figures its metrics.jsonl gives. */
  derived?: DerivedSummary | null;
  /** stopped: a run directory without a summary (interrupted, crashed, or still running elsewhere). */
  state: 'waiting' | 'training' | 'finished' | 'stopped';
}

/**
 * The summary rows a stopped run's step records give (the same medians after warm-up as
 * summary.json's); what only the end of a run knows (workers, wall time, fault counts) is absent.
 */
export type DerivedSummary = Pick<
  RunSummary,
  | 'steps'
  | 'epochs'
  | 'finalLoss'
  | 'testAccuracy'
  | 'samplesPerSec'
  | 'medianStepMs'
  | 'modelFlopsPerSec'
  | 'mfu'
  | 'totalFlops'
  | 'hardwareFlops'
  | 'budgetUsed'
  | 'wireBytesPerStep'
  | 'timeline'
>;

type TimedRecord = StepRecord & { tokensPerSec?: number };

/** A metrics.jsonl record → a page row; `tPrev` is the previous row's t. */
export function stepRow(r: TimedRecord, tPrev: number): StepRow {
  const b = breakdown(r.timeline);
  const row: StepRow = {
    step: r.step,
    t: tPrev + r.stepMs / 1000,
    loss: r.loss,
    samplesPerSec: r.samplesPerSec,
    mfu: r.mfu ?? null,
    modelFlopsPerSec: r.modelFlopsPerSec,
    cumulativeFlops: r.cumulativeFlops,
    budgetUsed: r.budgetUsed ?? null,
    budgetEtaSec: r.budgetEtaSec ?? null,
    stepMs: r.stepMs,
    workers: r.workers,
    parts: BREAKDOWN_KEYS.map((k) => b[k]),
  };
  if (typeof r.tokensPerSec === 'number') row.tokensPerSec = r.tokensPerSec;
  return row;
}

/** The evaluation a step record carries, if it evaluated. */
export function evalRow(r: StepRecord): EvalRow | null {
  return typeof r.testLoss === 'number'
    ? { step: r.step, testLoss: r.testLoss, testAccuracy: r.testAccuracy ?? null }
    : null;
}

/** Rows kept for a page: beyond this, older rows are thinned (every other one), newest kept. */
export const MAX_ROWS = 20_000;

/** Halve the rows before the last `keepTail` (a long run's history at half the resolution). */
export function thin<T>(rows: T[], keepTail = 1000): T[] {
  const head = rows.slice(0, Math.max(0, rows.length - keepTail));
  return [...head.filter((_, i) => i % 2 === 0), ...rows.slice(head.length)];
}

/** Fields that say who and how much, added to a warning's message. */
const WARNING_FIELDS = ['worker', 'host', 'step', 'phase', 'shard', 'reason', 'why', 'budgetUsed', 'fault', 'error'];

/** A pino JSON record of level warn or above as a page's warning row; null for anything else. */
export function warningOf(
  rec: { level?: unknown; msg?: unknown; time?: unknown; [k: string]: unknown },
  seq: number,
): WarningRow | null {
  const level = typeof rec.level === 'number' ? rec.level : 0;
  if (level < 40 || typeof rec.msg !== 'string') return null;
  const extras = WARNING_FIELDS.filter((k) => rec[k] !== undefined).map(
    (k) => `${k}=${typeof rec[k] === 'string' ? rec[k] : JSON.stringify(rec[k])}`,
  );
  return {
    seq,
    time: typeof rec.time === 'number' ? rec.time : Date.now(),
    level: level >= 50 ? 'error' : 'warn',
    msg: [rec.msg, ...extras].join(' '),
  };
}
