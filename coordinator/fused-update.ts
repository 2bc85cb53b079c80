/**
 * When the coordinator lets the fused pass (kernels/fused-simd.ts) make a step's update inside
 * its last fold (a per-worker shard's, or the tree root's), and what that update reported. Only
 * when nothing needs the whole mean before Adam: the step's last micro-step, no clipping, no
 * slice shards, every result finite (each was checked before it was taken, and a tree root is
 * offered only when its last pair sum is finite; a mean of finite float32 sums over at least as
 * many samples is finite, so the step cannot be skipped) and a finite loss. And only while step() awaits that
 * step: results that arrive while the coordinator waits for workers or stops must leave the
 * parameters as a checkpoint of the last step has them.
 */
import type { Config } from '../shared/job/config.js';
import type { FusedStep } from './kernels/fused-simd.js';
import { learningRate } from './optimizers/schedule.js';
import type { LastFold, ReduceOps } from './reducer.js';

export interface FusedDone {
  step: number;
  /** What the mean pass would have returned. */
  finite: boolean;
  sqNorm: number;
  /** The pass's time (the update's, though it ran inside the reduction). */
  ms: number;
}

export class FusedUpdate {
  private done: FusedDone | null = null;
  private awaiting = -1;
  private from = { step: -1, nonFiniteTaken: 0 };

  constructor(
    private readonly fused: FusedStep | null,
    private readonly cfg: Config,
    private readonly ops: ReduceOps,
    /** The dispatcher's count of results taken although not finite. */
    private readonly nonFiniteTaken: () => number,
  ) {}

  /** A step's first results are asked for now. */
  begin(step: number): void {
    this.from = { step, nonFiniteTaken: this.nonFiniteTaken() };
  }

  /** step() awaits this step's results now (-1: none). */
  awaitingStep(step: number): void {
    this.awaiting = step;
  }

  /** The hook for a micro-step's reduction (none where the pass cannot apply); `before`: earlier micro-steps' totals. */
  lastFold(step: number, micro: number, before: { lossSum: number; count: number }): LastFold | undefined {
    const fused = this.fused;
    if (!fused || micro !== this.cfg.accumulate - 1 || this.cfg.optimizer.clipNorm > 0) return undefined;
    const { lossSum: earlierLoss, count: earlierCount } = before;
    return (grads, t) => {
      const from = this.from;
      if (this.awaiting !== step || from.step !== step || from.nonFiniteTaken !== this.nonFiniteTaken()) return false;
      if (!Number.isFinite(earlierLoss + t.lossSum)) return false;
      const t0 = performance.now();
      const lr = learningRate(this.cfg.optimizer, step, this.cfg.steps);
      const r = fused.run(this.ops.land(grads), earlierCount + t.count, lr);
      this.done = { step, ...r, ms: performance.now() - t0 };
      return true;
    };
  }

  /** The update the pass made for this step, if it made it. */
  take(step: number): FusedDone | null {
    const d = this.done?.step === step ? this.done : null;
    this.done = null;
    return d;
  }
}
