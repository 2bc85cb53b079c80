import { describe, expect, it } from 'vitest';
import { pack, unpack } from 'msgpackr';
import { decodeFrame, encodeFrame, frameToFill } from '../../shared/wire/codec.js';
import type { Message } from '../../shared/wire/protocol.js';
import { Rng } from '../../shared/util/rng.js';
import { expectCode } from '../helpers/expect-code.js';

const MSG: Message = { t: 'params', version: 7, shm: 0 };

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Random float32 bit patterns (no NaNs) with -0, denormals and ±Infinity mixed in. */
function nastyFloats(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    let b: number;
    do b = Math.floor(rng.next() * 2 ** 32) >>> 0;
    while ((b & 0x7f800000) === 0x7f800000 && (b & 0x007fffff) !== 0); // NaN: draw again
    bits[i] = b;
  }
  const specials = [
    0x80000000 /* -0 */, 0x00000001 /* smallest denormal */, 0x807fffff /* -largest denormal */, 0x7f800000 /* +Inf */,
    0xff800000 /* -Inf */,
  ];
  specials.forEach((s, k) => {
    if (k < n) bits[(k * 7919) % n] = s;
  });
  return new Float32Array(bits.buffer);
}

describe('encodeFrame / decodeFrame round trip', () => {
  it.each(['float32', 'float16', 'bfloat16'] as const)(
    'a payload given in parts encodes to the same bytes as the whole (%s)',
    (dtype) => {
      const whole = nastyFloats(1001, 5);
      const parts = [whole.subarray(0, 3), whole.subarray(3, 3), whole.subarray(3, 998), whole.subarray(998)];
      expect(encodeFrame(MSG, parts, dtype)).toEqual(encodeFrame(MSG, whole, dtype));
      expect(encodeFrame(MSG, [whole], dtype)).toEqual(encodeFrame(MSG, whole, dtype));
    },
  );

  it('a frame without a payload, or with an empty one, decodes to payload null', () => {
    for (const f of [encodeFrame(MSG), encodeFrame(MSG, new Float32Array(0))]) {
      const { header, payload } = decodeFrame(f);
      expect(header).toEqual(MSG);
      expect(payload).toBeNull();
    }
  });

  it.each([1, 3, 7, 1001])('payload of %i floats round-trips byte-exactly', (n) => {
    const src = nastyFloats(n, n);
    const { header, payload } = decodeFrame(encodeFrame(MSG, src));
    expect(header).toEqual(MSG);
    expect(payload).not.toBeNull();
    expect(payload!.length).toBe(n);
    expect(bytesOf(payload!)).toEqual(bytesOf(src));
    expect(payload!.byteOffset % 4).toBe(0);
  });

  it('special bit patterns survive exactly (-0, denormals, ±Infinity)', () => {
    const src = new Float32Array(new Uint32Array([0x80000000, 0x00000001, 0x007fffff, 0x7f800000, 0xff800000]).buffer);
    const { payload } = decodeFrame(encodeFrame(MSG, src));
    expect(Array.from(new Uint32Array(payload!.buffer, payload!.byteOffset, payload!.length))).toEqual([
      0x80000000, 0x00000001, 0x007fffff, 0x7f800000, 0xff800000,
    ]);
    expect(Object.is(payload![0], -0)).toBe(true);
  });

  it('encodes a payload that is itself a view at an offset into a larger buffer', () => {
    const big = nastyFloats(20, 3);
    const view = big.subarray(5, 12);
    const { payload } = decodeFrame(encodeFrame(MSG, view));
    expect(bytesOf(payload!)).toEqual(bytesOf(view));
  });

  it.each([1, 2, 3])('a frame at unaligned byteOffset %i still yields the exact values, aligned', (off) => {
    const src = nastyFloats(1001, 100 + off);
    const frame = encodeFrame(MSG, src);
    const big = new Uint8Array(off + frame.length + 5);
    big.set(frame, off);
    const { header, payload } = decodeFrame(big.subarray(off, off + frame.length));
    expect(header).toEqual(MSG);
    expect(payload!.byteOffset % 4).toBe(0);
    expect(bytesOf(payload!)).toEqual(bytesOf(src));
  });

  it.each([1, 2, 3])(
    'a Node Buffer at unaligned offset %i inside a shared pool (as ws hands them over) decodes exactly',
    (off) => {
      const src = nastyFloats(257, 7 + off);
      const frame = encodeFrame(MSG, src);
      const pool = Buffer.alloc(off + frame.length + 64, 0xab);
      pool.set(frame, off);
      const { payload } = decodeFrame(pool.subarray(off, off + frame.length));
      expect(payload!.length).toBe(257);
      expect(bytesOf(payload!)).toEqual(bytesOf(src));
    },
  );

  it('an aligned frame inside a larger buffer gives a view without a copy', () => {
    const src = nastyFloats(9, 9);
    const frame = encodeFrame(MSG, src);
    const big = new Uint8Array(4 + frame.length);
    big.set(frame, 4);
    const { payload } = decodeFrame(big.subarray(4));
    expect(payload!.buffer).toBe(big.buffer);
    expect(payload!.byteOffset % 4).toBe(0);
    expect(bytesOf(payload!)).toEqual(bytesOf(src));
  });
});

