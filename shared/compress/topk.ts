/**
 * Top-k sparsification with error feedback: each tree node sends the k entries of largest
 * magnitude of (gradient + residual) and keeps the rest in the residual for later results.
 * Error feedback is what makes a biased compressor like top-k converge at the rate of plain SGD
 * (Stich, Cordonnier & Jaggi, "Sparsified SGD with Memory", NeurIPS 2018); Lin et al., "Deep
 * Gradient Compression" (ICLR 2018) train with 0.1% of the entries sent.
 *
 * Why top-k and not PowerSGD (Vogels et al. 2019) here: PowerSGD's gain is that its low-rank
 * factors are linear, so an all-reduce can sum them; our coordinator sums each worker's result
 * itself, so that gain is lost, and decoding P·Qᵀ per worker costs n·r on the coordinator where a
 * sparse payload costs k. Top-k also needs no matrix shapes: it works on any model kind's flat layout.
 *
 * A node's payload: k indices (u32, strictly increasing, < n), then their k values (float32).
 * Ties at the threshold go to the lower index, so the choice is a pure function of the input.
 */
import { fail } from '../util/errors.js';
import type { GradientCompressor, TopKConfig } from './contract.js';

export const TOPK_DEFAULT_RATIO = 0.01;
/** Above half the entries, index + value words are as many bytes as the dense float32 payload. */
export const TOPK_MAX_RATIO = 0.5;

/** Entries sent per node of n parameters. */
export function topkCount(ratio: number, n: number): number {
  return Math.min(n, Math.max(1, Math.ceil(ratio * n)));
}

/**
 * The value at position `target` of `a` sorted ascending; reorders `a`. Quickselect with a
 * three-way partition: gradients hold runs of equal values (exact zeros of dead units).
 */
export function kthSmallest(a: Float32Array, target: number): number {
  let lo = 0;
  let hi = a.length - 1;
  for (;;) {
    if (lo >= hi) return a[lo];
    const [x, y, z] = [a[lo], a[(lo + hi) >>> 1], a[hi]];
    const p = Math.max(Math.min(x, y), Math.min(Math.max(x, y), z)); // median of three
    let lt = lo;
    let i = lo;
    let gt = hi;
    while (i <= gt) {
      const v = a[i];
      if (v < p) {
        a[i++] = a[lt];
        a[lt++] = v;
      } else if (v > p) {
        a[i] = a[gt];
        a[gt--] = v;
      } else i++;
    }
    if (target < lt) hi = lt - 1;
    else if (target > gt) lo = gt + 1;
    else return p;
  }
}

/** |v|, with NaN ranked as largest (as Infinity): a diverged gradient must reach the coordinator. */
function magOf(v: number): number {
  const m = Math.abs(v);
  return Number.isNaN(m) ? Infinity : m;
}

export class TopK implements GradientCompressor {
  readonly kind = 'topk';
  private x = new Float32Array(0);
  private mag = new Float32Array(0);

  constructor(readonly cfg: TopKConfig) {}

  wordsPerNode(n: number): number {
    return 2 * topkCount(this.cfg.ratio, n);
  }

  describe(n: number): Record<string, number> {
    return { ratio: this.cfg.ratio, k: topkCount(this.cfg.ratio, n) };
  }

  encode(parts: readonly Float32Array[], nodes: number, residual: Float32Array, out: Float32Array): void {
    const n = residual.length;
    const k = topkCount(this.cfg.ratio, n);
    if (out.length !== nodes * 2 * k) throw new Error(`top-k: out holds ${out.length} words, not ${nodes} × ${2 * k}`);
    if (this.x.length !== n) {
      this.x = new Float32Array(n);
      this.mag = new Float32Array(n);
    }
    const x = this.x;
    let node = 0;
    let fill = 0;
    for (const part of parts) {
      for (let at = 0; at < part.length; ) {
        const take = Math.min(n - fill, part.length - at);
        x.set(part.subarray(at, at + take), fill);
        fill += take;
        at += take;
        if (fill === n) {
          if (node === nodes) throw new Error(`top-k: parts hold more than ${nodes} nodes of ${n}`);
          this.encodeNode(residual, out.subarray(node * 2 * k, (node + 1) * 2 * k), k);
          node++;
          fill = 0;
        }
      }
    }
    if (node !== nodes || fill !== 0) throw new Error(`top-k: parts do not hold ${nodes} whole nodes of ${n}`);
  }

  /** this.x holds a node's gradient: add the residual, send the k largest, keep the rest. */
  private encodeNode(residual: Float32Array, out: Float32Array, k: number): void {
    const { x, mag } = this;
    const n = x.length;
    for (let i = 0; i < n; i++) {
      const v = x[i] + residual[i];
      x[i] = v;
      mag[i] = magOf(v);
    }
    const t = kthSmallest(mag, n - k); // mag is reordered; the threshold is what we need from it
    let above = 0; // fewer than k: t is the k-th largest
    for (let i = 0; i < n; i++) if (magOf(x[i]) > t) above++;
    let ties = k - above; // entries equal to the threshold, lowest index first
    const idx = new Uint32Array(out.buffer, out.byteOffset, k);
    const val = out.subarray(k);
    let j = 0;
    for (let i = 0; i < n; i++) {
      const v = x[i];
      const m = magOf(v);
      if (m > t || (m === t && ties-- > 0)) {
        idx[j] = i;
        val[j++] = v;
        residual[i] = 0;
      } else residual[i] = v;
    }
    // Infinity kept unsent would poison every later result: a residual restarts at zero there.
    for (let i = 0; i < n; i++) if (!Number.isFinite(residual[i])) residual[i] = 0;
  }

  check(words: Float32Array, nodes: number, n: number): void {
    const k = topkCount(this.cfg.ratio, n);
    if (words.length !== nodes * 2 * k)
      fail(
        'MESSAGE_INVALID',
        `result top-k payload has ${words.length} words, ${nodes} nodes of k = ${k} need ${nodes * 2 * k}`,
      );
    const all = new Uint32Array(words.buffer, words.byteOffset, words.length);
    for (let node = 0; node < nodes; node++) {
      const idx = all.subarray(node * 2 * k, node * 2 * k + k);
      let prev = -1;
      for (let j = 0; j < k; j++) {
        const i = idx[j];
        if (i <= prev || i >= n)
          fail('MESSAGE_INVALID', `result top-k node ${node}: index ${i} at ${j} is not increasing within [0, ${n})`);
        prev = i;
      }
    }
  }

  decode(words: Float32Array, nodes: number, n: number): Float32Array {
    const k = topkCount(this.cfg.ratio, n);
    const dense = new Float32Array(nodes * n);
    const all = new Uint32Array(words.buffer, words.byteOffset, words.length);
    for (let node = 0; node < nodes; node++) {
      const at = node * 2 * k;
      const base = node * n;
      for (let j = 0; j < k; j++) dense[base + all[at + j]] = words[at + k + j];
    }
    return dense;
  }
}
