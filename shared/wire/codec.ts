/**
 * The one place that turns messages into bytes and back. Pure: no sockets, no state.
 *
 * Frame layout (all integers little-endian):
 *   0  u8[2]  magic "DP"
 *   2  u8     codec version
 *   3  u8     payload dtype: 0 float32, 1 float16, 2 bfloat16 (shared/wire/wire-dtype.ts)
 *   4  u32    header length H
 *   8  H bytes msgpack header (plain values only)
 *   …  zero padding to a multiple of 4
 *   …  payload: little-endian values of that dtype, to the end of the frame
 *
 * Tensors never go through msgpack: msgpackr 2.1.3's plain pack() of a Float32Array writes one
 * byte per element, silently. The payload is copied as raw bytes instead, and its offset is
 * aligned so the receiver can view it as a Float32Array without a copy when the socket's
 * buffer allows (ws may hand over a Buffer at any byte offset; then we copy once).
 */
import { Packr } from 'msgpackr';
import { endianness } from 'node:os';
import { fail } from '../util/errors.js';
import type { Frame, Message } from './protocol.js';
import {
  BYTES_PER_ELEMENT,
  decodeTensor,
  DTYPE_CODE,
  dtypeOfCode,
  encodeTensor,
  type WireDtype,
} from './wire-dtype.js';

const MAGIC0 = 0x44; // 'D'
const MAGIC1 = 0x50; // 'P'
const CODEC_VERSION = 1;
const PREFIX = 8;

if (endianness() !== 'LE') {
  // Payloads are raw float32 in host order; a big-endian host would need a byte swap.
  throw new Error('dptrain needs a little-endian host');
}

// Records/structures off: a header must decode the same on a peer with no shared state.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

const align4 = (n: number) => (n + 3) & ~3;

export function encodeFrame(
  msg: Message,
  payload: Float32Array | readonly Float32Array[] | null = null,
  dtype: WireDtype = 'float32',
): Uint8Array {
  const header = packr.pack(msg);
  const payloadAt = align4(PREFIX + header.length);
  // A payload may come in parts (a worker's gradient tensors, read where they lie): one tensor on the wire.
  const parts = payload === null ? [] : payload instanceof Float32Array ? [payload] : payload;
  const payloadBytes = parts.reduce((n, p) => n + p.length, 0) * BYTES_PER_ELEMENT[dtype];
  // No zero-fill of megabytes we overwrite at once (the prefix and padding are zeroed below);
  // allocUnsafeSlow, not allocUnsafe: a buffer of its own at offset 0, never a slice of Node's pool.
  const frame: Uint8Array = Buffer.allocUnsafeSlow(payloadAt + payloadBytes);
  frame.fill(0, 0, payloadAt);
  frame[0] = MAGIC0;
  frame[1] = MAGIC1;
  frame[2] = CODEC_VERSION;
  frame[3] = payload ? DTYPE_CODE[dtype] : 0;
  new DataView(frame.buffer, frame.byteOffset, frame.byteLength).setUint32(4, header.length, true);
  frame.set(header, PREFIX);
  let at = payloadAt;
  for (const p of parts) {
    encodeTensor(p, dtype, frame.subarray(at));
    at += p.length * BYTES_PER_ELEMENT[dtype];
  }
  return frame;
}

/**
 * A float32 frame of `msg` with room for `values` values, and that room as a Float32Array to
 * fill in place (aligned: the frame is a buffer of its own) — for a payload that arrives in
 * pieces (a worker assembling parameters from slice shards), without a copy to encode it.
 */
export function frameToFill(msg: Message, values: number): { frame: Uint8Array; payload: Float32Array } {
  const frame = encodeFrame(msg, null);
  const payloadAt = frame.length;
  const out: Uint8Array = Buffer.allocUnsafeSlow(payloadAt + 4 * values);
  out.set(frame);
  out[3] = DTYPE_CODE.float32;
  return { frame: out, payload: new Float32Array(out.buffer, out.byteOffset + payloadAt, values) };
}

export interface DecodedFrame {
  header: unknown;
  /** The payload as float32 (16-bit payloads are widened), or null. */
  payload: Float32Array | null;
  /** How the payload travelled. */
  dtype: WireDtype;
}

/**
 * Decode bytes into a header object and an aligned float32 payload. Checks framing only; what
 * the header must contain is validate.ts's job.
 */
/**
 * `maxValues`: the most payload values the caller accepts (the model's parameter count, times
 * the most tree nodes for a result; null before the model is known: none). A payload over it is refused from its length, before it is
 * widened or copied.
 */
export function decodeFrame(bytes: Uint8Array, maxValues: number | null = Infinity): DecodedFrame {
  if (bytes.length < PREFIX)
    fail('FRAME_MALFORMED', `frame of ${bytes.length} bytes is shorter than the ${PREFIX}-byte prefix`);
  if (bytes[0] !== MAGIC0 || bytes[1] !== MAGIC1)
    fail('FRAME_MALFORMED', 'frame does not start with the dptrain magic "DP"');
  if (bytes[2] !== CODEC_VERSION) fail('FRAME_MALFORMED', `frame codec version ${bytes[2]}, expected ${CODEC_VERSION}`);
  const headerLen = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4, true);
  if (headerLen === 0 || PREFIX + headerLen > bytes.length) {
    fail('FRAME_MALFORMED', `frame header length ${headerLen} does not fit in a ${bytes.length}-byte frame`);
  }
  let header: unknown;
  try {
    header = packr.unpack(bytes.subarray(PREFIX, PREFIX + headerLen));
  } catch (e) {
    fail('FRAME_MALFORMED', `frame header is not valid msgpack: ${(e as Error).message}`);
  }
  const dtype = dtypeOfCode(bytes[3]);
  if (dtype === null)
    fail(
      'FRAME_MALFORMED',
      `frame payload dtype code ${bytes[3]} is not one of ${Object.values(DTYPE_CODE).join(', ')}`,
    );
  const payloadAt = align4(PREFIX + headerLen);
  const rest = bytes.length - payloadAt;
  if (rest <= 0) return { header, payload: null, dtype }; // at most the alignment padding follows
  const size = BYTES_PER_ELEMENT[dtype];
  if (rest % size !== 0) fail('FRAME_MALFORMED', `frame payload of ${rest} bytes is not whole ${dtype} values`);
  if (maxValues === null || rest / size > maxValues) {
    const t = (header as { t?: unknown } | null)?.t;
    const what = typeof t === 'string' && /^[A-Za-z]{1,16}$/.test(t) ? t : 'frame';
    const an = /^[aeiou]/i.test(what) ? 'an' : 'a';
    const over = `payload has ${rest / size} floats, more than the ${maxValues} ${an} ${what} may carry`;
    const why = maxValues === null ? 'arrived before the model was known' : over;
    fail('MESSAGE_INVALID', `${what} ${why}`);
  }
  let body = bytes.subarray(payloadAt);
  if (body.byteOffset % 4 !== 0) {
    // Unaligned: one copy into a buffer of our own. (Not bytes.slice(): on a Node Buffer that
    // is a view into the same, possibly pooled, memory.)
    body = new Uint8Array(new ArrayBuffer(align4(rest)), 0, rest);
    body.set(bytes.subarray(payloadAt));
  }
  return { header, payload: decodeTensor(body, dtype, rest / size), dtype };
}

export type { Frame };
