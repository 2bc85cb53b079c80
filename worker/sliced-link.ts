/**
 * A worker's link to a coordinator whose parameters live on slice shards (coordinator/slices/),
 * seen by the worker loop as an ordinary coordinator link: the loop is unchanged.
 *   welcome         passed on; its worker id and job open the links to the shards (SliceClient)
 *   work, evaluate  held until every slice of their parameter version is in, which is passed on
 *                   first as a params frame (what the coordinator would have sent)
 *   result (out)    its gradients go to the shards, cut into slices; the coordinator gets the header
 * A shard lost ends the session, as a lost coordinator would.
 */
import { jobLayout } from '../shared/job/job-layout.js';
import type { CloseKind, Link } from '../shared/transport/transport.js';
import { DptrainError, describeError } from '../shared/util/errors.js';
import { decodeFrame, encodeFrame } from '../shared/wire/codec.js';
import type { Message, Welcome } from '../shared/wire/protocol.js';
import type { WireDtype } from '../shared/wire/wire-dtype.js';
import { SliceClient } from './slice-client.js';

/** The frame's header when it is one of ours and carries no payload it could not read; else null (passed on as is). */
function peek(bytes: Uint8Array, maxValues: number): { msg: Message; payload: Float32Array | null } | null {
  try {
    const { header, payload } = decodeFrame(bytes, maxValues);
    return typeof header === 'object' && header !== null ? { msg: header as Message, payload } : null;
  } catch {
    return null; // the worker loop's own validation will say what is wrong with it
  }
}

/** `dialShards(totalParams)`: links to every slice shard, in slice order. */
export function slicedLink(
  coordinator: Link,
  dialShards: (totalParams: number) => Promise<Link[]>,
  token: string | null,
): Link {
  let client: SliceClient | null = null;
  let wireDtype: WireDtype = 'float32';
  let delivered = -1;
  let chain: Promise<void> = Promise.resolve();
  const inbound = async (bytes: Uint8Array, pass: (f: Uint8Array) => void): Promise<void> => {
    const f = peek(bytes, 0);
    if (f?.msg.t === 'welcome') {
      const w = f.msg as Welcome;
      const total = jobLayout(w.job).totalParams;
      wireDtype = w.job.wireDtype;
      client = new SliceClient(await dialShards(total), total, w.workerId, token, wireDtype);
    } else if ((f?.msg.t === 'work' || f?.msg.t === 'evaluate') && client && f.msg.version !== delivered) {
      const version = f.msg.version;
      // The shards' slices are values of wireDtype already: encoding them again is exact.
      pass(encodeFrame({ t: 'params', version, shm: 0 }, await client.params(version), wireDtype));
      delivered = version;
    }
    pass(bytes);
  };
  return {
    remote: coordinator.remote,
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
      coordinator.onFrame((bytes) => {
        chain = chain
          .then(() => inbound(bytes, handler))
          .catch((e) => {
            client?.close();
            // A shard without the token is a refusal (the worker exits); anything else is as a
            // lost coordinator: reconnect.
            const refused = e instanceof DptrainError && e.code === 'AUTH_FAILED';
            coordinator.close(`slice shards: ${describeError(e)}`, refused ? 'authFailed' : undefined);
          });
      });
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
