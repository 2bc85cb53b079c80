/**
 * How the parameters are cut into slices, each reduced and updated on its own (by a
 * parameter-server shard, slice-owner.ts), with results bit-identical to the whole update.
 *
 * Everything an update does is elementwise — the float64 sum (shard order), the mean, the
 * clipping scale, Adam — except one reduction over all parameters: the squared global norm
 * that clipping divides by. Float addition is not associative, so a norm summed per slice and
 * then across slices would change with the number of slices. The norm is therefore defined
 * over fixed blocks of NORM_BLOCK elements: each block's squared sum (the reduce kernel's own
 * pass), then the blocks' sums added left to right in block order. A whole-model update
 * (Coordinator) and a sliced one compute the same block sums and add them in the same order.
 *
 * Slices start on block boundaries but otherwise at any element, not at tensor (slot)
 * boundaries: one tensor may hold most of a model (the first kernel of the reference MLP is
 * 60 % of it), so slot-aligned slices could not be balanced, and could not outnumber tensors.
 * A slice is at most one block larger than another.
 */
import { fail } from '../../shared/util/errors.js';
import type { ReduceOps } from '../reducer.js';

/** Elements per norm block: even (the mean kernel pairs lanes), small against a model. */
export const NORM_BLOCK = 4096;

/** Elements [from, to) of the flat parameter vector (the model layout's order). */
export interface SliceRange {
  from: number;
  to: number;
}

/** `k` contiguous slices of `total` parameters, on block boundaries, as even as blocks allow. */
export function sliceBounds(total: number, k: number): SliceRange[] {
  const blocks = Math.ceil(total / NORM_BLOCK);
  if (!Number.isInteger(k) || k < 1) fail('CONFIG_INVALID', `shards must be a whole number ≥ 1, not ${k}`);
  if (k > Math.max(1, blocks)) {
    fail(
      'CONFIG_INVALID',
      `shards ${k}: a model of ${total} parameters has only ${blocks} blocks of ${NORM_BLOCK}; use at most ${blocks}`,
    );
  }
  const at = (i: number) => Math.min(total, Math.round((blocks * i) / k) * NORM_BLOCK);
  return Array.from({ length: k }, (_, i) => ({ from: at(i), to: at(i + 1) }));
}

/** Blocks in a slice that starts on a block boundary. */
export function blocksIn(size: number): number {
  return Math.ceil(size / NORM_BLOCK);
}

/**
 * The mean gradient of `sum` (as ReduceOps.mean), block by block: each block's squared norm
 * into `blockSq` (its length blocksIn(sum.length)). True if every entry is finite.
 */
export function meanByBlock(
  ops: ReduceOps,
  sum: Float64Array,
  count: number,
  out: Float32Array,
  blockSq: Float64Array,
): boolean {
  let finite = true;
  for (let b = 0, at = 0; at < out.length; b++, at += NORM_BLOCK) {
    const end = Math.min(out.length, at + NORM_BLOCK);
    const r = ops.mean(sum.subarray(at, end), count, out.subarray(at, end));
    blockSq[b] = r.sqNorm;
    finite &&= r.finite;
  }
  return finite;
}

/** The squared global norm from the blocks' squared sums, in block order (slices in slice order). */
export function sumInOrder(parts: readonly Float64Array[]): number {
  let sq = 0;
  for (const p of parts) for (let i = 0; i < p.length; i++) sq += p[i];
  return sq;
}

/** ReduceOps.mean over the whole model with the norm summed by blocks: what the Coordinator runs. */
export function meanInBlocks(
  ops: ReduceOps,
  sum: Float64Array,
  count: number,
  out: Float32Array,
): { finite: boolean; sqNorm: number } {
  const blockSq = new Float64Array(blocksIn(out.length));
  const finite = meanByBlock(ops, sum, count, out, blockSq);
  return { finite, sqNorm: sumInOrder([blockSq]) };
}
