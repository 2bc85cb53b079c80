/**
 * The reducer's three passes over a step's gradients as WebAssembly SIMD kernels, over the
 * arena's memory (arena.ts): is a result finite, add it into the float64 sum, and the mean
 * gradient (with its squared norm). The scalar versions in ../reducer.ts are the reference;
 * the shared conformance suite (test/coordinator/reduce-ops.test.ts) runs both.
 *
 * Why the results are bit-identical to the scalar loops: f64x2.promote_low_f32x4 is exact, and
 * f64x2.add/div and f32x4.demote_f64x2_zero are IEEE 754 operations rounded to nearest, as
 * JavaScript's float64 arithmetic and Float32Array stores are. One difference, by design: the
 * squared norm is summed in two lanes (even and odd elements) and then added, not strictly
 * left to right, so it may differ from the scalar sum in its last bits (it is a metric and a
 * clipping threshold, never a parameter).
 *
 *   finite(src, end) → i32          1 if no float32 in [src, end) is NaN or ±Infinity
 *   fold(src, dst, end)             float64 dst[i] += float32 src[i], two at a time
 *   mean(sum, out, end, count) → f64  out[i] = float32(sum[i] / count), sum[i] = 0; returns Σ out[i]²
 *   meanPow2(sum, out, end, 1/count)  the same for a power-of-two count, multiplying (see meanFunc)
 *   add(dst, src, end) → i32         float32 dst[i] += src[i], four at a time (the tree's pair sums:
 *                                    a float32 add, as the scalar loop's float64 add rounded once to
 *                                    float32 gives, float64 having over 2·24 + 2 bits); 1 if every
 *                                    sum is finite (the check of `finite`, on the stored sums)
 * Addresses are bytes; each kernel covers whole vectors and leaves the tail to the caller.
 */
import {
  compile,
  F32X4_ADD,
  F32X4_DEMOTE_F64X2_ZERO,
  F32X4_EQ,
  F32X4_MUL,
  F64,
  F64_ADD,
  F64X2_ADD,
  F64X2_DIV,
  F64X2_EXTRACT_LANE,
  F64X2_MUL,
  F64X2_PROMOTE_LOW_F32X4,
  F64X2_SPLAT,
  get,
  i32,
  I32,
  I32_ADD,
  I32X4_ALL_TRUE,
  LOCAL_TEE,
  loop,
  set,
  V128,
  V128_LOAD,
  V128_LOAD64_ZERO,
  V128_STORE,
  V128_STORE64_LANE0,
  type Func,
} from './asm.js';
import { inArena, type Arena } from './arena.js';
import { jsReduceOps, type ReduceOps } from '../reducer.js';

// finite(src 0, end 1) locals: 2 acc, 3 zero. x·0 is ±0 for finite x and NaN otherwise, so
// the running sum stays ±0 (equal to itself) unless some element is not finite.
const FINITE: Func = {
  name: 'finite',
  params: [I32, I32],
  results: [I32],
  locals: [[2, V128]],
  code: [
    ...loop(0, 1, 16, [...get(2), ...get(0), ...V128_LOAD, ...get(3), ...F32X4_MUL, ...F32X4_ADD, ...set(2)]),
    ...get(2),
    ...get(2),
    ...F32X4_EQ,
    ...I32X4_ALL_TRUE,
  ],
};

// fold(src 0, dst 1, end 2): src steps 8 bytes (two float32), dst 16 (two float64).
const FOLD: Func = {
  name: 'fold',
  params: [I32, I32, I32],
  results: [],
  locals: [],
  code: loop(0, 2, 8, [
    ...get(1),
    ...get(1),
    ...V128_LOAD,
    ...get(0),
    ...V128_LOAD64_ZERO,
    ...F64X2_PROMOTE_LOW_F32X4,
    ...F64X2_ADD,
    ...V128_STORE,
    ...get(1),
    ...i32(16),
    I32_ADD,
    ...set(1),
  ]),
};

// mean(sum 0, out 1, end 2, count 3) locals: 4 count splat, 5 squares, 6 rounded pair, 7 widened, 8 zero.
// meanPow2 takes 1/count instead and multiplies: for a power-of-two count, x·2⁻ᵏ and x/2ᵏ are the
// same real number, so rounding gives the same float64 (a multiply is several times cheaper).
const meanFunc = (name: string, scale: number[]): Func => ({
  name,
  params: [I32, I32, I32, F64],
  results: [F64],
  locals: [[5, V128]],
  code: [
    ...get(3),
    ...F64X2_SPLAT,
    ...set(4),
    ...loop(0, 2, 16, [
      ...get(1),
      ...get(0),
      ...V128_LOAD,
      ...get(4),
      ...scale,
      ...F32X4_DEMOTE_F64X2_ZERO,
      LOCAL_TEE,
      6,
      ...V128_STORE64_LANE0,
      ...get(6),
      ...F64X2_PROMOTE_LOW_F32X4,
      LOCAL_TEE,
      7,
      ...get(7),
      ...F64X2_MUL,
      ...get(5),
      ...F64X2_ADD,
      ...set(5),
      ...get(0),
      ...get(8),
      ...V128_STORE, // the sum is consumed: zero for the next step
      ...get(1),
      ...i32(8),
      I32_ADD,
      ...set(1),
    ]),
    ...get(5),
    ...F64X2_EXTRACT_LANE(0),
    ...get(5),
    ...F64X2_EXTRACT_LANE(1),
    F64_ADD,
  ],
});
const MEAN = meanFunc('mean', F64X2_DIV);
const MEAN_POW2 = meanFunc('meanPow2', F64X2_MUL);

