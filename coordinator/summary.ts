/** The records a run produces and how they condense into summary.json. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NO_COMPRESSION_REPORT, type CompressionReport } from './compression.js';
import { median, percentile } from '../shared/util/stats.js';
import type { Config } from '../shared/job/config.js';
import type { CheckpointCounters } from './checkpoint.js';
import type { ComputeMeter, StepAccounting } from './accounting.js';

/**
 * Where a step's wall time went. Coordinator side: encodeMs, the parameter frame (once per
 * version; it belongs to the step that broadcasts it); broadcastMs, handing it to the sockets;
 * reduceMs, folding shard gradients (mostly while other shards are still computing);
 * optimizerMs, mean, clip and Adam. Worker side, the slowest value over the workers: decodeMs
 * (params frame to tensors), encodeMs of the result (workerEncodeMs), and wireMs (round trip
 * minus the worker's own time: parameters down, gradients up). overheadMs is step time minus
 * the slowest worker's compute — the orchestration's whole cost; idleMs is what remains of it
 * after every span above (event-loop turns, scheduling, waiting on the other processes).
 */
export interface StepTimeline {
  encodeMs: number;
  broadcastMs: number;
  decodeMs: number;
  slowestComputeMs: number;
  workerEncodeMs: number;
  wireMs: number;
  reduceMs: number;
  optimizerMs: number;
  overheadMs: number;
  idleMs: number;
}

export const TIMELINE_KEYS: ReadonlyArray<keyof StepTimeline> = [
  'encodeMs',
  'broadcastMs',
  'decodeMs',
  'slowestComputeMs',
  'workerEncodeMs',
  'wireMs',
  'reduceMs',
  'optimizerMs',
  'overheadMs',
  'idleMs',
];

/** One worker's step: its spans, and waitMs, the rest of the step (waiting for peers and the coordinator). */
export interface WorkerStepTimeline {
  decodeMs: number;
  computeMs: number;
  encodeMs: number;
  wireMs: number;
  waitMs: number;
}

/**
 * One slice shard's step (coordinator/slices/). wireMs, waitMs and updateMs are on the shard's
 * clock, normsMs on the loop's; bytes are everything on the shard's links since its last report.
 */
export interface ShardStepTimeline {
  /** The step's first gradient frame in → its sums complete: its inbound link delivering them. */
  wireMs: number;
  /** Complete sums waiting before Adam: for the loop's word, and with clipping for the global norm. */
  waitMs: number;
  /** Mean and block norms; when Adam ran early, Adam and the slice's frame too. */
  updateMs: number;
  /** The loop sending "sums complete" → this shard's norms back. */
  normsMs: number;
  bytesIn: number;
  bytesOut: number;
}

export const SHARD_TIMELINE_KEYS: ReadonlyArray<keyof ShardStepTimeline> = [
  'wireMs',
  'waitMs',
  'updateMs',
  'normsMs',
  'bytesIn',
  'bytesOut',
];

export interface StepRecord extends StepAccounting {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  samples: number;
  stepMs: number;
  samplesPerSec: number;
  /** For token models (gpt): samplesPerSec × tokens per sample. */
  tokensPerSec?: number;
  /** Processes that computed the step (those behind host agents included), and its members (links). */
  workers: number;
  members: number;
  /** Compute time each worker reported for this step (ms, summed over its shards). */
  workerComputeMs: Record<string, number>;
  timeline: StepTimeline;
  workerTimeline: Record<string, WorkerStepTimeline>;
  /**
   * Bytes of frames to and from workers during the step (parameters down, gradients up, headers);
   * with slice shards, every slice link's bytes too (as each shard last reported them).
   */
  wireBytes: number;
  /** With slice shards: each shard's step, in slice order; earlyAdam when they applied Adam without waiting. */
  shardTimeline?: ShardStepTimeline[];
  earlyAdam?: boolean;
  testLoss?: number;
  testAccuracy?: number | null;
  /** Present (true) when the step was skipped for a non-finite loss or gradient. */
  skipped?: boolean;
}

export interface EvalRecord {
  step: number;
  testLoss: number;
  testAccuracy: number | null;
  evalMs: number;
}

