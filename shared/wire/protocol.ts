/**
 * The wire protocol: every message that crosses between coordinator and worker. A frame is
 * one message: a small msgpack header (these types) plus at most one fused float32 payload
 * (parameters or gradients, laid out as in the model kind's ModelLayout, shared/models).
 */
import type { JobConfig } from '../job/config.js';

// v2: results carry the worker's own timings (decode, encode, busy); payloads may be 16-bit.
// v4: work names a range of virtual shards; a result carries one payload per tree node it covers.
// v5: work carries the shared-memory result credit (shmRead).
// v6: ready says how many processes compute behind the link (a host agent's workers).
// v7: members: a host agent's workers changed after ready.
// v8: hello says how many slice shards the worker exchanges slices with (a sliced coordinator
//     refuses a worker without them, and the reverse); the slice links' claim (slice-protocol.ts).
export const PROTOCOL_VERSION = 8;

// ---- worker → coordinator ----
/** The answer to a challenge (see shared/wire/auth.ts): who the worker is and its proof of the token. */
export interface Hello {
  t: 'hello';
  protocol: number;
  name: string;
  host: string;
  pid: number;
  /** The job this worker means to join ('' = whichever this coordinator runs). */
  jobId: string;
  /** The worker's own nonce, for the coordinator's proof. */
  cnonce: string;
  proof: string;
  /**
   * Proof that the worker can read the coordinator's private shared-memory directory (a local
   * worker of `dptrain train`): the directory's grant secret MACed over this connection's
   * nonce (see ShmChannel.grantProof); '' offers no shared memory.
   */
  shm: string;
  /**
   * The slice shards (`--slice-shard`) this worker takes parameters from and sends gradients
   * to; absent or 0: none, the coordinator's link carries them.
   */
  sliceShards?: number;
}
/** Sent once the dataset is loaded and the model checked against the backend's kernels. */
export interface Ready {
  t: 'ready';
  fingerprint: string;
  backend: string;
  backendReason: string;
  /** Peak FLOP/s the worker's operator declared (--peak-flops / --device); 0 = none. */
  peakFlops: number;
  /** FLOP/s a matmul calibration reached on this backend at join. */
  attainableFlops: number;
  /** Processes computing behind this link: 1 for a worker, a host agent's worker count. */
  workers: number;
}
/** What computes behind a link: a Ready's figures that change when a host agent's workers do. */
export type Strength = Pick<Ready, 'backend' | 'peakFlops' | 'attainableFlops' | 'workers'>;
/**
 * A host agent's workers changed after it said ready (one lost, one back, one more): what
 * computes behind its link now, for the coordinator's accounting. Its shards do not change.
 */
export interface Members extends Strength {
  t: 'members';
}
/**
 * Sums of per-sample gradients over one shard: one payload per tree node the shard's leaves
 * cover (shared/job/shard-tree.ts coverNodes), back to back in the payload, each with its loss sum.
 */
export interface ShardResult {
  t: 'result';
  step: number;
  micro: number;
  shard: number;
  lossSum: number;
  /** Loss sum of each node, in payload order. */
  losses: number[];
  count: number;
  /** Forward, backward and the read-back of the gradients. */
  computeMs: number;
  /** Turning the params frame this shard used into tensors (0 when they were already held). */
  decodeMs: number;
  /**
   * Encoding this worker's previous result frame (a frame cannot contain its own encoding
   * time; consecutive frames are the same size, so the previous one stands in).
   */
  encodeMs: number;
  /** From the work frame's arrival to this result's send: decode, queueing and compute. */
  busyMs: number;
  /** 0: the gradients are this frame's payload; n > 0: they are in shared-memory file n (shared/transport/shm.ts). */
  shm: number;
}
export interface EvalResult {
  t: 'evalResult';
  round: number;
  shard: number;
  lossSum: number;
  correct: number;
  count: number;
  computeMs: number;
}
/** The worker cannot go on (e.g. a kernel missing on its backend); it says why and leaves. */
export interface Fault {
  t: 'fault';
  message: string;
}

// ---- coordinator → worker ----
/** The first message on every connection. */
export interface Challenge {
  t: 'challenge';
  protocol: number;
  jobId: string;
  nonce: string;
}
export interface Welcome {
  t: 'welcome';
  protocol: number;
  workerId: string;
  jobId: string;
  job: JobConfig;
  /** The coordinator's proof of the token, over the worker's nonce. */
  proof: string;
  /** Payloads between us go through the shared-memory directory (the worker offered it, and it is ours). */
  shm: boolean;
}
/** New parameters (payload); later work refers to them by version. */
export interface Params {
  t: 'params';
  version: number;
  /** 0: the parameters are this frame's payload; k > 0: they are in shared-memory parameter slot k − 1. */
  shm: number;
}
/**
 * Gradients over positions [from, to) of the shuffled sample stream (see shared/job/sampler):
 * leaves [first, last) of a micro-batch of `batch` positions cut into `leaves` virtual shards.
 */
export interface Work {
  t: 'work';
  step: number;
  micro: number;
  shard: number;
  version: number;
  from: number;
  to: number;
  leaves: number;
  first: number;
  last: number;
  batch: number;
  /**
   * The newest shared-memory result (its sequence number) the coordinator has read from this
   * worker, 0 for none: the worker's credit. It writes result k into its slot only once
   * k − RESULT_SLOTS ≤ shmRead (shared/transport/payload-channel.ts), so no slot is overwritten unread.
   */
  shmRead: number;
}
/** Loss and accuracy over test rows [from, to). */
export interface Evaluate {
  t: 'evaluate';
  round: number;
  shard: number;
  version: number;
  from: number;
  to: number;
}
export interface Bye {
  t: 'bye';
  reason: string;
}

export type ToCoordinator = Hello | Ready | Members | ShardResult | EvalResult | Fault;
export type ToWorker = Challenge | Welcome | Params | Work | Evaluate | Bye;
export type Message = ToCoordinator | ToWorker;
export type MessageType = Message['t'];

/** A decoded frame: the header and its payload (if any), 4-byte aligned. */
export interface Frame<M extends Message = Message> {
  msg: M;
  payload: Float32Array | null;
}

/** Which messages carry a payload of the model's parameter count (a result: a whole multiple of it). */
export const PAYLOAD_TYPES: ReadonlySet<MessageType> = new Set<MessageType>(['params', 'result']);
