/**
 * The one place that decides whether a decoded header is a message we accept. Each direction
 * has its own allowed set, every field is type- and range-checked, and a payload must have
 * exactly the model's parameter count (a result's: that times its node count). Anything else is MESSAGE_INVALID with the field named.
 */
import { decodeFrame, type DecodedFrame } from './codec.js';
import { fail } from '../util/errors.js';
import type { WireDtype } from './wire-dtype.js';
import type { GradientCompressor } from '../compress/contract.js';
import { leafStart, MAX_LEAVES } from '../job/shard-tree.js';
import {
  PAYLOAD_TYPES,
  PROTOCOL_VERSION,
  type Frame,
  type Message,
  type MessageType,
  type ToCoordinator,
  type ToWorker,
} from './protocol.js';

type FieldKind = 'string' | 'count' | 'number' | 'float' | 'floats' | 'object' | 'boolean';
type Shape = Record<string, FieldKind>;

// "count": a non-negative safe integer; "number": any finite number; "float": any number,
// NaN and ±Infinity included (a diverged loss is a result to handle, not a protocol error).
const SHAPES: Record<MessageType, Shape> = {
  hello: {
    protocol: 'count',
    name: 'string',
    host: 'string',
    pid: 'count',
    jobId: 'string',
    cnonce: 'string',
    proof: 'string',
    shm: 'string',
    sliceShards: 'count',
  },
  ready: {
    fingerprint: 'string',
    backend: 'string',
    backendReason: 'string',
    peakFlops: 'number',
    attainableFlops: 'number',
    workers: 'count',
  },
  members: { backend: 'string', peakFlops: 'number', attainableFlops: 'number', workers: 'count' },
  result: {
    step: 'count',
    micro: 'count',
    shard: 'count',
    lossSum: 'float',
    losses: 'floats',
    count: 'count',
    computeMs: 'number',
    decodeMs: 'number',
    encodeMs: 'number',
    busyMs: 'number',
    shm: 'count',
  },
  evalResult: {
    round: 'count',
    shard: 'count',
    lossSum: 'float',
    correct: 'count',
    count: 'count',
    computeMs: 'number',
  },
  fault: { message: 'string' },
  challenge: { protocol: 'count', jobId: 'string', nonce: 'string' },
  welcome: { protocol: 'count', workerId: 'string', jobId: 'string', job: 'object', proof: 'string', shm: 'boolean' },
  params: { version: 'count', shm: 'count' },
  work: {
    step: 'count',
    micro: 'count',
    shard: 'count',
    version: 'count',
    from: 'count',
    to: 'count',
    leaves: 'count',
    first: 'count',
    last: 'count',
    batch: 'count',
    shmRead: 'count',
  },
  evaluate: { round: 'count', shard: 'count', version: 'count', from: 'count', to: 'count' },
  bye: { reason: 'string' },
};

/** Fields a message may leave out (what their absence means is on the message's type). */
const OPTIONAL: Partial<Record<MessageType, ReadonlySet<string>>> = { hello: new Set(['sliceShards']) };

const TO_COORDINATOR: ReadonlySet<MessageType> = new Set([
  'hello',
  'ready',
  'members',
  'result',
  'evalResult',
  'fault',
]);
const TO_WORKER: ReadonlySet<MessageType> = new Set(['challenge', 'welcome', 'params', 'work', 'evaluate', 'bye']);

/** Strings on the wire are names and reasons: bound them so a peer cannot bloat our logs. */
export const MAX_STRING = 4096;

export interface ValidateContext {
  /** Parameter count of the model, once known; payloads must match it exactly. */
  totalParams: number | null;
  /** The job's wire dtype, once known; payloads must travel in it. */
  wireDtype?: WireDtype | null;
  /** Results carry no payload: the gradients went to slice shards (coordinator/slices/). */
  slicedResults?: boolean;
  /** The job's gradient compressor (shared/compress/): results carry its words, not dense gradients. */
  compressor?: GradientCompressor | null;
}

function checkField(v: unknown, kind: FieldKind, where: string): void {
  const ok =
    kind === 'string'
      ? typeof v === 'string' && v.length <= MAX_STRING
      : kind === 'count'
        ? typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
        : kind === 'number'
          ? typeof v === 'number' && Number.isFinite(v)
          : kind === 'float'
            ? typeof v === 'number'
            : kind === 'floats'
              ? Array.isArray(v) && v.length >= 1 && v.length <= MAX_LEAVES && v.every((x) => typeof x === 'number')
              : kind === 'boolean'
                ? typeof v === 'boolean'
                : typeof v === 'object' && v !== null && !Array.isArray(v);
  const what =
    kind === 'count'
      ? 'a non-negative integer'
      : kind === 'number'
        ? 'a finite number'
        : kind === 'floats'
          ? `an array of 1 to ${MAX_LEAVES} numbers`
          : `a ${kind}`;
  if (!ok) fail('MESSAGE_INVALID', `${where} must be ${what}`);
}

/**
 * A key the peer chose, fit for a log line: a short plain name as it is, anything else quoted
 * (control characters escaped) and cut short, so it can neither forge lines nor flood them.
 */
function peerKey(k: string): string {
  return /^[A-Za-z_$][\w$]{0,39}$/.test(k) ? k : JSON.stringify(k.length > 40 ? `${k.slice(0, 40)}…` : k);
}

