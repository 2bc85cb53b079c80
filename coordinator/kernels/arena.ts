/**
 * The coordinator's working memory for a model of `size` parameters: every array a step
 * touches, in one WebAssembly memory, so the SIMD kernels (adam-simd.ts, reduce-simd.ts) reach
 * all of them without copies. Laid out once and never grown (growing a memory detaches every
 * view on it). Each array starts 16-byte aligned, `stride` bytes of float32 apart:
 *   0·stride  params   float32  trained in place (Adam's; what workers are sent)
 *   1·stride  grads    float32  the step's mean gradient
 *   2·stride  m, 3·stride v     Adam's moments
 *   4·stride  sum      float64  the step's gradient sum (2·stride bytes)
 *   6·stride  landing  float32  where a shard's result lands to be checked and added
 *   7·stride… spares   float32  as many as asked for: copies of results that wait for an earlier
 *                                one or for a tree sibling, kept here so the kernels add them in place
 */
export interface Arena {
  readonly memory: WebAssembly.Memory;
  readonly size: number;
  readonly stride: number;
  readonly params: Float32Array;
  readonly grads: Float32Array;
  readonly m: Float32Array;
  readonly v: Float32Array;
  readonly sum: Float64Array;
  readonly landing: Float32Array;
  readonly spares: readonly Float32Array[];
}

const ARRAYS = 7; // in strides: params, grads, m, v, sum (two), landing; then the spares

/** The arena, or null where the memory cannot be had (past wasm32's 4 GiB: over ~150 M parameters). */
export function createArena(size: number, spares = 0): Arena | null {
  const stride = Math.ceil(size / 4) * 16;
  let memory: WebAssembly.Memory;
  try {
    memory = new WebAssembly.Memory({ initial: Math.max(1, Math.ceil(((ARRAYS + spares) * stride) / 65536)) });
  } catch {
    return null;
  }
  const f32 = (k: number) => new Float32Array(memory.buffer, k * stride, size);
  return {
    memory,
    size,
    stride,
    params: f32(0),
    grads: f32(1),
    m: f32(2),
    v: f32(3),
    sum: new Float64Array(memory.buffer, 4 * stride, size),
    landing: f32(6),
    spares: Array.from({ length: spares }, (_, k) => f32(ARRAYS + k)),
  };
}

/** Is this array a view into the arena's memory (so a kernel can take it by address)? */
export function inArena(a: Arena, view: ArrayBufferView): boolean {
  return view.buffer === a.memory.buffer;
}
