/**
 * 16-bit wire formats for tensor payloads (`wireDtype`): half the bytes of float32 on every
 * parameter broadcast and gradient upload, at the cost of precision on the wire only — the
 * coordinator keeps float32 master weights and float64 gradient sums.
 *
 * - float16 (IEEE 754 binary16): 11-bit significand, range ±65504; values below 2^-24 flush to zero.
 * - bfloat16: float32's 8-bit exponent (same range) with an 8-bit significand.
 *
 * Both round to nearest, ties to even; NaN stays NaN and ±Infinity stays ±Infinity, so the
 * coordinator's finiteness checks see a diverged worker exactly as with float32.
 */
export const WIRE_DTYPES = ['float32', 'float16', 'bfloat16'] as const;
export type WireDtype = (typeof WIRE_DTYPES)[number];

/** The code each dtype has in a frame's dtype byte (shared/wire/codec.ts). */
export const DTYPE_CODE: Record<WireDtype, number> = { float32: 0, float16: 1, bfloat16: 2 };
export const BYTES_PER_ELEMENT: Record<WireDtype, number> = { float32: 4, float16: 2, bfloat16: 2 };

export function dtypeOfCode(code: number): WireDtype | null {
  return WIRE_DTYPES.find((d) => DTYPE_CODE[d] === code) ?? null;
}

/** float32 bits → binary16 bits, round to nearest even. */
function halfBits(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0); // Inf, or a quiet NaN
  const e = exp - 112; // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00; // too large: Infinity
  if (e <= 0) {
    // Subnormal in binary16 (or zero): value = r · 2^-24 with r = significand >> (14 − e).
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    let r = m >>> shift;
    if (rem > half || (rem === half && (r & 1) !== 0)) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1) !== 0)) r++; // a carry moves into the exponent, as it should
  return sign | r;
}

/** Every binary16 value as float32: decoding is one table look-up per element. */
let halfTable: Float32Array | null = null;
function halfToFloat(): Float32Array {
  if (halfTable) return halfTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    t[h] =
      exp === 0
        ? sign * mant * 2 ** -24
        : exp === 0x1f
          ? mant
            ? NaN
            : sign * Infinity
          : sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  halfTable = t;
  return t;
}

/** Write `src` in `dtype` into `dst` (byte length = src.length · BYTES_PER_ELEMENT[dtype]). */
export function encodeTensor(src: Float32Array, dtype: WireDtype, dst: Uint8Array): void {
  if (dtype === 'float32') {
    dst.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
    return;
  }
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length); // float32 arrays are 4-aligned
  const out = new Uint16Array(dst.buffer, dst.byteOffset, src.length);
  if (dtype === 'float16') {
    for (let i = 0; i < bits.length; i++) out[i] = halfBits(bits[i]);
    return;
  }
  for (let i = 0; i < bits.length; i++) {
    const u = bits[i];
    out[i] = (u & 0x7fffffff) > 0x7f800000 ? (u >>> 16) | 0x40 : (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
  }
}

/** Read `n` elements of `dtype` from 4-byte-aligned `bytes` as float32. */
export function decodeTensor(bytes: Uint8Array, dtype: WireDtype, n: number): Float32Array {
  if (dtype === 'float32') return new Float32Array(bytes.buffer, bytes.byteOffset, n);
  const src = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
  const out = new Float32Array(n);
  if (dtype === 'float16') {
    const t = halfToFloat();
    for (let i = 0; i < n; i++) out[i] = t[src[i]];
  } else {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
  }
  return out;
}