function validate(
  { header, payload, dtype }: DecodedFrame,
  allowed: ReadonlySet<MessageType>,
  ctx: ValidateContext,
): Frame {
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    fail('MESSAGE_INVALID', 'message header is not an object');
  }
  const h = header as Record<string, unknown>;
  const t = h.t;
  if (typeof t !== 'string' || !allowed.has(t as MessageType)) {
    fail('MESSAGE_INVALID', `message type ${JSON.stringify(t)} is not accepted here`);
  }
  const shape = SHAPES[t as MessageType];
  for (const k of Object.keys(h)) {
    if (k !== 't' && !Object.hasOwn(shape, k)) fail('MESSAGE_INVALID', `${t}.${peerKey(k)} is not a field of ${t}`);
  }
  for (const [k, kind] of Object.entries(shape))
    if (h[k] !== undefined || !OPTIONAL[t as MessageType]?.has(k)) checkField(h[k], kind, `${t}.${k}`);
  if (t === 'hello') checkSliceShards(h, ctx);
  if ((t === 'work' || t === 'evaluate') && (h.to as number) <= (h.from as number)) {
    fail('MESSAGE_INVALID', `${t}.to must be greater than ${t}.from`);
  }
  if (t === 'work') checkLeaves(h);
  // A payload in shared memory (shared/transport/shm.ts) leaves the frame without one.
  const inShm = (t === 'params' || t === 'result') && (h.shm as number) > 0;
  const elsewhere = inShm || (t === 'result' && ctx.slicedResults === true);
  if (PAYLOAD_TYPES.has(t as MessageType) && !elsewhere) {
    if (!payload) fail('MESSAGE_INVALID', `${t} must carry a float32 payload`);
    if (ctx.totalParams === null) fail('MESSAGE_INVALID', `${t} arrived before the model was known`);
    const tensors = t === 'result' ? (h.losses as number[]).length : 1;
    if (t === 'result' && ctx.compressor) {
      if (dtype !== 'float32')
        fail('MESSAGE_INVALID', `result ${ctx.compressor.kind} payload travels as ${dtype}, not raw 32-bit words`);
      ctx.compressor.check(payload, tensors, ctx.totalParams);
      return { msg: h as unknown as Message, payload };
    }
    if (payload.length !== tensors * ctx.totalParams) {
      const want =
        tensors === 1
          ? `the model has ${ctx.totalParams}`
          : `${tensors} nodes of ${ctx.totalParams} need ${tensors * ctx.totalParams}`;
      fail('MESSAGE_INVALID', `${t} payload has ${payload.length} floats, ${want}`);
    }
    if (ctx.wireDtype && dtype !== ctx.wireDtype)
      fail('MESSAGE_INVALID', `${t} payload travels as ${dtype}, the job's wireDtype is ${ctx.wireDtype}`);
  } else if (payload) {
    fail('MESSAGE_INVALID', `${t} must not carry a payload${elsewhere ? ' (its payload is in shared memory)' : ''}`);
  }
  return { msg: h as unknown as Message, payload };
}

/**
 * A sliced coordinator sends workers no parameters and takes no gradients: a worker without the
 * slice shards would be welcomed and then fail on its first work (and one with shards, at an
 * unsliced coordinator, would wait on shards nobody assigned). Refused at hello, in one line.
 * Only at our own protocol version: another version's hello is refused for that (admission.ts).
 * Short: the reason travels in a WebSocket close frame (123 bytes, with "invalid message: …").
 */
function checkSliceShards(h: Record<string, unknown>, ctx: ValidateContext): void {
  if (h.protocol !== PROTOCOL_VERSION) return;
  const shards = (h.sliceShards as number | undefined) ?? 0;
  if (ctx.slicedResults === true && shards === 0)
    fail('MESSAGE_INVALID', "sliced job: start the worker with --slice-shard URL… in the coordinator's order");
  if (ctx.slicedResults !== true && shards > 0)
    fail('MESSAGE_INVALID', 'no slice shards here: start the worker without --slice-shard');
}

/** A work message's leaves: a non-empty range of at most MAX_LEAVES, whose rows are [from, to). */
function checkLeaves(h: Record<string, unknown>): void {
  const [leaves, first, last, batch] = [h.leaves, h.first, h.last, h.batch] as number[];
  if (!(first < last && last <= leaves && leaves <= Math.min(batch, MAX_LEAVES))) {
    fail(
      'MESSAGE_INVALID',
      `work leaves [${first}, ${last}) of ${leaves} (batch ${batch}) is not a range of at most ${MAX_LEAVES} leaves`,
    );
  }
  const rows = leafStart(batch, leaves, last) - leafStart(batch, leaves, first);
  if ((h.to as number) - (h.from as number) !== rows)
    fail('MESSAGE_INVALID', `work rows [${h.from}, ${h.to}) are not the ${rows} rows of its leaves`);
}

/** Decode and validate one frame a worker sent. Throws DptrainError (FRAME_MALFORMED / MESSAGE_INVALID). */
export function readFromWorker(bytes: Uint8Array, ctx: ValidateContext): Frame<ToCoordinator> {
  const most = ctx.totalParams === null ? null : ctx.totalParams * MAX_LEAVES; // the node count is checked above
  return validate(decodeFrame(bytes, most), TO_COORDINATOR, ctx) as Frame<ToCoordinator>;
}

/** Decode and validate one frame the coordinator sent. */
export function readFromCoordinator(bytes: Uint8Array, ctx: ValidateContext): Frame<ToWorker> {
  return validate(decodeFrame(bytes, ctx.totalParams), TO_WORKER, ctx) as Frame<ToWorker>;
}
