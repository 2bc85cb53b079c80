/**
 * Adds shard gradients in shard order, whatever order they arrive in, so a step's result
 * depends only on the shards, never on network timing (float addition is not associative).
 * Shards are folded into the caller's float64 accumulator (which may hold earlier micro-steps:
 * no per-step allocation, no second pass) as soon as all earlier shards are in; later ones
 * wait. A shard reported twice is refused (the caller counts it), never added twice.
 */
export class ShardReducer {
  private readonly waiting = new Map<number, { grads: Float32Array; lossSum: number; count: number }>();
  private nextShard = 0;
  private loss = 0;
  private samples = 0;

  constructor(
    readonly shards: number,
    private readonly sum: Float64Array,
  ) {}

  /** False if this shard was already added (a duplicate or late result). */
  add(shard: number, grads: Float32Array, lossSum: number, count: number): boolean {
    if (shard < this.nextShard || this.waiting.has(shard) || shard >= this.shards) return false;
    if (shard === this.nextShard) {
      this.fold(grads, lossSum, count); // its turn: add it now, no copy
    } else {
      // Early: keep a copy (the payload may be a view into a socket buffer that is reused).
      this.waiting.set(shard, { grads: grads.slice(), lossSum, count });
    }
    for (let r = this.waiting.get(this.nextShard); r; r = this.waiting.get(this.nextShard)) {
      this.waiting.delete(this.nextShard);
      this.fold(r.grads, r.lossSum, r.count);
    }
    return true;
  }

  private fold(grads: Float32Array, lossSum: number, count: number): void {
    const sum = this.sum;
    for (let i = 0; i < grads.length; i++) sum[i] += grads[i];
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

/**
 * Mean gradient: the float64 sum divided by the sample count, rounded once to float32, written
 * into `out` (reused across steps: no 4·P-byte allocation per step). In the same pass: whether
 * every entry is finite (a diverged step is skipped) and the squared L2 norm (for clipping and
 * the metrics), so the step reads the gradient once.
 */
export function meanGradient(sum: Float64Array, count: number, out: Float32Array = new Float32Array(sum.length)): { grads: Float32Array; finite: boolean; sqNorm: number } {
  let check = 0;
  let sq = 0;
  for (let i = 0; i < sum.length; i++) {
    out[i] = sum[i] / count;
    const r = out[i]; // read back: the float32-rounded value (1e300 becomes Infinity here)
    check += r * 0; // stays 0 unless some entry is NaN or ±Infinity
    sq += r * r;
  }
  return { grads: out, finite: check === 0, sqNorm: sq };
}
