/**
 * The passes a step makes over gradients, and the tree that sums a micro-batch's virtual
 * shards. The passes have two implementations: the scalar loops below (the reference, and the
 * fallback) and WebAssembly SIMD kernels (kernels/reduce-simd.ts) that work
 * in the coordinator's arena; test/coordinator/reduce-ops.test.ts runs the same suite on both.
 */
import { addInto, nodeExists, treeDepth, type TreeNode } from '../shared/job/shard-tree.js';

export interface ReduceOps {
  /** `grads` where the other ops read it fastest: itself, or a copy in the kernels' memory (valid until the next land). */
  land(grads: Float32Array): Float32Array;
  /** No element is NaN or ±Infinity. */
  allFinite(grads: Float32Array): boolean;
  /** sum[i] += grads[i], in float64. */
  fold(grads: Float32Array, sum: Float64Array): void;
  /**
   * into[i] += from[i], in float32 (a tree node's pair sum); true if every sum is finite (two
   * finite results can overflow to ±Infinity; a non-finite addend always gives a non-finite sum).
   */
  add(into: Float32Array, from: Float32Array): boolean;
  /**
   * Mean gradient: the float64 sum divided by the sample count, rounded once to float32, written
   * into `out` (reused across steps). In the same pass: whether every entry is finite (a diverged
   * step is skipped), the squared L2 norm (for clipping and the metrics), and the sum set back
   * to zero, ready for the next step (no separate pass to clear it).
   */
  mean(sum: Float64Array, count: number, out: Float32Array): { finite: boolean; sqNorm: number };
}

/**
 * Takes over a reduction's last fold (the per-worker result or the tree root that completes
 * it), given the reduction's totals with it in: true if it folded `grads` itself (the
 * coordinator's fused fold, mean and Adam, kernels/fused-simd.ts), false to fold as usual.
 * Offered only grads known finite: a result (each is checked when it arrives; the caller
 * counts any it takes anyway) or a root whose last pair sum came out finite.
 */
export type LastFold = (grads: Float32Array, totals: { lossSum: number; count: number }) => boolean;

export const jsReduceOps: ReduceOps = {
  land: (grads) => grads,
  allFinite(grads) {
    let check = 0;
    for (let i = 0; i < grads.length; i++) check += grads[i] * 0; // NaN if any entry is NaN/±Inf
    return check === 0;
  },
  fold(grads, sum) {
    for (let i = 0; i < grads.length; i++) sum[i] += grads[i];
  },
  add(into, from) {
    addInto(into, from); // the one float32 pair sum, as workers and host agents add
    return jsReduceOps.allFinite(into);
  },
  mean(sum, count, out) {
    let check = 0;
    let sq = 0;
    for (let i = 0; i < out.length; i++) {
      out[i] = sum[i] / count;
      sum[i] = 0;
      const r = out[i]; // read back: the float32-rounded value (1e300 becomes Infinity here)
      check += r * 0; // stays 0 unless some entry is NaN or ±Infinity
      sq += r * r;
    }
    return { finite: check === 0, sqNorm: sq };
  },
};

/**
 * Completes a micro-batch's fixed tree over its virtual shards (shared/job/shard-tree.ts) from
 * the nodes workers send, whatever order they arrive in and whoever computed them, so a step's
 * result depends only on the leaves, never on the worker count or network timing (float addition
 * is not associative). A node whose sibling is in adds to it at once, and the sum moves up; one
 * whose sibling is missing waits in a copy taken from `spare` (arrays kept across steps: no
 * fresh memory per step). The root goes into the caller's float64 accumulator (which may hold
 * earlier micro-steps), or to `lastFold`, which may fold it there itself (the fused update).
 * A node reported twice is refused (the caller counts it), never added twice.
 */
export class TreeReducer implements Reduction {
  /** Nodes waiting for their sibling, by "level:index". */
  private readonly waiting = new Map<string, { grads: Float32Array; lossSum: number }>();
  /** Leaves covered by nodes taken so far (a node must not overlap them). */
  private readonly covered: Uint8Array;
  private readonly top: number;
  private loss = 0;
  private samples = 0;
  private done = false;

