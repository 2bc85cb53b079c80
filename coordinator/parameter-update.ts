/**
 * The coordinator's one copy of the parameters and of Adam's state, and a step's update of
 * them: mean gradient → clip → Adam (or the fused pass, already made inside the last fold), the
 * slice shards' update when they hold the parameters, or a skip when the loss or the mean is
 * not finite. Every array of a step lives in one WebAssembly memory (kernels/arena.ts).
 */
import type { Config } from '../shared/job/config.js';
import type { Logger } from '../shared/util/log.js';
import { FusedUpdate } from './fused-update.js';
import { createArena, type Arena } from './kernels/arena.js';
import { FusedStep } from './kernels/fused-simd.js';
import { simdReduceOps } from './kernels/reduce-simd.js';
import { Adam, type AdamState } from './optimizers/adam.js';
import { clipByGlobalNorm } from './optimizers/clip.js';
import { learningRate } from './optimizers/schedule.js';
import { jsReduceOps, type ReduceOps } from './reducer.js';
import { meanInBlocks } from './slices/blocks.js';
import type { RemoteSlices, SlicedStep } from './slices/remote-slices.js';

/** Models up to this many parameters get the arena's spare slots (two more arrays of their size). */
const SPARES_UP_TO = 16 << 20;

export interface AppliedUpdate {
  /** Nothing changed: the loss or the mean gradient was not finite. */
  skipped: boolean;
  lr: number;
  gradNorm: number;
  /** When the update began (after the last fold). */
  startedAt: number;
  /** The fused pass's time: spent inside the last fold, but the update's. */
  fusedMs: number;
  /** The slice shards' account of the step, when they hold the parameters. */
  sliced: SlicedStep | null;
}

export class ParameterUpdate {
  /** Null where WebAssembly memory could not be had: the scalar loops over plain arrays. */
  readonly arena: Arena | null;
  readonly params: Float32Array;
  /** The step's gradient sum, reused every step (the mean leaves it zeroed). */
  readonly gradSum: Float64Array;
  /** The passes over gradients: SIMD kernels in the arena shared with Adam, or the scalar loops. */
  readonly ops: ReduceOps;
  /** The last fold, the mean and Adam in one pass, where it applies (fused-update.ts). */
  readonly fused: FusedUpdate;
  /** One more for every step that changed the parameters. */
  version = 0;
  /** Steps that changed nothing (non-finite loss or gradient). */
  skipped = 0;
  private readonly adam: Adam;
  /** The step's mean gradient: Adam's own array, so nothing is copied into the optimizer. */
  private readonly grads: Float32Array;

  constructor(
    private readonly cfg: Config,
    n: number,
    init: Float32Array,
    private readonly slices: RemoteSlices | null,
    /** The dispatcher's count of results taken although not finite (see FusedUpdate). */
    nonFiniteTaken: () => number,
    private readonly log: Logger,
  ) {
    // Adam trains its params in place, and results are checked, summed and averaged in the
    // arena by SIMD kernels. Two spare slots hold results that wait for an earlier one (or a
    // tree sibling), where the kernels add them without a copy; a model too large goes without.
    this.arena = (n <= SPARES_UP_TO ? createArena(n, 2) : null) ?? createArena(n);
    this.adam = new Adam(cfg.optimizer, n, undefined, { arena: this.arena });
    this.params = this.adam.params;
    this.params.set(init);
    this.grads = this.adam.grads;
    this.gradSum = this.arena?.sum ?? new Float64Array(n);
    this.ops = (this.arena && simdReduceOps(this.arena)) ?? jsReduceOps;
    const pass = slices || this.ops === jsReduceOps ? null : FusedStep.over(this.arena, this.adam);
    this.fused = new FusedUpdate(pass, cfg, this.ops, nonFiniteTaken);
  }

  get adamState(): AdamState {
    return this.adam.state;
  }

  /** Parameters and optimizer state from a checkpoint or from the slice shards. */
  load(params: Float32Array, adam: AdamState): void {
    this.params.set(params);
    this.adam.load(adam);
  }

  /** The update after a step's last micro-step (its results summed into gradSum). */
  async apply(step: number, lossSum: number, count: number): Promise<AppliedUpdate> {
    this.fused.awaitingStep(-1);
    const fused = this.fused.take(step);
    const startedAt = performance.now();
    const { optimizer } = this.cfg;
    const lr = learningRate(optimizer, step, this.cfg.steps);
    // The norm summed by fixed blocks, so that a sliced update (slices/) gives the same bits.
    const slices = this.slices;
    const sliced = slices ? await slices.update(step, count, lossSum, optimizer.clipNorm, lr, this.version + 1) : null;
    // With slice shards the norm came back from them (sqNorm is unused then).
    const { finite, sqNorm } =
      fused ??
      (sliced ? { finite: sliced.finite, sqNorm: NaN } : meanInBlocks(this.ops, this.gradSum, count, this.grads));
    if (fused && !finite)
      throw new Error(`step ${step + 1}: the fused update found a non-finite mean of finite results`);
    const skipped = !finite || !Number.isFinite(lossSum);
    let gradNorm = NaN;
    if (sliced && !skipped) {
      gradNorm = sliced.gradNorm; // the shards clipped and applied Adam
      this.version++;
    } else if (skipped) {
      // As loss-scaling optimizers do: leave parameters and Adam state alone, move on.
      this.skipped++;
      this.log.warn(
        { step: step + 1, loss: lossSum / count },
        'step skipped: non-finite loss or gradient; lower optimizer.lr or set optimizer.clipNorm',
      );
    } else {
      gradNorm = clipByGlobalNorm(this.grads, optimizer.clipNorm, Math.sqrt(sqNorm)); // fused: no clipping, the norm only
      if (!fused) this.adam.apply(this.params, this.grads, lr);
      this.version++;
    }
    return { skipped, lr, gradNorm, startedAt, fusedMs: fused?.ms ?? 0, sliced };
  }
}
