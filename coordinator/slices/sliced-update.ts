/**
 * The optimizer step over K slices (blocks.ts, slice-owner.ts): results folded slice by slice
 * in data-shard order, then the two-phase update — every slice's mean and block norms, the
 * global norm summed in block order, then clip and Adam per slice — giving the same bits as
 * the whole-model step the Coordinator runs, for any K. The slices here are in this process;
 * a shard process runs one SliceOwner with the same calls.
 */
import type { AdamHyper, AdamState } from '../optimizers/adam.js';
import type { TreeNode } from '../../shared/job/shard-tree.js';
import type { Reduction } from '../reducer.js';
import { sliceBounds, sumInOrder } from './blocks.js';
import { SliceOwner } from './slice-owner.js';

/** One reduction (a micro-step) over a tree of virtual shards, fed whole gradients. */
export class SlicedFold {
  constructor(
    private readonly owners: readonly SliceOwner[],
    private readonly reducers: readonly Reduction[],
  ) {}

  /** Add one tree node's gradient sum, slice by slice; false if it was already added. */
  add(node: TreeNode, grads: Float32Array, lossSum: number, count: number): boolean {
    let fresh = true;
    this.owners.forEach(({ range }, k) => {
      fresh = this.reducers[k].add(node, grads.subarray(range.from, range.to), lossSum, count) && fresh;
    });
    return fresh;
  }

  get complete(): boolean {
    return this.reducers.every((r) => r.complete);
  }

  totals(): { lossSum: number; count: number } {
    return this.reducers[0].totals();
  }
}

/**
 * Whether a slice may apply Adam as soon as its own sums are reduced: no clipping (the global
 * norm changes nothing) and a finite loss (else the step is skipped whatever the gradients).
 */
export function earlyApply(clipNorm: number, lossSum: number): boolean {
  return !(clipNorm > 0) && Number.isFinite(lossSum);
}

export interface UpdateResult {
  /** Every mean-gradient entry was finite (else the step is skipped: nothing changes). */
  finite: boolean;
  /** The global L2 norm before clipping (NaN when skipped, as the Coordinator reports it). */
  gradNorm: number;
  skipped: boolean;
}

export class SlicedUpdate {
  readonly owners: readonly SliceOwner[];

  constructor(
    readonly totalParams: number,
    k: number,
    hyper: AdamHyper,
    opts: { simd?: boolean } = {},
  ) {
    this.owners = sliceBounds(totalParams, k).map((r) => new SliceOwner(r, hyper, opts));
  }

  /** A reduction over `leaves` virtual shards into the step's sums (they accumulate across micro-steps). */
  fold(leaves: number): SlicedFold {
    return new SlicedFold(
      this.owners,
      this.owners.map((o) => o.reducer(leaves)),
    );
  }

  /**
   * Mean, global norm, and — unless a gradient or the loss is not finite — clip and Adam.
   * Without clipping each slice applies Adam as soon as it is reduced, as a shard does
   * (slice-server.ts), and a later slice's non-finite gradient reverts the ones before it.
   */
  update(count: number, lossSum: number, clipNorm: number, lr: number): UpdateResult {
    if (earlyApply(clipNorm, lossSum)) {
      const parts = this.owners.map((o) => {
        const p = o.reduce(count);
        if (p.finite) o.applyEarly(lr);
        return p;
      });
      const finite = parts.every((p) => p.finite);
      for (const o of this.owners)
        if (finite) o.settle();
        else o.revert();
      return { finite, gradNorm: finite ? Math.sqrt(sumInOrder(parts.map((p) => p.blockSq))) : NaN, skipped: !finite };
    }
    const parts = this.owners.map((o) => o.reduce(count));
    const finite = parts.every((p) => p.finite);
    if (!finite || !Number.isFinite(lossSum)) return { finite, gradNorm: NaN, skipped: true };
    const norm = Math.sqrt(sumInOrder(parts.map((p) => p.blockSq)));
    for (const o of this.owners) o.apply(norm, clipNorm, lr);
    return { finite, gradNorm: norm, skipped: false };
  }

  /** The whole model's parameters and optimizer state, assembled from the slices (copies). */
  gather(): { params: Float32Array; adam: AdamState } {
    const n = this.totalParams;
    const params = new Float32Array(n);
    const m = new Float32Array(n);
    const v = new Float32Array(n);
    for (const o of this.owners) {
      params.set(o.params, o.range.from);
      m.set(o.state.m, o.range.from);
      v.set(o.state.v, o.range.from);
    }
    const { accBeta1, accBeta2, step } = this.owners[0].state; // every slice has taken the same steps
    return { params, adam: { m, v, accBeta1, accBeta2, step } };
  }

  /** Take over a whole model's parameters and optimizer state (any slice count wrote it). */
  load(params: Float32Array, adam: AdamState): void {
    for (const o of this.owners) o.load(params, adam);
  }
}
