/**
 * Just enough of a WebAssembly assembler to write the coordinator's SIMD kernels as bytes in
 * TypeScript (no toolchain, nothing to download): value types, the opcodes the kernels use,
 * LEB128, and a module of functions over one imported memory `env.mem`.
 * Opcode numbers: the WebAssembly core spec 2.0, sections 5.4 (instructions) and 5.5 (modules).
 */

export const I32 = 0x7f;
export const F32 = 0x7d;
export const F64 = 0x7c;
export const V128 = 0x7b;

export const BLOCK = 0x02;
export const LOOP = 0x03;
export const BR = 0x0c;
export const BR_IF = 0x0d;
export const END = 0x0b;
export const VOID = 0x40;
export const LOCAL_GET = 0x20;
export const LOCAL_SET = 0x21;
export const LOCAL_TEE = 0x22;
export const I32_CONST = 0x41;
export const I32_ADD = 0x6a;
export const I32_MUL = 0x6c;
export const I32_SHL = 0x74;
export const I32_GE_U = 0x4f;
export const F64_ADD = 0xa0;

export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Signed LEB128, for i32.const immediates (0x40 and up need a second byte). */
export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) return [...out, b];
    out.push(b | 0x80);
  }
}

/** SIMD instructions: prefix 0xfd, then the sub-opcode in LEB128. */
export const simd = (op: number): number[] => [0xfd, ...uleb(op)];
/** memarg: alignment as log2 bytes (a hint), offset 0. */
const mem = (alignLog2: number) => [alignLog2, 0];
export const V128_LOAD = [...simd(0x00), ...mem(2)];
export const V128_STORE = [...simd(0x0b), ...mem(2)];
export const V128_LOAD64_ZERO = [...simd(0x5d), ...mem(2)];
export const V128_STORE64_LANE0 = [...simd(0x5b), ...mem(2), 0];
/** i8x16.shuffle: bytes of the two operands (0–15 the first, 16–31 the second), in this order. */
export const I8X16_SHUFFLE = (lanes: readonly number[]): number[] => [...simd(0x0d), ...lanes];
export const F32X4_SPLAT = simd(0x13);
export const F64X2_SPLAT = simd(0x14);
export const F64X2_EXTRACT_LANE = (lane: number) => [...simd(0x21), lane];
export const F32X4_EQ = simd(0x41);
export const I32X4_ALL_TRUE = simd(0xa3);
export const F32X4_DEMOTE_F64X2_ZERO = simd(0x5e);
export const F64X2_PROMOTE_LOW_F32X4 = simd(0x5f);
export const F32X4_SQRT = simd(0xe3);
export const F32X4_ADD = simd(0xe4);
export const F32X4_MUL = simd(0xe6);
export const F32X4_DIV = simd(0xe7);
export const F64X2_ADD = simd(0xf0);
export const F64X2_MUL = simd(0xf2);
export const F64X2_DIV = simd(0xf3);

export const get = (l: number): number[] => [LOCAL_GET, l];
export const set = (l: number): number[] => [LOCAL_SET, l];
export const i32 = (n: number): number[] => [I32_CONST, ...sleb(n)];

export const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
const name = (s: string) => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];

export interface Func {
  name: string;
  params: number[];
  results: number[];
  /** Locals after the parameters, as [count, type] runs. */
  locals: Array<[number, number]>;
  /** The body's instructions, without the final END. */
  code: number[];
}

/**
 * A counted loop: `body` runs while local `at` < local `stop`, then `at` += `step`.
 * Emits: block loop (at >= stop → exit) body (at += step) br 0 end end.
 */
export function loop(at: number, stop: number, step: number, body: number[]): number[] {
  return [
    BLOCK,
    VOID,
    LOOP,
    VOID,
    ...get(at),
    ...get(stop),
    I32_GE_U,
    BR_IF,
    1,
    ...body,
    ...get(at),
    ...i32(step),
    I32_ADD,
    ...set(at),
    BR,
    0,
    END,
    END,
  ];
}

/** The module's bytes: every function exported under its name, all over the imported `env.mem`. */
export function assemble(funcs: Func[]): Uint8Array<ArrayBuffer> {
  const types = funcs.map((f) => [0x60, ...vec(f.params.map((t) => [t])), ...vec(f.results.map((t) => [t]))]);
  const bodies = funcs.map((f) => {
    const b = [...vec(f.locals.map(([n, t]) => [...uleb(n), t])), ...f.code, END];
    return [...uleb(b.length), ...b];
  });
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec(types)),
    ...section(2, vec([[...name('env'), ...name('mem'), 0x02, 0x00, 0x00]])),
    ...section(3, vec(funcs.map((_, i) => uleb(i)))),
    ...section(7, vec(funcs.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]))),
    ...section(10, vec(bodies)),
  ]);
}

/** Compile once; null where WebAssembly SIMD is unavailable (callers then run their scalar loops). */
export function compile(funcs: Func[]): WebAssembly.Module | null {
  const bytes = assemble(funcs);
  return WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
}