export interface RunSummary {
  steps: number;
  /** Processes computing at the end: workers, counting those behind each host agent. */
  workers: number;
  /** Links to the coordinator at the end: workers and host agents. */
  members: number;
  backend: string;
  batchSize: number;
  accumulate: number;
  params: number;
  epochs: number;
  finalLoss: number | null;
  testLoss: number | null;
  testAccuracy: number | null;
  /** Median over the steps after warm-up (the first 10%, at most 20 steps, are skipped). */
  samplesPerSec: number | null;
  /** Sequence models: samplesPerSec × tokens per sample; null for the others. */
  tokensPerSec: number | null;
  medianStepMs: number | null;
  /** Median bytes on the wire per step (see StepRecord.wireBytes) and the dtype they travelled in. */
  wireBytesPerStep: number | null;
  wireDtype: string;
  /** Gradient compression: none (exact), or a lossy kind, its parameters and its bytes per step. */
  compression: CompressionReport;
  /** This session's wall time: after a resume, since the resume (earlier sessions' are not known). */
  wallSeconds: number;
  /**
   * Present after a resume: the steps done before this session. The medians above still cover
   * the whole run (its earlier step records, from metrics.jsonl); wallSeconds only this session.
   */
  resumedAt?: number;
  staleResults: number;
  reassignedShards: number;
  /** Shards recomputed on another worker after a non-finite result. */
  recomputedShards: number;
  /** Shards recomputed elsewhere because their gradient norm was an outlier (outlierFactor). */
  outlierShards: number;
  droppedWorkers: number;
  skippedSteps: number;
  /** Why the run ended: all steps done, or the compute budget (policy "stop"). */
  stoppedBy: 'steps' | 'budget';
  /** Model training FLOPs of all applied steps. */
  totalFlops: number;
  /** Everything computed: totalFlops plus late/recomputed shards, skipped steps, evaluation. */
  hardwareFlops: number;
  /** Median after warm-up of the windowed model FLOP/s. */
  modelFlopsPerSec: number | null;
  /** Median after warm-up of the per-step MFU (against the peaks of the workers that computed each step). */
  mfu: number | null;
  /**
   * What `mfu` is measured against: median after warm-up of the summed peak of the workers that
   * computed each step (those that only joined, or stood by, count nothing); null without a peak.
   */
  mfuPeakFlops: number | null;
  budget: number | null;
  budgetUsed: number | null;
  /** Sum over the final workers of the peak each counted with, and of their measured FLOP/s. */
  peakFlops: number;
  peakSource: 'declared' | 'measured' | 'mixed' | 'none';
  attainableFlops: number;
  /** Median and 95th percentile over the steady steps of each timeline entry, and the overhead share. */
  timeline: Record<keyof StepTimeline, { median: number; p95: number }> & {
    overheadShare: number | null;
    /** Median share of a step spent moving frames (wireMs + broadcastMs) and encoding/decoding them. */
    wireShare: number | null;
    codecShare: number | null;
  };
  /** With slice shards: per shard, the median and 95th percentile of each of its step's entries. */
  shardTimeline?: Array<Record<keyof ShardStepTimeline, { median: number; p95: number }>>;
}

/** Steps to skip as warm-up before taking throughput medians (JIT, first allocations). */
export function warmupSteps(n: number): number {
  return n < 10 ? 0 : Math.min(20, Math.max(1, Math.floor(n / 10)));
}

/** What computes at the end, as the summary counts it: a host agent as its workers, each peak declared or measured. */
export function membersAtEnd<W extends { workers: number; backend: string; attainableFlops: number }>(
  ready: readonly W[],
  declaredOf: (w: W) => number | null,
): Pick<Parameters<typeof summarize>[0], 'workers' | 'members' | 'backends' | 'peaks'> {
  return {
    workers: ready.reduce((k, w) => k + w.workers, 0),
    members: ready.length,
    backends: [...new Set(ready.map((w) => w.backend))],
    peaks: ready.map((w) => ({ declared: declaredOf(w), attainable: w.attainableFlops })),
  };
}

export function summarize(o: {
  config: Config;
  records: StepRecord[];
  lastEval: EvalRecord | null;
  params: number;
  /** Tokens per sample of a sequence model (null: throughput is in samples). */
  tokensPerSample?: number | null;
  workers: number;
  members: number;
  backends: string[];
  wallSeconds: number;
  /** The run's fault counters, as a checkpoint carries them. */
  counters: CheckpointCounters;
  stoppedBy: RunSummary['stoppedBy'];
  /** Steps completed in the whole run (a resumed run counts the ones before the resume). */
  stepsDone: number;
  compression?: CompressionReport;
  meter: ComputeMeter;
  peaks: Array<{ declared: number | null; attainable: number }>;
}): RunSummary {
  const resumedAt = o.stepsDone - o.records.length;
  const last = o.records[o.records.length - 1];
  const declared = o.peaks.filter((p) => p.declared).length;
  const stats = stepStats(resumedAt > 0 ? [...earlierRecords(o.config.out, resumedAt), ...o.records] : o.records);
  return {
    steps: o.stepsDone,
    workers: o.workers,
    members: o.members,
    backend: o.backends.join(',') || 'none',
    batchSize: o.config.batchSize,
    accumulate: o.config.accumulate,
    params: o.params,
    epochs: last?.epoch ?? 0,
    finalLoss: last?.loss ?? null,
    testLoss: o.lastEval?.testLoss ?? null,
    testAccuracy: o.lastEval?.testAccuracy ?? null,
    samplesPerSec: stats.samplesPerSec,
    tokensPerSec: o.tokensPerSample ? (stats.samplesPerSec ?? 0) * o.tokensPerSample : null,
    medianStepMs: stats.medianStepMs,
    wireBytesPerStep: stats.wireBytesPerStep,
    wireDtype: o.config.wireDtype,
    compression: o.compression ?? NO_COMPRESSION_REPORT,
    wallSeconds: o.wallSeconds,
    ...(resumedAt > 0 ? { resumedAt } : {}),
    staleResults: o.counters.stale,
    reassignedShards: o.counters.reassigned,
    recomputedShards: o.counters.recomputed,
    outlierShards: o.counters.outliers,
    droppedWorkers: o.counters.dropped,
    skippedSteps: o.counters.skipped,
    stoppedBy: o.stoppedBy,
    totalFlops: o.meter.cumulativeFlops,
    hardwareFlops: o.meter.hardwareFlops,
    modelFlopsPerSec: stats.modelFlopsPerSec,
    mfu: stats.mfu,
    mfuPeakFlops: stats.mfuPeakFlops,
    budget: o.meter.budget,
    budgetUsed: o.meter.budget !== null ? o.meter.cumulativeFlops / o.meter.budget : null,
    peakFlops: o.peaks.reduce((s, p) => s + (p.declared ?? p.attainable), 0),
    peakSource:
      o.peaks.length === 0 ? 'none' : declared === o.peaks.length ? 'declared' : declared === 0 ? 'measured' : 'mixed',
    attainableFlops: o.peaks.reduce((s, p) => s + p.attainable, 0),
    timeline: stats.timeline,
    ...stats.shards,
  };
}