  constructor(
    readonly leaves: number,
    private readonly sum: Float64Array,
    private readonly ops: ReduceOps = jsReduceOps,
    private readonly spare: Float32Array[] = [],
    private readonly lastFold?: LastFold,
  ) {
    this.covered = new Uint8Array(leaves);
    this.top = treeDepth(leaves);
  }

  /** Can these nodes be added: inside the tree, and covering no leaf already in? */
  accepts(nodes: readonly TreeNode[]): boolean {
    const free = (n: TreeNode) => this.covered.subarray(n.first, n.end).every((c) => c === 0);
    return nodes.every((n) => n.end <= this.leaves && n.first < n.end && free(n));
  }

  /**
   * Add one node's gradient sum (a view, read now and copied only if it must wait). False if a
   * leaf it covers was already added (a duplicate or late result).
   */
  add(node: TreeNode, grads: Float32Array, lossSum: number, count: number): boolean {
    if (!this.accepts([node])) return false;
    this.covered.fill(1, node.first, node.end);
    this.samples += count;
    let { level, index } = node;
    let cur = { grads, lossSum };
    let owned = false; // cur.grads is one of our copies (else the caller's view)
    let finite = true; // a result as it came (checked on arrival), or a finite pair sum
    while (level < this.top) {
      const sib = index ^ 1;
      if (nodeExists(level, sib, this.leaves)) {
        const key = `${level}:${sib}`;
        const other = this.waiting.get(key);
        if (!other) {
          this.waiting.set(`${level}:${index}`, owned ? cur : { grads: this.copy(cur.grads), lossSum: cur.lossSum });
          return true;
        }
        this.waiting.delete(key);
        finite = this.ops.add(other.grads, cur.grads); // float32 addition commutes: left + right either way round
        if (owned) this.spare.push(cur.grads);
        cur = { grads: other.grads, lossSum: other.lossSum + cur.lossSum };
        owned = true;
      }
      level++;
      index >>= 1;
    }
    const totals = { lossSum: this.loss + cur.lossSum, count: this.samples };
    if (!(finite && this.lastFold?.(cur.grads, totals))) this.ops.fold(cur.grads, this.sum);
    this.loss += cur.lossSum;
    if (owned) this.spare.push(cur.grads);
    this.done = true;
    return true;
  }

  private copy(grads: Float32Array): Float32Array {
    let c = this.spare.pop();
    if (c?.length !== grads.length) c = new Float32Array(grads.length);
    c.set(grads);
    return c;
  }

  get complete(): boolean {
    return this.done;
  }

  /** The loss sum and sample count of this reduction, once every leaf is in. */
  totals(): { lossSum: number; count: number } {
    if (!this.complete) throw new Error('TreeReducer.totals before all leaves arrived');
    return { lossSum: this.loss, count: this.samples };
  }
}

/**
 * Adds shard gradients in shard order, whatever order they arrive in, so a step's result
 * depends only on the shards, never on network timing (float addition is not associative).
 * Shards are folded into the caller's float64 accumulator (which may hold earlier micro-steps:
 * no per-step allocation, no second pass) as soon as all earlier shards are in; later ones
 * wait, in copies taken from `spare` (arrays kept across steps: no fresh memory per step). A
 * shard reported twice is refused (the caller counts it), never added twice. This is the sum for
 * `shards: per-worker` (one leaf per worker, each a node of level 0): the float64 fold it always
 * was, cheaper than the tree's float32 pair sums and with the same numbers as before.
 */
export class ShardReducer {
  private readonly waiting = new Map<number, { grads: Float32Array; lossSum: number; count: number }>();
  private nextShard = 0;
  private folded = 0;
  /** Shard 1 was folded before shard 0 (see `fresh`). */
  private oneFirst = false;
  private loss = 0;
  private samples = 0;

