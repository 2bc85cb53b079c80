/**
 * Every payload channel against the contract (shared/transport/payload-channel.ts): what one end
 * writes, the other reads back as it would travel on the wire; a slot that does not hold the
 * expected tag is an error, never a wrong tensor; each end's reads land in its own buffer; a
 * channel is granted only to a proof of its secret over the connection's nonce.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryChannel } from '../../shared/transport/memory-channel.js';
import { type PayloadChannel, RESULT_SLOTS } from '../../shared/transport/payload-channel.js';
import { ShmChannel } from '../../shared/transport/shm.js';
import { encodeTensor, decodeTensor } from '../../shared/wire/wire-dtype.js';
import { expectCode } from '../helpers/expect-code.js';

/** The coordinator's end, and a worker's end opened from the offer it was handed. */
interface Ends {
  coordinator: PayloadChannel;
  proof: (nonce: string) => string | null;
  worker: () => PayloadChannel;
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

const CHANNELS: Record<string, () => Ends> = {
  files: () => {
    const c = ShmChannel.create(0, mkdtempSync(join(tmpdir(), 'dptrain-channel-test-')));
    if (typeof c === 'string') throw new Error(c);
    cleanups.push(() => c.remove());
    const offer = ShmChannel.offer(c.dir);
    return { coordinator: c, proof: offer.proof, worker: offer.open };
  },
  memory: () => {
    const c = new MemoryChannel();
    const offer = c.offer();
    return { coordinator: c, proof: offer.proof, worker: offer.open };
  },
};

const N = 1003;
const values = Float32Array.from({ length: N }, (_, i) => Math.sin(i) * 100);
const bits = (a: Float32Array) => Array.from(new Uint32Array(a.slice().buffer));

/** `values` as a receiver sees them after travelling as `dtype` on the wire. */
function onTheWire(v: Float32Array, dtype: 'float32' | 'float16' | 'bfloat16'): Float32Array {
  const bytes = new Uint8Array(v.length * (dtype === 'float32' ? 4 : 2));
  encodeTensor(v, dtype, bytes);
  return decodeTensor(bytes, dtype, v.length).slice();
}

describe.each(Object.keys(CHANNELS))('payload channel: %s', (name) => {
  const ends = () => CHANNELS[name]();

  it.each(['float32', 'float16', 'bfloat16'] as const)(
    'parameters and results read back on the other end as they travel on the wire (%s)',
    (dtype) => {
      const { coordinator, worker } = ends();
      const w = worker();
      coordinator.writeParams(1, 7, values, dtype);
      expect(bits(w.readParams(1, 7, N, dtype))).toEqual(bits(onTheWire(values, dtype)));
      // A result in parts (a worker's gradient tensors where they lie) reads as the whole.
      const parts = [values.subarray(0, 1), values.subarray(1, 500), values.subarray(500, 501), values.subarray(501)];
      w.writeResult('w3', 1, parts, dtype);
      expect(bits(coordinator.readResult('w3', 1, N, dtype))).toEqual(bits(onTheWire(values, dtype)));
      const into = new Float32Array(N);
      w.writeResult('w3', 2, values, dtype);
      expect(coordinator.readResult('w3', 2, N, dtype, into)).toBe(into);
      expect(bits(into)).toEqual(bits(onTheWire(values, dtype)));
      expect(() => coordinator.readResult('w3', 2, N, dtype, new Float32Array(3))).toThrow(/into an array of 3/);
    },
  );

  it('a slot overwritten before it was read, or never written, is MESSAGE_INVALID; so is a wrong size', () => {
    const { coordinator, worker } = ends();
    const w = worker();
    for (let s = 1; s <= RESULT_SLOTS + 1; s++)
      w.writeResult(
        'w1',
        s,
        values.map((x) => x + s),
        'float32',
      );
    expect(coordinator.readResult('w1', RESULT_SLOTS + 1, N, 'float32')[0]).toBe(values[0] + RESULT_SLOTS + 1);
    // Result 1 shares a slot with result RESULT_SLOTS + 1, which replaced it.
    expect(expectCode(() => coordinator.readResult('w1', 1, N, 'float32'), 'MESSAGE_INVALID')).toMatch(
      new RegExp(`holds #${RESULT_SLOTS + 1}, expected #1 \\(overwritten before it was read\\)`),
    );
    coordinator.writeParams(0, 3, values, 'float32');
    coordinator.writeParams(0, 4, values, 'float32');
    expect(expectCode(() => w.readParams(0, 3, N, 'float32'), 'MESSAGE_INVALID')).toMatch(/holds #4, expected #3/);
    expect(expectCode(() => w.readParams(0, 4, N - 1, 'float32'), 'MESSAGE_INVALID')).toMatch(
      new RegExp(`has \\d+ bytes, ${N - 1} float32 values need \\d+`),
    );
    expectCode(() => w.readParams(5, 1, N, 'float32'), 'MESSAGE_INVALID'); // slot 5 never written
    coordinator.removeResults('w1');
    expectCode(() => coordinator.readResult('w1', RESULT_SLOTS + 1, N, 'float32'), 'MESSAGE_INVALID');
  });

  it("each end's reads land in its own buffer: one end's read never changes a view the other holds", () => {
    const { coordinator, worker } = ends();
    const w = worker();
    coordinator.writeParams(0, 1, values, 'float32');
    const held = w.readParams(0, 1, N, 'float32');
    w.writeResult(
      'w2',
      1,
      values.map((x) => -x),
      'float32',
    );
    coordinator.readResult('w2', 1, N, 'float32');
    // The slot itself is rewritten with the next version: what the worker read stays as it was.
    coordinator.writeParams(
      0,
      2,
      values.map((x) => x * 3),
      'float32',
    );
    expect(bits(held)).toEqual(bits(values));
  });

  it("is granted only to a proof of its secret over this connection's nonce", () => {
    const { coordinator, proof } = ends();
    const mine = proof('n1');
    expect(mine).toBeTruthy();
    expect(coordinator.verifiesGrant('n1', mine!)).toBe(true);
    expect(coordinator.verifiesGrant('n2', mine!)).toBe(false); // a replay on another connection
    expect(coordinator.verifiesGrant('n1', '')).toBe(false);
    expect(coordinator.verifiesGrant('n1', 'I can read it, honestly')).toBe(false);
    expect(ends().coordinator.verifiesGrant('n1', mine!)).toBe(false); // another channel's secret
  });

  it('disable makes it unusable', () => {
    const { coordinator } = ends();
    expect(coordinator.usable).toBe(true);
    coordinator.disable('a write failed');
    expect(coordinator.usable).toBe(false);
    expect(coordinator.kind).toBe(name);
  });
});
