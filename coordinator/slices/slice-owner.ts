/**
 * One slice of the parameters and everything an update needs of it: its float64 gradient sum,
 * its mean gradient, its parameters and Adam moments — in an arena of its own, so the SIMD
 * reduce and Adam kernels run on it as on the whole model. A parameter-server shard owns one;
 * so could the coordinator, several. The update is split in two around the one global value:
 *   reduce(count)  mean of the sum, each block's squared norm (blocks.ts), finiteness
 *   apply(norm,…)  clip by the global norm (every slice's blocks summed in order), Adam
 * Without clipping no global value is needed, but one global decision is: a step with a
 * non-finite gradient anywhere is skipped everywhere. `applyEarly` applies Adam at once and
 * keeps the state it replaced until the step is known to count (`settle`) or not (`revert`).
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
  /** The state an early apply replaced (params, m, v back to back), while its step may still be skipped. */
  private before: { arrays: Float32Array; adam: Omit<AdamState, 'm' | 'v'> } | null = null;
  private beforeArrays: Float32Array | null = null;

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

  /**
   * Adam now, with no clipping (clipNorm unset: the global norm changes nothing), keeping the
   * state it replaces so that `revert` can undo it if another slice's gradient is not finite.
   */
  applyEarly(lr: number): void {
    const n = this.size;
    this.beforeArrays ??= new Float32Array(3 * n);
    const keep = this.beforeArrays;
    const { m, v, accBeta1, accBeta2, step } = this.adam.state;
    keep.set(this.params, 0);
    keep.set(m, n);
    keep.set(v, 2 * n);
    this.before = { arrays: keep, adam: { accBeta1, accBeta2, step } };
    this.apply(Number.NaN, 0, lr);
  }

  /** The early apply's step counts: forget the state it replaced. */
  settle(): void {
    this.before = null;
  }

  /** The early apply's step is skipped: back to the state before it. False if none was applied. */
  revert(): boolean {
    const b = this.before;
    if (!b) return false;
    const n = this.size;
    this.params.set(b.arrays.subarray(0, n));
    this.adam.load({ ...b.adam, m: b.arrays.subarray(n, 2 * n), v: b.arrays.subarray(2 * n) });
    this.before = null;
    return true;
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
