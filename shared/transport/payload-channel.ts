/**
 * The contract of a side channel for tensor payloads between a coordinator and the workers that
 * can reach its memory: the frame still travels on the Link (it orders everything and names the
 * slot), only the payload moves. Two implementations, chosen where the worker runs:
 * - files in a private /dev/shm directory, for worker processes on the coordinator's host
 *   (shm.ts);
 * - slots in the process's own memory, for a worker inside the coordinator's process
 *   (memory-channel.ts, `--coordinator-worker`).
 *
 * Both keep the same slots and rules, so the coordinator and the worker loops do not know which
 * they use: params slot k holds one version, written once (see ParamsBroadcast.freeSlot);
 * result slots are per worker and sequence number, RESULT_SLOTS of them, written only on the
 * coordinator's credit (Work.shmRead); every payload is stored as it would travel on the wire
 * (wireDtype), so every worker sees the same rounded values whichever way they came. A read of
 * a slot that does not hold the expected tag fails, never returns a wrong tensor.
 *
 * A channel is granted, never claimed: a worker proves in its hello that it holds the channel's
 * secret (a MAC over the connection's nonce), which only a process that could reach the
 * coordinator's directory or memory can.
 */
import type { WireDtype } from '../wire/wire-dtype.js';

/** Result slots per worker; a worker writes into one only on credit (Work.shmRead), never over an unread one. */
export const RESULT_SLOTS = 8;

/** Which implementation, for logs and the run's summary. */
export type PayloadChannelKind = 'files' | 'memory';

/** The coordinator's side and, once granted, the worker's side of a channel. */
export interface PayloadChannel {
  readonly kind: PayloadChannelKind;
  /** Where the payloads lie, for messages ("/dev/shm/dptrain-…", "this process's memory"). */
  readonly where: string;
  /** False once an operation failed: from then on payloads go through the socket. */
  readonly usable: boolean;
  /** Stop using it (its sending, and granting it to new workers). */
  disable(why: string): void;
  /** Coordinator side: does `proof` show its sender holds this channel's secret? */
  verifiesGrant(nonce: string, proof: string): boolean;
  /** Throws when it cannot; callers fall back to the payload in the frame. */
  writeParams(slot: number, version: number, values: Float32Array, dtype: WireDtype): void;
  /** A view valid until the next read on this side of the channel. */
  readParams(slot: number, version: number, n: number, dtype: WireDtype): Float32Array;
  /** `grads` may come in parts (consecutive pieces of the flat vector), stored one after another. */
  writeResult(workerId: string, seq: number, grads: Float32Array | readonly Float32Array[], dtype: WireDtype): void;
  /** Into `into` when given, else a view valid until the next read on this side. */
  readResult(workerId: string, seq: number, n: number, dtype: WireDtype, into?: Float32Array): Float32Array;
  /** Free a departed worker's result slots. */
  removeResults(workerId: string): void;
}

/** A worker's side before its welcome: what it proves in the hello, and the channel it uses once granted. */
export interface PayloadOffer {
  /** The hello's proof over the connection's nonce; null when the secret cannot be read (then none is offered). */
  proof(nonce: string): string | null;
  open(): PayloadChannel;
}
