/**
 * The messages of a sharded coordinator (coordinator/slices/): between the loop (shard 0's
 * training loop) and each slice shard, and between a slice shard and each worker. Frames use
 * the one codec (codec.ts); these are validated here, against their own table, so that a
 * shard link accepts no coordinator–worker message and the reverse.
 *
 *   shard → either sliceChallenge (first, on every link: a nonce, the parameter count it was started for)
 *   loop → shard   claim (first: the token's proof, the loop's nonce, which slice of how many),
 *                  assign (the same proof and nonce; payload params|m|v of the slice),
 *                  commit, reduce, apply, reduceApply (no clipping: Adam at once), revert (an early
 *                  apply's step is skipped), save
 *   shard → loop   joined (the shard's proof; after claim and after assign), norms (block sums in
 *                  the header: float64, exact in msgpack; the shard's step figures), saved
 *   worker → shard sliceHello (the token's proof and the worker's nonce), grad (payload: the slice of a
 *                  data shard's gradient sum)
 *   shard → worker sliceWelcome (the shard's proof, its slice of how many), slice (payload: the slice of
 *                  parameters of a version)
 *
 * Both ends prove the token: a client answers the shard's nonce, the shard answers both nonces
 * (auth.ts shardProof), and a client takes nothing from a shard before its proof checks out.
 */
import { fail } from '../util/errors.js';
import { decodeFrame, encodeFrame } from './codec.js';
import type { Message } from './protocol.js';
import type { WireDtype } from './wire-dtype.js';

// ---- loop → slice shard ----
/**
 * The loop's first frame, as soon as it has dialled: this shard is slice `slice` of `slices`.
 * Sent before any parameters exist (assign waits for the workers), so that a worker that joins
 * meanwhile learns from the shard where it stands in the coordinator's order.
 */
export interface Claim {
  t: 'claim';
  /** sliceProof(token, nonce, 'claim'); '' without a token. */
  proof: string;
  /** The loop's own nonce, which the shard's proof in `joined` answers. */
  nonce: string;
  slice: number;
  slices: number;
}
/** Own elements [from, to) with these Adam settings, from this state (payload: params, m, v). */
export interface Assign {
  t: 'assign';
  /** sliceProof(token, nonce, 'assign'); '' without a token. */
  proof: string;
  /** The loop's own nonce, which the shard's proof in `joined` answers. */
  nonce: string;
  slice: number;
  from: number;
  to: number;
  version: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  weightDecay: number;
  accBeta1: number;
  accBeta2: number;
  adamStep: number;
  /** How gradient and parameter slices travel between workers and shards (the job's wireDtype). */
  wireDtype: string;
}
/**
 * Add the tree nodes of data shard `shard` of step/micro, as `worker` computed them, to the
 * micro-batch's tree over `leaves` virtual shards (shared/job/shard-tree.ts).
 */
export interface Commit {
  t: 'commit';
  step: number;
  micro: number;
  shard: number;
  leaves: number;
  /** The nodes, in the worker's payload order: level, index, level, index, … */
  nodes: number[];
  worker: string;
  /** Per-worker shards: fold leaf by leaf in float64, as the unsharded coordinator does (LeafFold). */
  leafFold: boolean;
}
/** The step's sums are complete: the mean over `count` samples, and its block norms. */
export interface Reduce {
  t: 'reduce';
  step: number;
  count: number;
}
/**
 * The step's sums are complete and no global value is needed (no clipping): the mean, its block
 * norms, and — if this slice's mean is finite — Adam at once, published as `version`, the state
 * it replaced kept until the next step's first message (or a revert).
 */
export interface ReduceApply {
  t: 'reduceApply';
  step: number;
  count: number;
  version: number;
  lr: number;
}
/** Another slice's gradient was not finite: the step is skipped; undo the early apply, publish `version` again. */
export interface Revert {
  t: 'revert';
  step: number;
  version: number;
}
/** Clip by the global `norm` and apply Adam; the result is parameter version `version`. */
export interface Apply {
  t: 'apply';
  step: number;
  version: number;
  norm: number;
  clipNorm: number;
  lr: number;
}
/** Send this slice's parameters and optimizer state (for a checkpoint). */
export interface Save {
  t: 'save';
  step: number;
}

