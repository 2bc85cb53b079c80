/**
 * The data order. Training reads one endless stream of sample positions; position p belongs
 * to epoch floor(p / N) and names sample perm_epoch[p mod N], where perm_epoch is a seeded
 * permutation of the N training rows. The coordinator hands out ranges [from, to) of this
 * stream, never samples; each worker maps them to rows itself.
 *
 * The last partial batch of an epoch: a batch that crosses the epoch boundary takes the rest
 * of this epoch and the start of the next. Every batch is full (constant batch size and FLOPs
 * per step), no sample is dropped, and each epoch visits every sample exactly once.
 */
import { permutation } from '../util/rng.js';

export class Sampler {
  private cache = new Map<number, Uint32Array>();

  constructor(
    readonly trainSize: number,
    private readonly seed: number,
  ) {}

  private perm(epoch: number): Uint32Array {
    let p = this.cache.get(epoch);
    if (!p) {
      p = permutation(this.trainSize, this.seed, `epoch:${epoch}`);
      // Keep the two most recent epochs: a range spans at most one boundary.
      if (this.cache.size >= 2) this.cache.delete(Math.min(...this.cache.keys()));
      this.cache.set(epoch, p);
    }
    return p;
  }

  /** Training rows for stream positions [from, to). */
  rows(from: number, to: number): Uint32Array {
    const out = new Uint32Array(to - from);
    for (let p = from; p < to; p++) {
      const epoch = Math.floor(p / this.trainSize);
      out[p - from] = this.perm(epoch)[p - epoch * this.trainSize];
    }
    return out;
  }
}

export function epochOf(position: number, trainSize: number): number {
  return position / trainSize;
}