// add(dst 0, src 1, end 2) locals: 3 sum, 4 check, 5 zero; dst and src step 16 bytes (four float32).
const ADD: Func = {
  name: 'add',
  params: [I32, I32, I32],
  results: [I32],
  locals: [[3, V128]],
  code: [
    ...loop(0, 2, 16, [
      ...get(0),
      ...get(0),
      ...V128_LOAD,
      ...get(1),
      ...V128_LOAD,
      ...F32X4_ADD,
      LOCAL_TEE,
      3,
      ...V128_STORE,
      ...get(3),
      ...get(5),
      ...F32X4_MUL,
      ...get(4),
      ...F32X4_ADD,
      ...set(4),
      ...get(1),
      ...i32(16),
      I32_ADD,
      ...set(1),
    ]),
    ...get(4),
    ...get(4),
    ...F32X4_EQ,
    ...I32X4_ALL_TRUE,
  ],
};

interface Exports {
  finite(src: number, end: number): number;
  fold(src: number, dst: number, end: number): void;
  mean(sum: number, out: number, end: number, count: number): number;
  meanPow2(sum: number, out: number, end: number, reciprocal: number): number;
  add(dst: number, src: number, end: number): number;
}

/** 2ᵏ for an integer k ≥ 0 (sample counts are whole numbers): 1/count is then exact. */
export const isPowerOfTwo = (count: number): boolean =>
  Number.isInteger(count) && count >= 1 && count <= 2 ** 1000 && 2 ** Math.round(Math.log2(count)) === count;

let compiled: WebAssembly.Module | null | undefined;

/** The kernels over this arena, with the scalar loops for tails; null where WebAssembly SIMD is unavailable. */
export function simdReduceOps(arena: Arena): ReduceOps | null {
  if (compiled === undefined) compiled = compile([FINITE, FOLD, MEAN, MEAN_POW2, ADD]);
  if (!compiled) return null;
  const k = new WebAssembly.Instance(compiled, { env: { mem: arena.memory } }).exports as unknown as Exports;
  const js = jsReduceOps;
  const own = (a: ArrayBufferView, what: string) => {
    if (!inArena(arena, a)) throw new Error(`simdReduceOps: ${what} is not in the arena`);
  };
  const land = (grads: Float32Array): Float32Array => {
    if (inArena(arena, grads)) return grads;
    if (grads.length > arena.size)
      throw new Error(`simdReduceOps: ${grads.length} values for an arena of ${arena.size}`);
    const at = arena.landing.subarray(0, grads.length);
    at.set(grads);
    return at;
  };
  return {
    land,
    allFinite(grads) {
      const g = land(grads);
      const whole = g.length - (g.length % 4);
      return k.finite(g.byteOffset, g.byteOffset + 4 * whole) === 1 && js.allFinite(g.subarray(whole));
    },
    fold(grads, sum) {
      own(sum, 'the sum');
      const g = land(grads);
      if (sum.length < g.length) throw new Error(`simdReduceOps.fold: ${g.length} values into a sum of ${sum.length}`);
      const whole = g.length - (g.length % 2);
      k.fold(g.byteOffset, sum.byteOffset, g.byteOffset + 4 * whole);
      js.fold(g.subarray(whole), sum.subarray(whole, g.length));
    },
    add(into, from) {
      if (from.length !== into.length) throw new Error(`simdReduceOps.add: ${from.length} values into ${into.length}`);
      // Arrays outside the arena (copies kept past the arena's spare slots) take the scalar loop.
      if (!inArena(arena, into) || !inArena(arena, from)) return js.add(into, from);
      const whole = into.length - (into.length % 4);
      const finite = k.add(into.byteOffset, from.byteOffset, into.byteOffset + 4 * whole) === 1;
      return js.add(into.subarray(whole), from.subarray(whole)) && finite;
    },
    mean(sum, count, out) {
      own(sum, 'the sum');
      own(out, 'the output');
      const n = out.length;
      const whole = n - (n % 2);
      const end = sum.byteOffset + 8 * whole;
      let sq = isPowerOfTwo(count)
        ? k.meanPow2(sum.byteOffset, out.byteOffset, end, 1 / count)
        : k.mean(sum.byteOffset, out.byteOffset, end, count);
      const tail = js.mean(sum.subarray(whole, n), count, out.subarray(whole));
      sq += tail.sqNorm;
      // Squares of float32 values cannot overflow a float64 sum (≤ 2^32 · 1.2e77), so the sum
      // is finite exactly when every element is.
      return { finite: Number.isFinite(sq) && tail.finite, sqNorm: sq };
    },
  };
}