describe('decodeFrame rejects malformed frames with FRAME_MALFORMED', () => {
  const good = () => encodeFrame(MSG, new Float32Array([1, 2, 3]));

  it('empty', () => {
    expectCode(() => decodeFrame(new Uint8Array(0)), 'FRAME_MALFORMED');
  });

  it('shorter than the 8-byte prefix', () => {
    for (let n = 1; n < 8; n++) expectCode(() => decodeFrame(good().subarray(0, n)), 'FRAME_MALFORMED');
  });

  it('bad magic', () => {
    const f = good();
    f[0] = 0x58;
    expect(expectCode(() => decodeFrame(f), 'FRAME_MALFORMED')).toMatch(/magic/);
    const g = good();
    g[1] = 0x51;
    expectCode(() => decodeFrame(g), 'FRAME_MALFORMED');
  });

  it('wrong codec version', () => {
    const f = good();
    f[2] = 2;
    expect(expectCode(() => decodeFrame(f), 'FRAME_MALFORMED')).toMatch(/version 2/);
  });

  it('header length zero or past the end of the frame', () => {
    for (const len of [0, 10_000, 0xffffffff]) {
      const f = good();
      new DataView(f.buffer).setUint32(4, len, true);
      expectCode(() => decodeFrame(f), 'FRAME_MALFORMED');
    }
  });

  it('truncated header (msgpack cut short, length field matching)', () => {
    const f = encodeFrame({ t: 'bye', reason: 'shutting down' });
    const h = new DataView(f.buffer).getUint32(4, true);
    for (const cut of [1, 3, h - 1]) {
      const t = f.slice(0, 8 + h - cut);
      new DataView(t.buffer).setUint32(4, h - cut, true);
      expect(expectCode(() => decodeFrame(t), 'FRAME_MALFORMED')).toMatch(/msgpack/);
    }
  });

  it('payload that is not a whole number of float32 values', () => {
    const f = good();
    for (const drop of [1, 2, 3]) expectCode(() => decodeFrame(f.subarray(0, f.length - drop)), 'FRAME_MALFORMED');
    const longer = new Uint8Array(f.length + 2);
    longer.set(f);
    expectCode(() => decodeFrame(longer), 'FRAME_MALFORMED');
  });

  it('random garbage bytes', () => {
    const rng = new Rng(1234);
    for (let trial = 0; trial < 200; trial++) {
      const b = new Uint8Array(rng.int(64));
      for (let i = 0; i < b.length; i++) b[i] = rng.int(256);
      expectCode(() => decodeFrame(b), 'FRAME_MALFORMED');
    }
  });
});

describe('why tensors never go through msgpack', () => {
  // msgpackr 2.1.3's plain pack() writes a typed array as a bin of byteLength bytes, but fills it
  // with Uint8Array.prototype.set(float32Array): one truncated byte per element, the rest stale.
  it('msgpackr pack/unpack of a Float32Array does not round-trip its float32 bytes', () => {
    const src = new Float32Array([1.5, 2.25, 3.75, 200.5, 0.1, -0]);
    const back = unpack(pack(src)) as unknown;
    expect(back).not.toBeInstanceOf(Float32Array);
    const backBytes = new Uint8Array(
      (back as Uint8Array).buffer,
      (back as Uint8Array).byteOffset,
      (back as Uint8Array).byteLength,
    );
    expect(backBytes.length).toBe(src.byteLength);
    expect(backBytes).not.toEqual(bytesOf(src));
    // The first bytes are the elements converted to uint8, one byte each.
    expect(Array.from(backBytes.subarray(0, src.length))).toEqual([1, 2, 3, 200, 0, 0]);
  });
});

describe('frameToFill', () => {
  it('a frame filled in place is byte for byte the one encodeFrame makes of the same values', () => {
    for (const version of [7, 300, 70_000, 2 ** 33]) {
      const values = nastyFloats(1001, version);
      const msg: Message = { t: 'params', version, shm: 0 };
      const { frame, payload } = frameToFill(msg, values.length);
      payload.set(values.subarray(0, 500));
      payload.set(values.subarray(500), 500);
      expect(Buffer.from(frame).equals(Buffer.from(encodeFrame(msg, values)))).toBe(true);
      expect(bytesOf(decodeFrame(frame).payload!)).toEqual(bytesOf(values));
    }
  });
});
