/**
 * One slice of the parameters and everything an update needs of it: its float64 gradient sum,
 * its mean gradient, its parameters and Adam moments — in an arena of its own, so the SIMD
 * reduce and Adam kernels run on it as on the whole model. A parameter-server shard owns one;
 * so could the coordinator, several. The update is split in two around the one global value:
 *   reduce(count)  mean of the sum, each block's squared norm (blocks.ts), finiteness
 *   apply(norm,…)  clip by the global norm (every slice's blocks summed in order), Adam
 */
import { createArena } from '../kernels/arena.js';
import { simdReduceOps } from '../kernels/reduce-simd.js';
import { Adam, type AdamHyper, type AdamState } from '../optimizers/adam.js';
import { clipByGlobalNorm } from '../optimizers/clip.js';
import { jsReduceOps, LeafFold, TreeReducer, type Reduction, type ReduceOps } from '../reducer.js';
import { blocksIn, meanByBlock, type SliceRange } from './blocks.js';

export class SliceOwner {
  readonly size: number;
  /** This slice's parameters, trained in place. */
  readonly params: Float32Array;
  readonly ops: ReduceOps;
  private readonly adam: Adam;
  private readonly sum: Float64Array;
  private readonly blockSq: Float64Array;
  private readonly spare: Float32Array[] = [];

  /** opts.simd false: the scalar loops on plain arrays (the kernels' reference). */
  constructor(
    readonly range: SliceRange,
    hyper: AdamHyper,
    opts: { simd?: boolean } = {},
  ) {
    this.size = range.to - range.from;
    const arena = opts.simd === false ? null : createArena(this.size);
    this.adam = new Adam(hyper, this.size, undefined, { arena, simd: opts.simd });
    this.params = this.adam.params;
    this.sum = arena?.sum ?? new Float64Array(this.size);
    this.ops = (arena && simdReduceOps(arena)) ?? jsReduceOps;
    this.blockSq = new Float64Array(blocksIn(this.size));
  }

  /**
   * A micro-batch's reducer over this slice: the fixed tree over `leaves` virtual shards, or, for
   * per-worker shards, the leaf-by-leaf float64 fold the unsharded coordinator uses.
   */
  reducer(leaves: number, leafFold = false): Reduction {
    return leafFold
      ? new LeafFold(leaves, this.sum, this.ops, this.spare)
      : new TreeReducer(leaves, this.sum, this.ops, this.spare);
  }

  /** Mean gradient of the step's sum (which it zeroes); each block's squared norm, in block order. */
  reduce(count: number): { finite: boolean; blockSq: Float64Array } {
    const finite = meanByBlock(this.ops, this.sum, count, this.adam.grads, this.blockSq);
    return { finite, blockSq: this.blockSq };
  }

  /** Clip the mean gradient by the global norm (`norm`, over every slice), then one Adam step. */
  apply(norm: number, clipNorm: number, lr: number): void {
    clipByGlobalNorm(this.adam.grads, clipNorm, norm);
    this.adam.apply(this.params, this.adam.grads, lr);
  }

  /** The optimizer state of this slice (live views: copy before the next step). */
  get state(): AdamState {
    return this.adam.state;
  }

  /** Take over this slice of a whole model's parameters and optimizer state (a checkpoint's). */
  load(params: Float32Array, adam: AdamState): void {
    const { from, to } = this.range;
    this.loadSlice(params.subarray(from, to), { ...adam, m: adam.m.subarray(from, to), v: adam.v.subarray(from, to) });
  }

  /** Take over parameters and optimizer state of this slice alone (arrays of its size, copied). */
  loadSlice(params: Float32Array, adam: AdamState): void {
    this.params.set(params);
    this.adam.load(adam);
  }
}
