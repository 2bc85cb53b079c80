/**
 * A sharded coordinator in one process: K slice shards, the loop's RemoteSlices and N workers'
 * SliceClients, joined by the in-process transport — for tests and the bytes-per-host bench.
 * Every link is dialled by the loop or a worker; `onBytes` hears each frame with its two ends
 * ('loop', 'shard k', 'worker w'), in both directions.
 */
import { createLocalNetwork } from '../../shared/transport/local.js';
import type { Link } from '../../shared/transport/transport.js';
import type { WireDtype } from '../../shared/wire/wire-dtype.js';
import { SliceClient } from '../../worker/slice-client.js';
import type { AdamHyper } from '../optimizers/adam.js';
import { RemoteSlices } from './remote-slices.js';
import { SliceServer } from './slice-server.js';

export interface SliceCluster {
  servers: SliceServer[];
  loop: RemoteSlices;
  workers: SliceClient[];
  /** The loop's link to each shard (close one to lose that shard). */
  loopLinks: Link[];
  /** New links to every shard, in slice order, counted as `me`'s. */
  dial(me: string): Promise<Link[]>;
}

type OnBytes = (from: string, to: string, bytes: number) => void;

/** A link that reports what crosses it, both ways. */
function counted(link: Link, me: string, peer: string, onBytes: OnBytes): Link {
  return {
    remote: link.remote,
    send: (f) => {
      onBytes(me, peer, f.byteLength);
      link.send(f);
    },
    close: (r, k) => link.close(r, k),
    onFrame: (h) =>
      link.onFrame((f) => {
        onBytes(peer, me, f.byteLength);
        h(f);
      }),
    onClose: (h) => link.onClose(h),
  };
}

export async function sliceCluster(o: {
  totalParams: number;
  shards: number;
  workers: number;
  hyper: AdamHyper;
  simd?: boolean;
  onBytes?: OnBytes;
  /** The shards' token, and the one the loop and workers prove (default: the same). */
  token?: string | null;
  clientToken?: string | null;
  /** Wrap each dialled link (tests: hold or watch frames), after the byte count. */
  wrap?: (link: Link, me: string, peer: string) => Link;
  /** How gradient and parameter slices travel (default float32). */
  wireDtype?: WireDtype;
}): Promise<SliceCluster> {
  const onBytes = o.onBytes ?? (() => {});
  const nets = Array.from({ length: o.shards }, () => createLocalNetwork());
  const servers = nets.map((net) => {
    const s = new SliceServer(o.totalParams, { simd: o.simd, token: o.token });
    net.listener.onLink((l) => s.accept(l));
    return s;
  });
  const dialAll = (me: string) =>
    Promise.all(
      nets.map(async (n, k) => {
        const link = counted(await n.dial(), me, `shard ${k}`, onBytes);
        return o.wrap ? o.wrap(link, me, `shard ${k}`) : link;
      }),
    );
  const loopLinks = await dialAll('loop');
  const clientToken = o.clientToken === undefined ? (o.token ?? null) : o.clientToken;
  const loop = new RemoteSlices(loopLinks, o.totalParams, o.hyper, clientToken, o.wireDtype);
  const workers: SliceClient[] = [];
  for (let w = 0; w < o.workers; w++)
    workers.push(new SliceClient(await dialAll(`worker ${w}`), o.totalParams, `w${w}`, clientToken, o.wireDtype));
  return { servers, loop, workers, loopLinks, dial: dialAll };
}

/**
 * Bytes out of and into each of `hosts` hosts, host h running shard h and worker h (host 0
 * also the loop); frames between ends on one host do not count. Pass `onBytes` to sliceCluster.
 */
export function hostTraffic(hosts: number): { onBytes: OnBytes; out: number[]; in: number[]; reset(): void } {
  const out = new Array<number>(hosts).fill(0);
  const into = new Array<number>(hosts).fill(0);
  const host = (end: string) => (end === 'loop' ? 0 : Number(end.split(' ')[1]));
  return {
    out,
    in: into,
    onBytes: (from, to, n) => {
      if (host(from) === host(to)) return; // stays on the host
      out[host(from)] += n;
      into[host(to)] += n;
    },
    reset: () => {
      out.fill(0);
      into.fill(0);
    },
  };
}