// ---- slice shard → loop ----
export interface Joined {
  t: 'joined';
  slice: number;
  /** shardProof(token, the shard's nonce, assign.nonce); '' without a token. */
  proof: string;
}
export interface Norms {
  t: 'norms';
  step: number;
  finite: boolean;
  blockSq: number[];
  /** Adam was applied already (reduceApply, a finite slice). */
  applied: boolean;
  /** The shard's clock: the step's first gradient frame in → its sums complete (its inbound window). */
  wireMs: number;
  /** The shard's clock: sums complete → the loop's word that they are (reduce, reduceApply) handled. */
  waitMs: number;
  /** Mean and block norms, and with reduceApply Adam and the slice frame. */
  updateMs: number;
  /** Bytes in and out on all the shard's links since its last norms. */
  bytesIn: number;
  bytesOut: number;
}
/** Payload: params, m, v of the slice. */
export interface Saved {
  t: 'saved';
  step: number;
  accBeta1: number;
  accBeta2: number;
  adamStep: number;
}

// ---- worker ↔ slice shard ----
export interface SliceChallenge {
  t: 'sliceChallenge';
  nonce: string;
  /** The parameter count of the model the shard was started for (its --config): the job's, or refused. */
  params: number;
}
export interface SliceHello {
  t: 'sliceHello';
  /** sliceProof(token, nonce, 'sliceHello'); '' without a token. */
  proof: string;
  /** The worker's own nonce, which the shard's proof in sliceWelcome answers. */
  nonce: string;
  worker: string;
}
/** The shard holds the token too: shardProof(token, its nonce, sliceHello.nonce); '' without a token. */
export interface SliceWelcome {
  t: 'sliceWelcome';
  proof: string;
  /** Which slice the coordinator's loop gave this shard, of how many; slices 0: not claimed yet. */
  slice: number;
  slices: number;
}
/** Payload: elements [from, to) of each tree node's gradient sum of one data shard, node after node. */
export interface Grad {
  t: 'grad';
  step: number;
  micro: number;
  shard: number;
}
/** Payload: this shard's slice of parameter version `version`. */
export interface Slice {
  t: 'slice';
  slice: number;
  version: number;
}

export type ToShard = Claim | Assign | Commit | Reduce | ReduceApply | Revert | Apply | Save | SliceHello | Grad;
export type FromShard = SliceChallenge | SliceWelcome | Joined | Norms | Saved | Slice;
export type SliceMessage = ToShard | FromShard;

type Kind = 'count' | 'number' | 'float' | 'string' | 'boolean' | 'floats' | 'counts';
const SHAPES: { [T in SliceMessage['t']]: Record<string, Kind> } = {
  claim: { proof: 'string', nonce: 'string', slice: 'count', slices: 'count' },
  assign: {
    proof: 'string',
    nonce: 'string',
    slice: 'count',
    from: 'count',
    to: 'count',
    version: 'count',
    beta1: 'number',
    beta2: 'number',
    epsilon: 'number',
    weightDecay: 'number',
    accBeta1: 'number',
    accBeta2: 'number',
    adamStep: 'count',
    wireDtype: 'string',
  },
  commit: {
    step: 'count',
    micro: 'count',
    shard: 'count',
    leaves: 'count',
    nodes: 'counts',
    worker: 'string',
    leafFold: 'boolean',
  },
  reduce: { step: 'count', count: 'count' },
  reduceApply: { step: 'count', count: 'count', version: 'count', lr: 'number' },
  revert: { step: 'count', version: 'count' },
  apply: { step: 'count', version: 'count', norm: 'number', clipNorm: 'number', lr: 'number' },
  save: { step: 'count' },
  joined: { slice: 'count', proof: 'string' },
  norms: {
    step: 'count',
    finite: 'boolean',
    blockSq: 'floats',
    applied: 'boolean',
    wireMs: 'number',
    waitMs: 'number',
    updateMs: 'number',
    bytesIn: 'count',
    bytesOut: 'count',
  },
  saved: { step: 'count', accBeta1: 'number', accBeta2: 'number', adamStep: 'count' },
  sliceChallenge: { nonce: 'string', params: 'count' },
  sliceHello: { proof: 'string', nonce: 'string', worker: 'string' },
  sliceWelcome: { proof: 'string', slice: 'count', slices: 'count' },
  grad: { step: 'count', micro: 'count', shard: 'count' },
  slice: { slice: 'count', version: 'count' },
};
const WITH_PAYLOAD = new Set(['assign', 'saved', 'grad', 'slice']);

