/**
 * Adam's inner loop as a WebAssembly SIMD kernel, four float32 lanes at a time.
 *
 * Why it is bit-identical to the scalar loop in adam.ts: every f32x4 add, mul, div and sqrt is
 * an IEEE 754 binary32 operation rounded to nearest (the WebAssembly spec's non-relaxed SIMD),
 * and the scalar loop computes each op in float64 and rounds it to float32 with Math.fround —
 * which gives the same float32, because float64 has more than 2·24 + 2 significand bits (double
 * rounding is innocuous for these ops). The kernel applies the ops in the same order.
 *
 * The module is assembled here from its bytes (no toolchain): one exported function
 *   adam(stride, end, b1, b2, 1−b1, 1−b2, 1−b1^t, 1−b2^t, ε, −lr)
 * over an imported memory holding four arrays, each `stride` bytes apart:
 *   params at 0, grads at stride, m at 2·stride, v at 3·stride,
 * updating elements [0, end/4) in place (end a multiple of 16; the caller does the tail).
 */

const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;

// Core opcodes.
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const I32_CONST = 0x41;
const I32_ADD = 0x6a;
const I32_MUL = 0x6c;
const I32_GE_U = 0x4f;
const BLOCK = 0x02;
const LOOP = 0x03;
const BR = 0x0c;
const BR_IF = 0x0d;
const END = 0x0b;
const VOID = 0x40;

// SIMD opcodes: prefix 0xfd, then the LEB128 sub-opcode.
const simd = (op: number) => [0xfd, ...uleb(op)];
const V128_LOAD = [...simd(0x00), 2, 0]; // memarg: align 2^2 (the arrays are float32-aligned), offset 0
const V128_STORE = [...simd(0x0b), 2, 0];
const F32X4_SPLAT = simd(0x13);
const F32X4_SQRT = simd(0xe3);
const F32X4_ADD = simd(0xe4);
const F32X4_MUL = simd(0xe6);
const F32X4_DIV = simd(0xe7);

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
const name = (s: string) => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];

// Locals: 0 stride, 1 end (i32); 2..9 the eight f32 scalars; 10 i (i32);
// 11..18 the scalars splatted to v128; 19 g, 20 new m, 21 new v.
const STRIDE = 0;
const END_AT = 1;
const I = 10;
const [B1, B2, OMB1, OMB2, OMA1, OMA2, EPS, NEG_LR] = [11, 12, 13, 14, 15, 16, 17, 18];
const G = 19;
const M = 20;
const V = 21;

const get = (l: number) => [LOCAL_GET, l];
const set = (l: number) => [LOCAL_SET, l];
/** Address of element i of array k (0 params, 1 grads, 2 m, 3 v): i + k·stride. */
const addr = (k: number) => (k === 0 ? get(I) : [...get(I), ...get(STRIDE), I32_CONST, k, I32_MUL, I32_ADD]);

function body(): number[] {
  const code: number[] = [];
  for (let s = 0; s < 8; s++) code.push(...get(2 + s), ...F32X4_SPLAT, ...set(B1 + s));
  code.push(BLOCK, VOID, LOOP, VOID);
  code.push(...get(I), ...get(END_AT), I32_GE_U, BR_IF, 1);
  code.push(...addr(1), ...V128_LOAD, ...set(G));
  // m ← m·β1 + g·(1−β1)
  code.push(...addr(2), ...V128_LOAD, ...get(B1), ...F32X4_MUL, ...get(G), ...get(OMB1), ...F32X4_MUL, ...F32X4_ADD, ...set(M));
  code.push(...addr(2), ...get(M), ...V128_STORE);
  // v ← v·β2 + (g·g)·(1−β2)
  code.push(...addr(3), ...V128_LOAD, ...get(B2), ...F32X4_MUL, ...get(G), ...get(G), ...F32X4_MUL, ...get(OMB2), ...F32X4_MUL, ...F32X4_ADD, ...set(V));
  code.push(...addr(3), ...get(V), ...V128_STORE);
  // p ← (m/(1−β1^t)) / (√(v/(1−β2^t)) + ε) · (−lr) + p
  code.push(...addr(0));
  code.push(...get(M), ...get(OMA1), ...F32X4_DIV);
  code.push(...get(V), ...get(OMA2), ...F32X4_DIV, ...F32X4_SQRT, ...get(EPS), ...F32X4_ADD);
  code.push(...F32X4_DIV, ...get(NEG_LR), ...F32X4_MUL, ...addr(0), ...V128_LOAD, ...F32X4_ADD, ...V128_STORE);
  code.push(...get(I), I32_CONST, 16, I32_ADD, ...set(I), BR, 0, END, END, END);
  const locals = vec([
    [1, I32],
    [11, V128],
  ]);
  const fn = [...locals, ...code];
  return [...uleb(fn.length), ...fn];
}

function moduleBytes(): Uint8Array<ArrayBuffer> {
  const type = [0x60, ...vec([[I32], [I32], ...Array.from({ length: 8 }, () => [F32])]), ...vec([])];
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec([type])),
    ...section(2, vec([[...name('env'), ...name('mem'), 0x02, 0x00, 0x00]])),
    ...section(3, vec([[0]])),
    ...section(7, vec([[...name('adam'), 0x00, 0]])),
    ...section(10, vec([body()])),
  ]);
}

type KernelFn = (stride: number, end: number, b1: number, b2: number, omb1: number, omb2: number, oma1: number, oma2: number, eps: number, negLr: number) => void;

/** Params, grads, m and v of `size` floats in one wasm memory, and the kernel over them. */
export interface AdamArena {
  params: Float32Array;
  grads: Float32Array;
  m: Float32Array;
  v: Float32Array;
  /** Elements the kernel covers (a multiple of 4); the rest is the caller's. */
  simdLength: number;
  run(b1: number, b2: number, omb1: number, omb2: number, oma1: number, oma2: number, eps: number, negLr: number): void;
}

let compiled: WebAssembly.Module | null | undefined;

/** The arena, or null where WebAssembly SIMD is unavailable (then adam.ts runs its scalar loop). */
export function createAdamArena(size: number): AdamArena | null {
  if (compiled === undefined) {
    const bytes = moduleBytes();
    compiled = WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
  }
  if (!compiled) return null;
  const stride = Math.ceil(size / 4) * 16; // each array starts 16-byte aligned
  let memory: WebAssembly.Memory;
  try {
    memory = new WebAssembly.Memory({ initial: Math.max(1, Math.ceil((4 * stride) / 65536)) });
  } catch {
    return null; // past wasm32's 4 GiB (over ~268 M parameters) or out of memory: the scalar loop runs
  }
  const kernel = new WebAssembly.Instance(compiled, { env: { mem: memory } }).exports.adam as KernelFn;
  const view = (k: number) => new Float32Array(memory.buffer, k * stride, size);
  const simdLength = size - (size % 4);
  return {
    params: view(0),
    grads: view(1),
    m: view(2),
    v: view(3),
    simdLength,
    run: (...s) => kernel(stride, simdLength * 4, ...s),
  };
}
