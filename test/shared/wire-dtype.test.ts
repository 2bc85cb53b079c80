import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame } from '../../shared/wire/codec.js';
import { Rng } from '../../shared/util/rng.js';
import { readFromCoordinator, readFromWorker } from '../../shared/wire/validate.js';
import { decodeTensor, encodeTensor, type WireDtype } from '../../shared/wire/wire-dtype.js';
import { expectCode } from '../helpers/expect-code.js';
import { resultMsg } from '../helpers/result-msg.js';

/** The 16-bit patterns `values` encode to. */
function bits16(values: number[], dtype: WireDtype): number[] {
  const out = new Uint8Array(values.length * 2);
  encodeTensor(Float32Array.from(values), dtype, out);
  return Array.from(new Uint16Array(out.buffer));
}

function widen(patterns: number[], dtype: WireDtype): Float32Array {
  return decodeTensor(new Uint8Array(Uint16Array.from(patterns).buffer), dtype, patterns.length);
}

describe('float16 (worked by hand from IEEE 754 binary16)', () => {
  it('exact values', () => {
    // 1 = 0 01111 0000000000; -2 = 1 10000 0…; 65504 = largest finite; 2^-24 = smallest subnormal; 2^-14 = smallest normal.
    expect(bits16([1, -2, 65504, 2 ** -24, 2 ** -14, 0, -0, 0.5], 'float16')).toEqual([
      0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x0000, 0x8000, 0x3800,
    ]);
  });

  it('rounds to nearest, ties to even', () => {
    const ulp = 2 ** -10; // spacing of binary16 in [1, 2)
    expect(bits16([1 + ulp / 2], 'float16')).toEqual([0x3c00]); // tie → even (…000)
    expect(bits16([1 + 1.5 * ulp], 'float16')).toEqual([0x3c02]); // tie → even (…010)
    expect(bits16([1 + 0.75 * ulp], 'float16')).toEqual([0x3c01]); // above the tie
    expect(bits16([1 / 3], 'float16')).toEqual([0x3555]); // 0.333251953125, the nearest binary16
    expect(bits16([2 ** -25, 1.5 * 2 ** -25, 3 * 2 ** -25], 'float16')).toEqual([0x0000, 0x0001, 0x0002]); // subnormal ties
    expect(bits16([2 - ulp / 4], 'float16')).toEqual([0x4000]); // the carry moves into the exponent
  });

  it('overflow gives Infinity, tiny values flush to zero, NaN stays NaN', () => {
    expect(bits16([65519.99, 65520, 1e9, -1e9, Infinity], 'float16')).toEqual([0x7bff, 0x7c00, 0x7c00, 0xfc00, 0x7c00]);
    expect(bits16([1e-10, -1e-10], 'float16')).toEqual([0x0000, 0x8000]);
    expect(Number.isNaN(widen(bits16([NaN], 'float16'), 'float16')[0])).toBe(true);
  });

  it('every binary16 value survives decode → encode unchanged', () => {
    const all = Array.from({ length: 65536 }, (_, h) => h).filter(
      (h) => !((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0),
    );
    expect(bits16(Array.from(widen(all, 'float16')), 'float16')).toEqual(all);
  });

  it('random float32 values land on the nearest binary16 value', () => {
    const rng = new Rng(5);
    const xs = Array.from({ length: 2000 }, () => (rng.next() - 0.5) * 2 ** Math.floor(rng.next() * 40 - 24));
    const back = widen(bits16(xs, 'float16'), 'float16');
    xs.forEach((x, i) => {
      const e = Math.max(-14, Math.floor(Math.log2(Math.abs(x)))); // binary16 spacing at x is 2^(e-10)
      expect(Math.abs(back[i] - Math.fround(x))).toBeLessThanOrEqual(2 ** (e - 11));
    });
  });
});

describe('bfloat16', () => {
  it('exact values, ties to even, range of float32', () => {
    expect(bits16([1, -2, 0.5, 2 ** -126, 3.3895313892515355e38], 'bfloat16')).toEqual([
      0x3f80, 0xc000, 0x3f00, 0x0080, 0x7f7f,
    ]);
    const ulp = 2 ** -7;
    expect(bits16([1 + ulp / 2, 1 + 1.5 * ulp, 1 + 0.75 * ulp], 'bfloat16')).toEqual([0x3f80, 0x3f82, 0x3f81]);
    expect(bits16([3.4028234663852886e38, -Infinity], 'bfloat16')).toEqual([0x7f80, 0xff80]); // float32 max rounds up to Infinity
    expect(Number.isNaN(widen(bits16([NaN], 'bfloat16'), 'bfloat16')[0])).toBe(true);
  });

  it('every bfloat16 value survives decode → encode unchanged', () => {
    const all = Array.from({ length: 65536 }, (_, h) => h).filter(
      (h) => !((h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0),
    );
    expect(bits16(Array.from(widen(all, 'bfloat16')), 'bfloat16')).toEqual(all);
  });
});

describe('16-bit frames', () => {
  const values = Float32Array.from({ length: 1001 }, (_, i) => Math.sin(i) * 10);

  for (const dtype of ['float16', 'bfloat16'] as const) {
    it(`${dtype}: half the payload bytes; decodes to the rounded values at any byte offset`, () => {
      const f32 = encodeFrame({ t: 'params', version: 1, shm: 0 }, values);
      const f16 = encodeFrame({ t: 'params', version: 1, shm: 0 }, values, dtype);
      expect(f32.length - f16.length).toBe(values.length * 2); // same header and padding, 2 bytes less per value
      const expected = widen(bits16(Array.from(values), dtype), dtype);
      for (const shift of [0, 1, 2, 3]) {
        const buf = new Uint8Array(f16.length + shift);
        buf.set(f16, shift);
        const d = decodeFrame(buf.subarray(shift));
        expect(d.dtype).toBe(dtype);
        expect(Array.from(d.payload!)).toEqual(Array.from(expected));
      }
    });
  }

  it('an unknown dtype code or a payload of odd bytes is a malformed frame', () => {
    const f = encodeFrame({ t: 'params', version: 1, shm: 0 }, values, 'float16');
    const bad = new Uint8Array(f); // a copy (Buffer.slice would be a view)
    bad[3] = 9;
    expect(expectCode(() => decodeFrame(bad), 'FRAME_MALFORMED')).toMatch(/dtype code 9/);
    const odd = new Uint8Array(f.length + 1);
    odd.set(f);
    expect(expectCode(() => decodeFrame(odd), 'FRAME_MALFORMED')).toMatch(/whole float16 values/);
  });

  it("a payload in another dtype than the job's is refused, naming both", () => {
    const grads = new Float32Array(5);
    const result = resultMsg(1, 1);
    expect(
      readFromWorker(encodeFrame(result, grads, 'bfloat16'), { totalParams: 5, wireDtype: 'bfloat16' }).payload,
    ).toEqual(grads);
    const msg = expectCode(
      () => readFromWorker(encodeFrame(result, grads, 'float32'), { totalParams: 5, wireDtype: 'bfloat16' }),
      'MESSAGE_INVALID',
    );
    expect(msg).toMatch(/travels as float32, the job's wireDtype is bfloat16/);
    expectCode(
      () =>
        readFromCoordinator(encodeFrame({ t: 'params', version: 0, shm: 0 }, grads, 'float16'), {
          totalParams: 5,
          wireDtype: 'float32',
        }),
      'MESSAGE_INVALID',
    );
  });
});