const ok: Record<Kind, (v: unknown) => boolean> = {
  count: (v) => Number.isSafeInteger(v) && (v as number) >= 0,
  number: (v) => typeof v === 'number' && Number.isFinite(v),
  float: (v) => typeof v === 'number',
  string: (v) => typeof v === 'string' && v.length <= 256,
  boolean: (v) => typeof v === 'boolean',
  floats: (v) => Array.isArray(v) && v.length <= 1 << 20 && v.every((x) => typeof x === 'number'),
  counts: (v) => Array.isArray(v) && v.length <= 1 << 12 && v.every((x) => Number.isSafeInteger(x) && x >= 0),
};

/** Payloads that travel in the job's wireDtype; the others (optimizer state) are float32 always. */
const WIRE_PAYLOAD = new Set(['grad', 'slice']);

/**
 * Decode and check one frame of a slice link: its type among `allowed`, every field, and a
 * payload exactly where its type has one, of at most `maxValues` floats, in `wireDtype` where
 * its type travels in it (float32 elsewhere). MESSAGE_INVALID names the field.
 */
export function readSliceFrame<M extends SliceMessage>(
  bytes: Uint8Array,
  allowed: ReadonlySet<M['t']>,
  maxValues: number,
  wireDtype: WireDtype = 'float32',
): { msg: M; payload: Float32Array | null } {
  const { header, payload, dtype } = decodeFrame(bytes, maxValues);
  const h = header as Record<string, unknown> | null;
  const t = h && typeof h === 'object' && !Array.isArray(h) ? h.t : undefined;
  if (typeof t !== 'string' || !allowed.has(t as M['t']))
    fail('MESSAGE_INVALID', `slice message type ${JSON.stringify(t)} is not accepted here`);
  const shape = SHAPES[t as M['t']];
  for (const k of Object.keys(h!))
    if (k !== 't' && !Object.hasOwn(shape, k))
      fail('MESSAGE_INVALID', `${t} has no field ${JSON.stringify(k.slice(0, 40))}`);
  for (const [k, kind] of Object.entries(shape))
    if (!ok[kind](h![k])) fail('MESSAGE_INVALID', `${t}.${k} must be a valid ${kind}`);
  if (WITH_PAYLOAD.has(t) !== (payload !== null))
    fail('MESSAGE_INVALID', `${t} ${payload ? 'must not carry' : 'must carry'} a payload`);
  const want = WIRE_PAYLOAD.has(t) ? wireDtype : 'float32';
  if (payload && dtype !== want) fail('MESSAGE_INVALID', `${t} payload travels as ${dtype}, not the job's ${want}`);
  return { msg: h as unknown as M, payload };
}

export const LOOP_TO_SHARD: ReadonlySet<ToShard['t']> = new Set([
  'claim',
  'assign',
  'commit',
  'reduce',
  'reduceApply',
  'revert',
  'apply',
  'save',
]);
export const WORKER_TO_SHARD: ReadonlySet<ToShard['t']> = new Set(['sliceHello', 'grad']);
export const SHARD_TO_LOOP: ReadonlySet<FromShard['t']> = new Set(['sliceChallenge', 'joined', 'norms', 'saved']);
export const SHARD_TO_WORKER: ReadonlySet<(Slice | SliceChallenge | SliceWelcome)['t']> = new Set([
  'sliceChallenge',
  'sliceWelcome',
  'slice',
]);

/** One slice-link frame (the codec's layout; a float32 payload unless told, in parts if need be). */
export function encodeSliceFrame(
  msg: SliceMessage,
  payload: Float32Array | readonly Float32Array[] | null = null,
  dtype: WireDtype = 'float32',
): Uint8Array {
  return encodeFrame(msg as unknown as Message, payload, dtype); // the codec packs any plain header
}
