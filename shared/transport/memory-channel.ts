/**
 * The payload channel (payload-channel.ts) for a worker inside the coordinator's process
 * (`--coordinator-worker`): the same slots as the shared-memory files, kept in this process's
 * memory. A payload then costs a copy into its slot and a copy out, with no system call on
 * either side; with a worker inside, those copies sit on the coordinator's thread, the step's
 * critical path (docs/performance.md).
 *
 * Each side holds its own end (the coordinator's, and the one `offer()` hands the worker): the
 * slots are shared, while what a side reads lands in a buffer of its own, so a view one side
 * holds is never overwritten by the other's read. Reads copy out of the slot, as a file read
 * does: TF.js's cpu backend keeps the array a tensor was made from, and the coordinator writes
 * the next version into a slot it considers free.
 */
import { newToken, proofsEqual, shmGrantProof } from '../wire/auth.js';
import { fail } from '../util/errors.js';
import { BYTES_PER_ELEMENT, decodeTensor, encodeTensor, type WireDtype } from '../wire/wire-dtype.js';
import { type PayloadChannel, type PayloadOffer, RESULT_SLOTS } from './payload-channel.js';

/** One slot: the version or sequence number it holds (-1 while written), and its payload as on the wire. */
interface Slot {
  tag: number;
  /** Reused; as long as the largest payload so far (`size` of it in use). */
  bytes: Uint8Array;
  size: number;
}

/** What both ends share. */
interface Slots {
  secret: string;
  map: Map<string, Slot>;
  failed: string | null;
}

const WRITING = -1;

export class MemoryChannel implements PayloadChannel {
  readonly kind = 'memory';
  readonly where = "this process's memory";
  private landing: Uint8Array = new Uint8Array(0);

  /** A new channel (the coordinator's end); `offer()` gives a worker in this process the other. */
  constructor(private readonly slots: Slots = { secret: newToken(), map: new Map(), failed: null }) {}

  /** What the worker inside hands its session: a proof of the secret it was given, and its end. */
  offer(): PayloadOffer {
    const secret = this.slots.secret;
    return { proof: (nonce) => shmGrantProof(secret, nonce), open: () => new MemoryChannel(this.slots) };
  }

  get usable(): boolean {
    return this.slots.failed === null;
  }

  disable(why: string): void {
    this.slots.failed ??= why;
  }

  verifiesGrant(nonce: string, proof: string): boolean {
    return proof !== '' && proofsEqual(proof, shmGrantProof(this.slots.secret, nonce));
  }

  writeParams(slot: number, version: number, values: Float32Array, dtype: WireDtype): void {
    this.write(`params-${slot}`, version, values, dtype);
  }

  readParams(slot: number, version: number, n: number, dtype: WireDtype): Float32Array {
    return this.read(`params-${slot}`, version, n, dtype);
  }

  writeResult(workerId: string, seq: number, grads: Float32Array | readonly Float32Array[], dtype: WireDtype): void {
    this.write(resultKey(workerId, seq), seq, grads, dtype);
  }

  readResult(workerId: string, seq: number, n: number, dtype: WireDtype, into?: Float32Array): Float32Array {
    return this.read(resultKey(workerId, seq), seq, n, dtype, into);
  }

  removeResults(workerId: string): void {
    for (let k = 0; k < RESULT_SLOTS; k++) this.slots.map.delete(resultKey(workerId, k));
  }

  private write(key: string, tag: number, values: Float32Array | readonly Float32Array[], dtype: WireDtype): void {
    const parts = values instanceof Float32Array ? [values] : values;
    const size = parts.reduce((n, p) => n + p.length, 0) * BYTES_PER_ELEMENT[dtype];
    let slot = this.slots.map.get(key);
    if (!slot || slot.bytes.length < size) {
      slot = { tag: WRITING, bytes: new Uint8Array(size), size }; // its own ArrayBuffer: aligned for float32 views
      this.slots.map.set(key, slot);
    }
    slot.tag = WRITING;
    let at = 0;
    for (const p of parts) {
      if (dtype === 'float32') slot.bytes.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), at);
      else encodeTensor(p, dtype, slot.bytes.subarray(at));
      at += p.length * BYTES_PER_ELEMENT[dtype];
    }
    slot.size = size;
    slot.tag = tag;
  }

  private read(key: string, tag: number, n: number, dtype: WireDtype, into?: Float32Array): Float32Array {
    if (into && into.length !== n) throw new Error(`MemoryChannel.read: ${n} values into an array of ${into.length}`);
    const slot = this.slots.map.get(key);
    const size = n * BYTES_PER_ELEMENT[dtype];
    if (!slot) return fail('MESSAGE_INVALID', `payload slot ${key} in memory was never written`);
    if (slot.size !== size)
      fail(
        'MESSAGE_INVALID',
        `payload slot ${key} in memory has ${slot.size} bytes, ${n} ${dtype} values need ${size}`,
      );
    if (slot.tag !== tag)
      fail(
        'MESSAGE_INVALID',
        `payload slot ${key} in memory holds #${slot.tag}, expected #${tag} (overwritten before it was read)`,
      );
    const payload = slot.bytes.subarray(0, size);
    if (dtype !== 'float32') {
      const values = decodeTensor(payload, dtype, n); // a new array: nothing of the slot is kept
      if (!into) return values;
      into.set(values);
      return into;
    }
    const values = new Float32Array(payload.buffer, payload.byteOffset, n);
    if (into) {
      into.set(values);
      return into;
    }
    if (this.landing.length < size) this.landing = new Uint8Array(size);
    const out = new Float32Array(this.landing.buffer, 0, n);
    out.set(values);
    return out;
  }
}

function resultKey(workerId: string, seq: number): string {
  return `result-${workerId}-${seq % RESULT_SLOTS}`;
}
