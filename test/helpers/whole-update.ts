/**
 * The whole-model update exactly as Coordinator.step runs it — one arena, the SIMD kernels
 * (or the scalar loops), TreeReducer over the virtual shards, the norm by blocks, clip, Adam — for
 * tests that compare a sliced or sharded update with it bit for bit.
 */
import { createArena, type Arena } from '../../coordinator/kernels/arena.js';
import { simdReduceOps } from '../../coordinator/kernels/reduce-simd.js';
import { Adam, type AdamHyper } from '../../coordinator/optimizers/adam.js';
import { clipByGlobalNorm } from '../../coordinator/optimizers/clip.js';
import { jsReduceOps, TreeReducer, type ReduceOps } from '../../coordinator/reducer.js';
import { meanInBlocks } from '../../coordinator/slices/blocks.js';
import type { TreeNode } from '../../shared/job/shard-tree.js';
import type { UpdateResult } from '../../coordinator/slices/sliced-update.js';

export class WholeUpdate {
  readonly adam: Adam;
  private readonly ops: ReduceOps;
  private readonly sum: Float64Array;
  private readonly spare: Float32Array[] = [];

  constructor(n: number, hyper: AdamHyper, simd = true) {
    const arena = simd ? (createArena(n) as Arena) : null;
    this.adam = new Adam(hyper, n, undefined, { arena, simd });
    this.ops = (arena && simdReduceOps(arena)) ?? jsReduceOps;
    this.sum = arena?.sum ?? new Float64Array(n);
  }

  get params(): Float32Array {
    return this.adam.params;
  }

  /** A micro-step's reduction over `leaves` virtual shards; each node's gradients landed as the dispatcher does. */
  fold(leaves: number): {
    add(node: TreeNode, grads: Float32Array, lossSum: number, count: number): boolean;
    r: TreeReducer;
  } {
    const r = new TreeReducer(leaves, this.sum, this.ops, this.spare);
    return { r, add: (node, grads, lossSum, count) => r.add(node, this.ops.land(grads), lossSum, count) };
  }

  update(count: number, lossSum: number, clipNorm: number, lr: number): UpdateResult {
    const grads = this.adam.grads;
    const { finite, sqNorm } = meanInBlocks(this.ops, this.sum, count, grads);
    if (!finite || !Number.isFinite(lossSum)) return { finite, gradNorm: NaN, skipped: true };
    const gradNorm = clipByGlobalNorm(grads, clipNorm, Math.sqrt(sqNorm));
    this.adam.apply(this.adam.params, grads, lr);
    return { finite, gradNorm, skipped: false };
  }
}
