/**
 * A worker's link to a coordinator whose parameters live on slice shards (coordinator/slices/),
 * seen by the worker loop as an ordinary coordinator link: the loop is unchanged.
 *   welcome         its worker id and job open the links to the shards (SliceClient); passed on once
 *                   every shard link is open and stands where this worker listed it
 *   params          each version as soon as every slice of it is in, as a params frame (what the
 *                   coordinator would have sent), the slices written into it as they arrived
 *   work, evaluate  held until their parameter version has been passed on (again, if a newer
 *                   one went first)
 *   result (out)    its gradients go to the shards, cut into slices; the coordinator gets the header.
 *                   sendResult does the same from the gradients where they lie (no result frame)
 * A shard lost ends the session, as a lost coordinator would. A refusal (shards of another job,
 * in another order, without the token) ends it for good: the link tells the coordinator
 * (a fault), and the session ends the worker with that error (`refusal`, coordinator-session.ts).
 */
import { jobLayout } from '../shared/job/job-layout.js';
import type { CloseKind, Link } from '../shared/transport/transport.js';
import { type DptrainError, describeError } from '../shared/util/errors.js';
import { decodeFrame, encodeFrame } from '../shared/wire/codec.js';
import type { Message, ShardResult, Welcome } from '../shared/wire/protocol.js';
import { isRefusal, SliceClient } from './slice-client.js';

/** The frame's header when it is one of ours and carries no payload it could not read; else null (passed on as is). */
function peek(bytes: Uint8Array, maxValues: number): { msg: Message; payload: Float32Array | null } | null {
  try {
    const { header, payload } = decodeFrame(bytes, maxValues);
    return typeof header === 'object' && header !== null ? { msg: header as Message, payload } : null;
  } catch {
    return null; // the worker loop's own validation will say what is wrong with it
  }
}

/**
 * The link, and a way to send a result without encoding its gradients in one frame first;
 * how many shards it reaches (the hello says so), and why it refused the job, once it has.
 */
export type SlicedLink = Link & {
  sendResult(msg: ShardResult, parts: readonly Float32Array[]): boolean;
  readonly sliceShards: number;
  readonly refusal: DptrainError | null;
};

/** `dialShards(totalParams)`: links to every slice shard (`shards` of them), in slice order. */
export function slicedLink(
  coordinator: Link,
  dialShards: (totalParams: number) => Promise<Link[]>,
  token: string | null,
  shards = 1,
): SlicedLink {
  let client: SliceClient | null = null;
  let refusal: DptrainError | null = null;
  let delivered = -1;
  let chain: Promise<void> = Promise.resolve();
  let pass: (f: Uint8Array) => void = () => {};
  /** Hand the worker loop the params frame of `version` (assembled in place: no copy). */
  const deliver = async (version: number): Promise<void> => {
    if (!client || version === delivered) return;
    const frame = await client.paramsFrame(version);
    pass(frame);
    delivered = version;
  };
  const inbound = async (bytes: Uint8Array): Promise<void> => {
    const f = peek(bytes, 0);
    if (f?.msg.t === 'welcome') {
      const w = f.msg as Welcome;
      const total = jobLayout(w.job).totalParams;
      const c = new SliceClient(await dialShards(total), total, w.workerId, token, w.job.wireDtype);
      // A version complete goes to the worker loop at once: it sets its tensors while the work
      // for it is still on its way (shards that apply Adam early publish before the loop's step ends).
      c.onVersion = (version) => queue(() => deliver(version));
      // A refusal found later (a shard claimed after we joined) ends the session at once, not at the next work.
      c.onFail = (e) => {
        if (isRefusal(e)) end(e);
      };
      client = c;
      await c.opened; // the shards checked before the worker loads the job and says ready
    } else if (f?.msg.t === 'work' || f?.msg.t === 'evaluate') await deliver(f.msg.version);
    pass(bytes);
  };
  /**
   * A refusal (a shard without the token, or not the coordinator's) ends the worker: the
   * coordinator hears why; anything else is as a lost coordinator: reconnect.
   */
  const end = (e: unknown) => {
    client?.close();
    if (!isRefusal(e)) return coordinator.close(`slice shards: ${describeError(e)}`);
    refusal ??= e;
    if (e.code === 'AUTH_FAILED') return coordinator.close(e.message, 'authFailed');
    coordinator.send(encodeFrame({ t: 'fault', message: e.message }));
    coordinator.close(e.message, 'workerFault');
  };
  const queue = (job: () => Promise<void>) => {
    chain = chain.then(job).catch(end);
  };
  return {
    remote: coordinator.remote,
    sliceShards: shards,
    get refusal() {
      return refusal;
    },
    sendResult(msg, parts) {
      if (!client) return false;
      client.sendGradient(msg.step, msg.micro, msg.shard, parts);
      coordinator.send(encodeFrame(msg)); // the header: loss, count and timings
      return true;
    },
    send(frame) {
      const f = client ? peek(frame, Infinity) : null; // a result carries one gradient per tree node
      if (client && f?.msg.t === 'result' && f.payload) {
        const { step, micro, shard } = f.msg;
        client.sendGradient(step, micro, shard, f.payload);
        coordinator.send(encodeFrame(f.msg)); // the header: loss, count and timings
      } else coordinator.send(frame);
    },
    close(reason: string, kind?: CloseKind) {
      client?.close();
      coordinator.close(reason, kind);
    },
    onFrame(handler) {
      pass = handler;
      coordinator.onFrame((bytes) => queue(() => inbound(bytes)));
    },
    onClose(handler) {
      coordinator.onClose((reason, kind) => {
        client?.close();
        handler(reason, kind);
      });
    },
    liftFrameCap: coordinator.liftFrameCap?.bind(coordinator),
  };
}