/** What the step records alone say: medians after warm-up (summary.json's, and a stopped run's in a report). */
export interface StepStats {
  samplesPerSec: number | null;
  medianStepMs: number | null;
  wireBytesPerStep: number | null;
  modelFlopsPerSec: number | null;
  mfu: number | null;
  mfuPeakFlops: number | null;
  timeline: RunSummary['timeline'];
  shards: Pick<RunSummary, 'shardTimeline'>;
}

export function stepStats(records: readonly StepRecord[]): StepStats {
  const steady = records.slice(warmupSteps(records.length)).filter((r) => !r.skipped);
  const stats = {} as Record<keyof StepTimeline, { median: number; p95: number }>;
  for (const k of TIMELINE_KEYS) {
    const xs = steady.map((r) => r.timeline[k]);
    stats[k] = { median: median(xs) ?? 0, p95: percentile(xs, 0.95) ?? 0 };
  }
  const share = (f: (t: StepTimeline) => number) => median(steady.map((r) => f(r.timeline) / r.stepMs));
  return {
    samplesPerSec: median(steady.map((r) => r.samplesPerSec)),
    medianStepMs: median(steady.map((r) => r.stepMs)),
    wireBytesPerStep: median(steady.map((r) => r.wireBytes)),
    modelFlopsPerSec: median(steady.map((r) => r.modelFlopsPerSec)),
    mfu: median(steady.map((r) => r.mfu).filter((m): m is number => m !== null && m !== undefined)),
    mfuPeakFlops: median(steady.flatMap((r) => (r.peakFlops !== undefined ? [r.peakFlops] : []))),
    timeline: {
      ...stats,
      overheadShare: share((t) => t.overheadMs),
      wireShare: share((t) => t.wireMs + t.broadcastMs),
      codecShare: share((t) => t.encodeMs + t.decodeMs + t.workerEncodeMs),
    },
    shards: shardStats(steady),
  };
}

/**
 * A resumed run's step records from before this session (steps 1..upTo of its metrics.jsonl),
 * so that its medians cover the whole run; none when the file is not there.
 */
function earlierRecords(dir: string | null, upTo: number): StepRecord[] {
  const file = dir ? join(dir, 'metrics.jsonl') : null;
  if (!file || !existsSync(file)) return [];
  const out: StepRecord[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as StepRecord;
      if (typeof r.step === 'number' && r.step <= upTo && r.timeline) out.push(r);
    } catch {
      // a torn line
    }
  }
  return out;
}

/** Per slice shard, median and p95 of its entries over the steady steps that have them; {} without shards. */
function shardStats(steady: StepRecord[]): Pick<RunSummary, 'shardTimeline'> {
  const rows = steady.map((r) => r.shardTimeline).filter((t): t is ShardStepTimeline[] => Boolean(t?.length));
  if (!rows.length) return {};
  const k = Math.max(...rows.map((t) => t.length));
  const shardTimeline = Array.from({ length: k }, (_, i) => {
    const mine = rows.flatMap((t) => (t[i] ? [t[i]] : []));
    const stats = {} as Record<keyof ShardStepTimeline, { median: number; p95: number }>;
    for (const key of SHARD_TIMELINE_KEYS) {
      const xs = mine.map((t) => t[key]);
      stats[key] = { median: median(xs) ?? 0, p95: percentile(xs, 0.95) ?? 0 };
    }
    return stats;
  });
  return { shardTimeline };
}
