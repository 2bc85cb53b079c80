/**
 * Adam's inner loop as a WebAssembly SIMD kernel, four float32 lanes at a time.
 *
 * Why it is bit-identical to the scalar loop in adam.ts: every f32x4 add, mul, div and sqrt is
 * an IEEE 754 binary32 operation rounded to nearest (the WebAssembly spec's non-relaxed SIMD),
 * and the scalar loop computes each op in float64 and rounds it to float32 with Math.fround —
 * which gives the same float32, because float64 has more than 2·24 + 2 significand bits (double
 * rounding is innocuous for these ops). The kernel applies the ops in the same order.
 *
 * The module is assembled here from its bytes (asm.ts): one exported function
 *   adam(stride, end, b1, b2, 1−b1, 1−b2, 1−b1^t, 1−b2^t, ε, −lr)
 * over the arena's memory (arena.ts), where four arrays lie `stride` bytes apart:
 *   params at 0, grads at stride, m at 2·stride, v at 3·stride,
 * updating elements [0, end/4) in place (end a multiple of 16; the caller does the tail).
 */

import {
  compile,
  F32,
  F32X4_ADD,
  F32X4_DIV,
  F32X4_MUL,
  F32X4_SPLAT,
  F32X4_SQRT,
  get,
  i32,
  I32,
  I32_ADD,
  I32_MUL,
  LOCAL_TEE,
  loop,
  set,
  V128,
  V128_LOAD,
  V128_STORE,
  type Func,
} from './asm.js';
import type { Arena } from './arena.js';

// Locals: 0 stride, 1 end (i32); 2..9 the eight f32 scalars; 10 i (i32);
// 11..18 the scalars splatted to v128; 19 g, 20 new m, 21 new v.
const STRIDE = 0;
const END_AT = 1;
const I = 10;
const B1 = 11; // the first of the eight splatted scalars
const G = 19;
const M = 20;
const V = 21;

/** Address of element i of array k (0 params, 1 grads, 2 m, 3 v): i + k·stride. */
const addr = (k: number) => (k === 0 ? get(I) : [...get(I), ...get(STRIDE), ...i32(k), I32_MUL, I32_ADD]);

/**
 * Adam on one vector of four float32: the gradient in local `g`, the eight scalars splatted in
 * the locals from `scalars` on (β1, β2, 1−β1, 1−β2, 1−β1^t, 1−β2^t, ε, −lr), `m` and `v` for the new
 * moments; `addr(k)` pushes the address of array k (0 params, 2 m, 3 v). The fused kernel
 * (fused-simd.ts) runs the same ops after its mean.
 */
export function adamOps(addr: (k: number) => number[], g: number, m: number, v: number, scalars: number): number[] {
  const [b1, b2, omb1, omb2, oma1, oma2, eps, negLr] = Array.from({ length: 8 }, (_, k) => scalars + k);
  return [
    // m ← m·β1 + g·(1−β1)
    ...addr(2),
    ...addr(2),
    ...V128_LOAD,
    ...get(b1),
    ...F32X4_MUL,
    ...get(g),
    ...get(omb1),
    ...F32X4_MUL,
    ...F32X4_ADD,
    LOCAL_TEE,
    m,
    ...V128_STORE,
    // v ← v·β2 + (g·g)·(1−β2)
    ...addr(3),
    ...addr(3),
    ...V128_LOAD,
    ...get(b2),
    ...F32X4_MUL,
    ...get(g),
    ...get(g),
    ...F32X4_MUL,
    ...get(omb2),
    ...F32X4_MUL,
    ...F32X4_ADD,
    LOCAL_TEE,
    v,
    ...V128_STORE,
    // p ← (m/(1−β1^t)) / (√(v/(1−β2^t)) + ε) · (−lr) + p
    ...addr(0),
    ...get(m),
    ...get(oma1),
    ...F32X4_DIV,
    ...get(v),
    ...get(oma2),
    ...F32X4_DIV,
    ...F32X4_SQRT,
    ...get(eps),
    ...F32X4_ADD,
    ...F32X4_DIV,
    ...get(negLr),
    ...F32X4_MUL,
    ...addr(0),
    ...V128_LOAD,
    ...F32X4_ADD,
    ...V128_STORE,
  ];
}

const ADAM: Func = {
  name: 'adam',
  params: [I32, I32, F32, F32, F32, F32, F32, F32, F32, F32],
  results: [],
  locals: [
    [1, I32],
    [11, V128],
  ],
  code: [
    ...Array.from({ length: 8 }, (_, s) => [...get(2 + s), ...F32X4_SPLAT, ...set(B1 + s)]).flat(),
    ...loop(I, END_AT, 16, [...addr(1), ...V128_LOAD, ...set(G), ...adamOps(addr, G, M, V, B1)]),
  ],
};

type KernelFn = (
  stride: number,
  end: number,
  b1: number,
  b2: number,
  omb1: number,
  omb2: number,
  oma1: number,
  oma2: number,
  eps: number,
  negLr: number,
) => void;

/** Adam's update over an arena's params, grads, m and v. */
export interface AdamKernel {
  /** Elements the kernel covers (a multiple of 4); the rest is the caller's. */
  simdLength: number;
  run(b1: number, b2: number, omb1: number, omb2: number, oma1: number, oma2: number, eps: number, negLr: number): void;
}

let compiled: WebAssembly.Module | null | undefined;

/** The kernel over this arena, or null where WebAssembly SIMD is unavailable (adam.ts then runs its scalar loop). */
export function adamKernel(arena: Arena): AdamKernel | null {
  if (compiled === undefined) compiled = compile([ADAM]);
  if (!compiled) return null;
  const kernel = new WebAssembly.Instance(compiled, { env: { mem: arena.memory } }).exports.adam as KernelFn;
  const simdLength = arena.size - (arena.size % 4);
  return { simdLength, run: (...s) => kernel(arena.stride, simdLength * 4, ...s) };
}
