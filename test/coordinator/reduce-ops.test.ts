/**
 * One conformance suite for every ReduceOps implementation: the scalar loops (the reference)
 * and the WebAssembly SIMD kernels in an arena. Hand-worked values first, then bit-for-bit
 * agreement with the reference on sizes that leave every possible tail.
 */
import { describe, expect, it } from 'vitest';
import { createArena, type Arena } from '../../coordinator/kernels/arena.js';
import { isPowerOfTwo, simdReduceOps } from '../../coordinator/kernels/reduce-simd.js';
import { jsReduceOps, TreeReducer, type ReduceOps } from '../../coordinator/reducer.js';
import { treeNode } from '../../shared/job/shard-tree.js';
import { Rng } from '../../shared/util/rng.js';

interface Impl {
  ops: ReduceOps;
  /** Arrays the implementation can work on (the arena's, for the kernels). */
  sum(n: number): Float64Array;
  out(n: number): Float32Array;
  /** Arrays waiting nodes are copied into (the arena's spare slots, for the kernels). */
  spares: Float32Array[];
}

function simdImpl(size: number): Impl {
  const arena = createArena(size, 2) as Arena;
  const ops = simdReduceOps(arena);
  if (!ops) throw new Error('WebAssembly SIMD is unavailable on this Node.js');
  return {
    ops,
    sum: (n) => arena.sum.subarray(0, n).fill(0),
    out: (n) => arena.grads.subarray(0, n),
    spares: [...arena.spares],
  };
}

const IMPLS: Array<[string, (size: number) => Impl]> = [
  [
    'scalar loops',
    () => ({ ops: jsReduceOps, sum: (n) => new Float64Array(n), out: (n) => new Float32Array(n), spares: [] }),
  ],
  ['SIMD kernels', simdImpl],
];

const bits = (a: Float32Array | Float64Array) => Array.from(a, (x) => (Object.is(x, -0) ? '-0' : String(x)));

