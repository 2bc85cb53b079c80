/**
 * The passes a step makes over gradients. Two implementations: the scalar loops below (the
 * reference, and the fallback) and WebAssembly SIMD kernels (kernels/reduce-simd.ts) that work
 * in the coordinator's arena; test/coordinator/reduce-ops.test.ts runs the same suite on both.
 */
export interface ReduceOps {
  /** `grads` where the other ops read it fastest: itself, or a copy in the kernels' memory (valid until the next land). */
  land(grads: Float32Array): Float32Array;
  /** No element is NaN or ±Infinity. */
  allFinite(grads: Float32Array): boolean;
  /** sum[i] += grads[i], in float64. */
  fold(grads: Float32Array, sum: Float64Array): void;
  /**
   * Mean gradient: the float64 sum divided by the sample count, rounded once to float32, written
   * into `out` (reused across steps). In the same pass: whether every entry is finite (a diverged
   * step is skipped), the squared L2 norm (for clipping and the metrics), and the sum set back
   * to zero, ready for the next step (no separate pass to clear it).
   */
  mean(sum: Float64Array, count: number, out: Float32Array): { finite: boolean; sqNorm: number };
}

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
 * Adds shard gradients in shard order, whatever order they arrive in, so a step's result
 * depends only on the shards, never on network timing (float addition is not associative).
 * Shards are folded into the caller's float64 accumulator (which may hold earlier micro-steps:
 * no per-step allocation, no second pass) as soon as all earlier shards are in; later ones
 * wait, in copies taken from `spare` (arrays kept across steps: no fresh memory per step). A
 * shard reported twice is refused (the caller counts it), never added twice.
 */
export class ShardReducer {
  private readonly waiting = new Map<number, { grads: Float32Array; lossSum: number; count: number }>();
  private nextShard = 0;
  private loss = 0;
  private samples = 0;

  constructor(
    readonly shards: number,
    private readonly sum: Float64Array,
    private readonly ops: ReduceOps = jsReduceOps,
    private readonly spare: Float32Array[] = [],
  ) {}

  /** False if this shard was already added (a duplicate or late result). */
  add(shard: number, grads: Float32Array, lossSum: number, count: number): boolean {
    if (shard < this.nextShard || this.waiting.has(shard) || shard >= this.shards) return false;
    if (shard === this.nextShard) {
      this.fold(grads, lossSum, count); // its turn: add it now, no copy
    } else {
      // Early: keep a copy (the payload may be a view into a buffer that is reused).
      let copy = this.spare.pop();
      if (copy?.length !== grads.length) copy = new Float32Array(grads.length);
      copy.set(grads);
      this.waiting.set(shard, { grads: copy, lossSum, count });
    }
    for (let r = this.waiting.get(this.nextShard); r; r = this.waiting.get(this.nextShard)) {
      this.waiting.delete(this.nextShard);
      this.fold(r.grads, r.lossSum, r.count);
      this.spare.push(r.grads);
    }
    return true;
  }

  private fold(grads: Float32Array, lossSum: number, count: number): void {
    this.ops.fold(grads, this.sum);
    this.loss += lossSum;
    this.samples += count;
    this.nextShard++;
  }

  get complete(): boolean {
    return this.nextShard === this.shards;
  }

  /** The loss sum and sample count of this reduction, once every shard is in. */
  totals(): { lossSum: number; count: number } {
    if (!this.complete) throw new Error('ShardReducer.totals before all shards arrived');
    return { lossSum: this.loss, count: this.samples };
  }
}
