import { describe, expect, it } from 'vitest';
import { Rng, deriveSeed, permutation } from '../../shared/util/rng.js';
import { Sampler } from '../../shared/job/sampler.js';

const N = 97;

function isPermutation(a: ArrayLike<number>, n: number): boolean {
  if (a.length !== n) return false;
  const seen = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const v = a[i];
    if (!Number.isInteger(v) || v < 0 || v >= n || seen[v]) return false;
    seen[v] = 1;
  }
  return true;
}

const identity = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('Sampler', () => {
  it('rows(0, N) is a permutation of 0..N-1, and not the identity', () => {
    const r = new Sampler(N, 42).rows(0, N);
    expect(isPermutation(r, N)).toBe(true);
    expect(Array.from(r)).not.toEqual(identity(N));
  });

  it('rows(N, 2N) is a different permutation of the same rows', () => {
    const s = new Sampler(N, 42);
    const e0 = Array.from(s.rows(0, N));
    const e1 = Array.from(s.rows(N, 2 * N));
    expect(isPermutation(e1, N)).toBe(true);
    expect(e1).not.toEqual(e0);
    // every epoch visits each row exactly once, however far into the stream
    expect(isPermutation(s.rows(5 * N, 6 * N), N)).toBe(true);
  });

  it('a range crossing an epoch boundary equals the concatenation of its two pieces', () => {
    const s = new Sampler(N, 7);
    const whole = Array.from(s.rows(N - 10, N + 15));
    const fresh = new Sampler(N, 7);
    const pieces = [...fresh.rows(N - 10, N), ...fresh.rows(N, N + 15)];
    expect(whole).toEqual(pieces);
    expect(whole.slice(0, 10)).toEqual(Array.from(fresh.rows(0, N)).slice(N - 10));
  });

  it('a range spanning more than one boundary is still consistent', () => {
    const s = new Sampler(10, 3);
    const whole = Array.from(s.rows(5, 37));
    const parts: number[] = [];
    for (let p = 5; p < 37; p++) parts.push(new Sampler(10, 3).rows(p, p + 1)[0]);
    expect(whole).toEqual(parts);
  });

  it('gives the same rows when ranges are read out of order (cache eviction)', () => {
    const s = new Sampler(N, 11);
    const late = Array.from(s.rows(4 * N, 5 * N));
    s.rows(2 * N, 3 * N);
    s.rows(3 * N, 4 * N);
    const early = Array.from(s.rows(0, N));
    expect(Array.from(s.rows(4 * N, 5 * N))).toEqual(late);
    expect(early).toEqual(Array.from(new Sampler(N, 11).rows(0, N)));
  });

  it('two Samplers with the same seed agree; different seeds differ', () => {
    const a = new Sampler(N, 5).rows(0, 3 * N);
    expect(new Sampler(N, 5).rows(0, 3 * N)).toEqual(a);
    expect(Array.from(new Sampler(N, 6).rows(0, 3 * N))).not.toEqual(Array.from(a));
  });

  it('an empty range gives no rows', () => {
    expect(new Sampler(N, 1).rows(10, 10).length).toBe(0);
  });
});

describe('rng', () => {
  it('permutation() is a deterministic permutation, depending on seed and tag', () => {
    const p = permutation(1000, 9, 'epoch:0');
    expect(isPermutation(p, 1000)).toBe(true);
    expect(permutation(1000, 9, 'epoch:0')).toEqual(p);
    expect(Array.from(permutation(1000, 10, 'epoch:0'))).not.toEqual(Array.from(p));
    expect(Array.from(permutation(1000, 9, 'epoch:1'))).not.toEqual(Array.from(p));
    expect(Array.from(permutation(0, 1, 'x'))).toEqual([]);
    expect(Array.from(permutation(1, 1, 'x'))).toEqual([0]);
  });

  it('deriveSeed separates tags and seeds', () => {
    expect(deriveSeed(1, 'init')).toBe(deriveSeed(1, 'init'));
    expect(deriveSeed(1, 'init')).not.toBe(deriveSeed(1, 'spirals'));
    expect(deriveSeed(1, 'init')).not.toBe(deriveSeed(2, 'init'));
  });

  it('Rng.next() stays in [0, 1) and is roughly uniform', () => {
    for (const seed of [0, 1, 42, 0xffffffff, 0x9e3779b9]) {
      const rng = new Rng(seed);
      const bins = new Array(10).fill(0);
      const n = 100_000;
      for (let i = 0; i < n; i++) {
        const v = rng.next();
        if (!(v >= 0 && v < 1)) throw new Error(`Rng(${seed}).next() gave ${v} at draw ${i}`);
        bins[Math.floor(v * 10)]++;
      }
      for (const b of bins) expect(Math.abs(b - n / 10)).toBeLessThan(600); // ~6 sigma
    }
  });

  it('Rng is deterministic for a seed and differs across seeds', () => {
    const draw = (seed: number) => {
      const r = new Rng(seed);
      return Array.from({ length: 8 }, () => r.next());
    };
    expect(draw(3)).toEqual(draw(3));
    expect(draw(3)).not.toEqual(draw(4));
  });

  it('Rng.int(n) stays in [0, n)', () => {
    const r = new Rng(77);
    for (let i = 0; i < 10_000; i++) {
      const v = r.int(7);
      expect(Number.isInteger(v) && v >= 0 && v < 7).toBe(true);
    }
  });
});