describe.each(IMPLS)('ReduceOps: %s', (_, make) => {
  it('rounds a mean by a power of two as the division does, subnormals included', () => {
    const { ops, sum, out } = make(8);
    // Quotients that land below float32's normal range, on and between its subnormal steps.
    const xs = [2 ** -130 * 3, 2 ** -140 * 5, 2 ** -149, 2 ** -149 * 3, -(2 ** -133), 1e-40, 7.5, -1e38];
    for (const count of [1, 2, 64, 1024, 2 ** 40]) {
      const acc = sum(xs.length);
      acc.set(xs.map((x) => x * count));
      const o = out(xs.length);
      ops.mean(acc, count, o);
      const want = Float32Array.from(xs.map((x) => (x * count) / count));
      expect(bits(o), `count ${count}`).toEqual(bits(want));
    }
  });

  it('folds float32 values into a float64 sum exactly (worked by hand)', () => {
    const { ops, sum } = make(8);
    const acc = sum(5);
    // 2^24 + 1 is not a float32, but is a float64: the sum keeps the 1 that float32 would lose.
    ops.fold(new Float32Array([16777216, 1, -0.5, 3, 0.1]), acc);
    ops.fold(new Float32Array([1, 0, 0.25, -3, 0.2]), acc);
    expect(Array.from(acc)).toEqual([16777217, 1, -0.25, 0, Math.fround(0.1) + Math.fround(0.2)]);
  });

  it('divides by the count, rounds once to float32, and returns the squared norm (worked by hand)', () => {
    const { ops, sum, out } = make(8);
    const acc = sum(3);
    acc.set([10, -3, 1]);
    const o = out(3);
    const m = ops.mean(acc, 4, o);
    // 10/4 = 2.5, −3/4 = −0.75, 1/4 = 0.25; 6.25 + 0.5625 + 0.0625 = 6.875
    expect(Array.from(o)).toEqual([2.5, -0.75, 0.25]);
    expect(m).toEqual({ finite: true, sqNorm: 6.875 });
    expect(Array.from(acc)).toEqual([0, 0, 0]); // consumed: ready for the next step's sum
    acc.set([1, 0, 0]);
    ops.mean(acc, 3, o);
    expect(o[0]).toBe(Math.fround(1 / 3));
  });

  it.each([NaN, Infinity, -Infinity, 1e300])('mean flags a non-finite entry (%s) wherever it sits', (bad) => {
    const { ops, sum, out } = make(16);
    for (let at = 0; at < 7; at++) {
      const acc = sum(7);
      acc.fill(1);
      acc[at] = bad; // 1e300 is finite in float64 but overflows float32 to Infinity
      expect(ops.mean(acc, 1, out(7)).finite, `at ${at}`).toBe(false);
    }
  });

  it.each([NaN, Infinity, -Infinity])('allFinite finds %s in every position, tails included', (bad) => {
    const { ops } = make(16);
    for (let n = 1; n <= 11; n++) {
      const g = new Float32Array(n).fill(-2.5);
      expect(ops.allFinite(g), `n ${n} clean`).toBe(true);
      for (let at = 0; at < n; at++) {
        g[at] = bad;
        expect(ops.allFinite(g), `n ${n} at ${at}`).toBe(false);
        g[at] = -2.5;
      }
    }
  });

  it('agrees bit for bit with the scalar loops on every tail length', () => {
    const rng = new Rng(11);
    for (const n of [1, 2, 3, 4, 5, 7, 8, 9, 1023, 4099]) {
      const { ops, sum, out } = make(4099);
      const shards = Array.from({ length: 3 }, () =>
        Float32Array.from({ length: n }, () => (rng.next() - 0.5) * 10 ** rng.int(12)),
      );
      const want = new Float64Array(n);
      const acc = sum(n);
      for (const g of shards) {
        jsReduceOps.fold(g, want);
        ops.fold(ops.land(g), acc);
      }
      expect(bits(acc), `sum, n ${n}`).toEqual(bits(want));
      const wantOut = new Float32Array(n);
      const count = n % 2 ? 384 : 512; // a power of two takes the multiplying kernel
      const ref = jsReduceOps.mean(want.slice(), count, wantOut);
      const o = out(n);
      const got = ops.mean(acc, count, o);
      expect(bits(o), `mean, n ${n}`).toEqual(bits(wantOut));
      expect(
        acc.every((x) => x === 0),
        `sum consumed, n ${n}`,
      ).toBe(true);
      expect(got.finite).toBe(true);
      // The kernels sum squares in two lanes: the same value up to float64 rounding.
      expect(Math.abs(got.sqNorm - ref.sqNorm)).toBeLessThanOrEqual(1e-12 * ref.sqNorm);
    }
  });

  it('adds float32 pairs as the scalar loop does, every tail length, in the arena and outside it', () => {
    const rng = new Rng(5);
    for (const n of [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 1023, 4099]) {
      const { ops, out, spares } = make(4099);
      // Magnitudes far apart, so that float32 rounding (and overflow to ±Infinity) shows.
      const a = Float32Array.from({ length: n }, () => (rng.next() - 0.5) * 10 ** rng.int(39));
      const b = Float32Array.from({ length: n }, () => (rng.next() - 0.5) * 10 ** rng.int(39));
      a[0] = 3e38;
      b[0] = 3e38;
      const want = a.slice();
      jsReduceOps.add(want, b);
      expect(want[0]).toBe(Infinity);
      const into = (spares[0] ?? new Float32Array(4099)).subarray(0, n);
      into.set(a);
      const from = out(n);
      from.set(b);
      expect(ops.add(into, from), `the overflow to Infinity is found, n ${n}`).toBe(false);
      expect(bits(into), `in the arena, n ${n}`).toEqual(bits(want));
      const plain = a.slice();
      expect(ops.add(plain, b)).toBe(false);
      expect(bits(plain), `outside, n ${n}`).toEqual(bits(want));
    }
  });

  it('add says whether every sum is finite, wherever in the vector or the tail the first bad one is', () => {
    const { ops, out, spares } = make(4099);
    for (const n of [1, 3, 4, 7, 8, 13, 1023]) {
      for (const bad of [NaN, Infinity, -Infinity, 'overflow'] as const) {
        for (const at of new Set([0, n >> 1, n - 1])) {
          const a = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 1e3);
          const b = Float32Array.from({ length: n }, (_, i) => Math.cos(i) * 1e3);
          const into = (spares[0] ?? new Float32Array(4099)).subarray(0, n);
          into.set(a);
          const from = out(n);
          from.set(b);
          expect(ops.add(into, from), `finite, n ${n}`).toBe(true);
          into.set(a);
          if (bad === 'overflow') [into[at], from[at]] = [-3e38, -3e38];
          else from[at] = bad;
          expect(ops.add(into, from), `${bad} at ${at} of ${n}`).toBe(false);
        }
      }
    }
  });

  it('land gives the same values, and a copy that a reused buffer cannot change after folding', () => {
    const { ops, sum } = make(4);
    const buf = new Float32Array([1, 2, 3]);
    const landed = ops.land(buf);
    expect(Array.from(landed)).toEqual([1, 2, 3]);
    const acc = sum(3);
    ops.fold(landed, acc);
    buf.set([100, 200, 300]);
    expect(Array.from(acc)).toEqual([1, 2, 3]);
  });

  it('drives TreeReducer to the same sum for every arrival order', () => {
    const n = 37;
    const rng = new Rng(3);
    const shards = Array.from({ length: 4 }, () =>
      Float32Array.from({ length: n }, () => (rng.next() - 0.5) * 10 ** rng.int(20)),
    );
    const ref = new Float64Array(n);
    const pair = (a: Float32Array, b: Float32Array) => a.map((x, i) => x + b[i]);
    jsReduceOps.fold(pair(pair(shards[0], shards[1]), pair(shards[2], shards[3])), ref);
    const { ops, sum, spares } = make(n);
    // Waiting nodes go to the arena's spare slots first (the kernels add them there), then to fresh arrays.
    const spare: Float32Array[] = spares.map((s) => s.subarray(0, n));
    for (const order of [
      [0, 1, 2, 3],
      [3, 2, 1, 0],
      [1, 3, 0, 2],
      [2, 0, 3, 1],
    ]) {
      const acc = sum(n);
      const r = new TreeReducer(4, acc, ops, spare);
      // Each payload arrives through land(), as the dispatcher passes it (a view that the next land overwrites).
      for (const s of order) expect(r.add(treeNode(0, s, 4), ops.land(shards[s]), s, 1)).toBe(true);
      expect(r.totals()).toEqual({ lossSum: 6, count: 4 });
      expect(bits(acc), `order ${order.join('')}`).toEqual(bits(ref));
    }
    expect(spare.length).toBeLessThanOrEqual(Math.max(3, spares.length)); // copies are reused across phases, not made anew
  });
});

describe('SIMD reduce kernels', () => {
  it('multiply by 1/count only for a power-of-two count (where it is exact)', () => {
    for (const c of [1, 2, 4, 256, 512, 2 ** 40]) expect(isPowerOfTwo(c), String(c)).toBe(true);
    for (const c of [0, 3, 6, 384, 1000, 2 ** 40 + 1, 0.5, -4, NaN, Infinity])
      expect(isPowerOfTwo(c), String(c)).toBe(false);
  });

  it('refuse arrays outside their arena rather than read the wrong memory', () => {
    const { ops } = simdImpl(4);
    expect(() => ops.fold(new Float32Array(4), new Float64Array(4))).toThrow(/not in the arena/);
    expect(() => ops.mean(new Float64Array(4), 1, new Float32Array(4))).toThrow(/not in the arena/);
    expect(() => ops.land(new Float32Array(5))).toThrow(/5 values for an arena of 4/);
  });
});