  /**
   * `fresh`: the sum holds nothing yet (a step's first micro-step). Into an empty sum, shard 1
   * then shard 0 gives the same float64 as shard 0 then shard 1 (0 + a is a, but for −0, which
   * either order turns to +0 alike; then a + b = b + a), so shard 1 is folded as soon as it
   * arrives, not copied to wait for shard 0: with two workers, the last result finds the other folded.
   */
  constructor(
    readonly shards: number,
    private readonly sum: Float64Array,
    private readonly ops: ReduceOps = jsReduceOps,
    private readonly spare: Float32Array[] = [],
    private readonly lastFold?: LastFold,
    private readonly fresh = false,
  ) {}

  /** False if this shard was already added (a duplicate or late result). */
  add(shard: number, grads: Float32Array, lossSum: number, count: number): boolean {
    const taken = shard < this.nextShard || this.waiting.has(shard) || (shard === 1 && this.oneFirst);
    if (taken || shard >= this.shards) return false;
    if (shard === this.nextShard) {
      this.fold(shard, grads, lossSum, count); // its turn: add it now, no copy
    } else if (shard === 1 && this.fresh && this.folded === 0) {
      this.oneFirst = true;
      this.fold(shard, grads, lossSum, count);
    } else {
      // Early: keep a copy (the payload may be a view into a buffer that is reused).
      let copy = this.spare.pop();
      if (copy?.length !== grads.length) copy = new Float32Array(grads.length);
      copy.set(grads);
      this.waiting.set(shard, { grads: copy, lossSum, count });
    }
    for (let r = this.waiting.get(this.nextShard); r; r = this.waiting.get(this.nextShard)) {
      this.waiting.delete(this.nextShard);
      this.fold(this.nextShard, r.grads, r.lossSum, r.count);
      this.spare.push(r.grads);
    }
    return true;
  }

  private fold(shard: number, grads: Float32Array, lossSum: number, count: number): void {
    // The fold that completes the reduction may be taken over (the fused update), or not.
    const last = this.folded === this.shards - 1 ? this.lastFold : undefined;
    if (!last?.(grads, { lossSum: this.loss + lossSum, count: this.samples + count })) this.ops.fold(grads, this.sum);
    this.loss += lossSum;
    this.samples += count;
    this.folded++;
    if (shard === this.nextShard) this.nextShard = shard === 0 && this.oneFirst ? 2 : shard + 1;
  }

  get complete(): boolean {
    return this.folded === this.shards;
  }

  /** The loss sum and sample count of this reduction, once every shard is in. */
  totals(): { lossSum: number; count: number } {
    if (!this.complete) throw new Error('ShardReducer.totals before all shards arrived');
    return { lossSum: this.loss, count: this.samples };
  }
}

/** What the dispatcher adds a micro-batch's results through: the fixed tree, or the per-worker fold. */
export interface Reduction {
  readonly leaves: number;
  add(node: TreeNode, grads: Float32Array, lossSum: number, count: number): boolean;
  readonly complete: boolean;
  totals(): { lossSum: number; count: number };
}

/** Leaves folded in leaf order (per-worker shards: every result is one leaf). */
export class LeafFold implements Reduction {
  private readonly fold: ShardReducer;
  constructor(
    readonly leaves: number,
    sum: Float64Array,
    ops: ReduceOps = jsReduceOps,
    spare: Float32Array[] = [],
    lastFold?: LastFold,
    fresh = false,
  ) {
    this.fold = new ShardReducer(leaves, sum, ops, spare, lastFold, fresh);
  }

  add(node: TreeNode, grads: Float32Array, lossSum: number, count: number): boolean {
    // One leaf (a last leaf may come as a higher node that covers it alone).
    return node.end - node.first === 1 && this.fold.add(node.first, grads, lossSum, count);
  }

  get complete(): boolean {
    return this.fold.complete;
  }

  totals(): { lossSum: number; count: number } {
    return this.fold.totals();
  }
}
