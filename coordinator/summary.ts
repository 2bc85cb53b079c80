/** The records a run produces and how they condense into summary.json. */
import type { Config } from '../shared/config.js';

export interface StepRecord {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  samples: number;
  stepMs: number;
  samplesPerSec: number;
  workers: number;
  /** Compute time each worker reported for this step (ms, summed over its shards). */
  workerComputeMs: Record<string, number>;
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
  workers: number;
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
  medianStepMs: number | null;
  wallSeconds: number;
  staleResults: number;
  reassignedShards: number;
  droppedWorkers: number;
  skippedSteps: number;
}

export function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Steps to skip as warm-up before taking throughput medians (JIT, first allocations). */
export function warmupSteps(n: number): number {
  return n < 10 ? 0 : Math.min(20, Math.max(1, Math.floor(n / 10)));
}

export function summarize(o: {
  config: Config;
  records: StepRecord[];
  lastEval: EvalRecord | null;
  params: number;
  workers: number;
  backends: string[];
  wallSeconds: number;
  staleResults: number;
  reassignedShards: number;
  droppedWorkers: number;
  skippedSteps: number;
}): RunSummary {
  const steady = o.records.slice(warmupSteps(o.records.length));
  const last = o.records[o.records.length - 1];
  return {
    steps: o.records.length,
    workers: o.workers,
    backend: o.backends.join(',') || 'none',
    batchSize: o.config.batchSize,
    accumulate: o.config.accumulate,
    params: o.params,
    epochs: last?.epoch ?? 0,
    finalLoss: last?.loss ?? null,
    testLoss: o.lastEval?.testLoss ?? null,
    testAccuracy: o.lastEval?.testAccuracy ?? null,
    samplesPerSec: median(steady.map((r) => r.samplesPerSec)),
    medianStepMs: median(steady.map((r) => r.stepMs)),
    wallSeconds: o.wallSeconds,
    staleResults: o.staleResults,
    reassignedShards: o.reassignedShards,
    droppedWorkers: o.droppedWorkers,
    skippedSteps: o.skippedSteps,
  };
}
