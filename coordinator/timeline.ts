/**
 * Assemble one step's timeline from the coordinator's own spans and what each worker reported
 * (see StepTimeline in summary.ts for what every entry means).
 */
import type { PhaseStats } from './phase.js';
import type { StepTimeline, WorkerStepTimeline } from './summary.js';

type PerWorker = Record<string, number>;

const addInto = (to: PerWorker, from: PerWorker) => {
  for (const [id, x] of Object.entries(from)) to[id] = (to[id] ?? 0) + x;
};

/** What a step's work phases (one per micro-step) add up to, per worker and in all. */
export class StepTally {
  lossSum = 0;
  count = 0;
  /** The most shards (workers) any micro-step was split into. */
  workers = 0;
  reduceMs = 0;
  readonly computeMs: PerWorker = {};
  readonly samples: PerWorker = {};
  readonly spans = { decodeMs: {} as PerWorker, encodeMs: {} as PerWorker, wireMs: {} as PerWorker };

  add(r: { lossSum: number; count: number; stats: PhaseStats; reduceMs: number }): void {
    this.lossSum += r.lossSum;
    this.count += r.count;
    this.reduceMs += r.reduceMs;
    this.workers = Math.max(this.workers, r.stats.shards);
    addInto(this.computeMs, r.stats.computeMs);
    addInto(this.samples, r.stats.samples);
    for (const k of ['decodeMs', 'encodeMs', 'wireMs'] as const) addInto(this.spans[k], r.stats[k]);
  }
}

const maxOf = (rec: PerWorker) => Math.max(0, ...Object.values(rec));

export function stepTimeline(
  stepMs: number,
  computeMs: PerWorker,
  worker: { decodeMs: PerWorker; encodeMs: PerWorker; wireMs: PerWorker },
  params: { encodeMs: number; broadcastMs: number },
  reduceMs: number,
  optimizerMs: number,
): { timeline: StepTimeline; workerTimeline: Record<string, WorkerStepTimeline> } {
  const workerTimeline: Record<string, WorkerStepTimeline> = {};
  const encodeMs: PerWorker = {};
  for (const id of Object.keys(computeMs)) {
    const t = {
      decodeMs: worker.decodeMs[id] ?? 0,
      computeMs: computeMs[id],
      encodeMs: worker.encodeMs[id] ?? 0,
      wireMs: worker.wireMs[id] ?? 0,
    };
    // A worker reports the encode time of its previous result frame (protocol.ts). When that
    // frame was a late result of an earlier step (a worker stalled while encoding it), the
    // figure does not fit in this step: it is that step's, and is left out of this one.
    if (t.decodeMs + t.computeMs + t.encodeMs + t.wireMs > stepMs) t.encodeMs = 0;
    encodeMs[id] = t.encodeMs;
    workerTimeline[id] = { ...t, waitMs: Math.max(0, stepMs - t.decodeMs - t.computeMs - t.encodeMs - t.wireMs) };
  }
  const slowest = maxOf(computeMs);
  const timeline: StepTimeline = {
    encodeMs: params.encodeMs,
    broadcastMs: params.broadcastMs,
    decodeMs: maxOf(worker.decodeMs),
    slowestComputeMs: slowest,
    workerEncodeMs: maxOf(encodeMs),
    wireMs: maxOf(worker.wireMs),
    reduceMs,
    optimizerMs,
    overheadMs: Math.max(0, stepMs - slowest),
    idleMs: 0,
  };
  const spans =
    timeline.encodeMs +
    timeline.broadcastMs +
    timeline.decodeMs +
    slowest +
    timeline.workerEncodeMs +
    timeline.wireMs +
    reduceMs +
    optimizerMs;
  timeline.idleMs = Math.max(0, stepMs - spans);
  return { timeline, workerTimeline };
}
