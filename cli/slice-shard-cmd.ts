/**
 * `dptrain slice-shard`: a slice shard process (coordinator/slices/slice-server.ts), and the dialling
 * that `dptrain coordinator --slice-shard` and `dptrain worker --slice-shard` do to reach shards.
 */
import { RemoteSlices } from '../coordinator/slices/remote-slices.js';
import { SliceServer, sliceFrameValues } from '../coordinator/slices/slice-server.js';
import { listenWs } from '../coordinator/ws-listener.js';
import type { Config } from '../shared/job/config.js';
import { jobLayout } from '../shared/job/job-layout.js';
import type { Link } from '../shared/transport/transport.js';
import { fail } from '../shared/util/errors.js';
import { createLogger } from '../shared/util/log.js';
import { isLoopback, readToken } from '../shared/wire/auth.js';
import { dialWs } from '../worker/ws-dialer.js';
import { type SlicedLink, slicedLink } from '../worker/sliced-link.js';
import { resolveConfig } from './flags.js';

/** A slice link's frames (see sliceFrameValues), plus a header. */
const shardFrameBytes = (totalParams: number) => 4 * sliceFrameValues(totalParams) + (1 << 16);

export interface ShardFlags {
  listen: { host: string; port: number };
  config: string;
  tokenFile?: string;
}

export async function shardCommand(f: ShardFlags): Promise<number> {
  const token = readToken(f.tokenFile);
  if (!token && !isLoopback(f.listen.host))
    fail(
      'AUTH_FAILED',
      `--listen ${f.listen.host}: beyond loopback a shard needs the job token (DPTRAIN_TOKEN or --token-file)`,
    );
  const total = jobLayout(resolveConfig({ config: f.config })).totalParams;
  const log = createLogger({ name: 'shard' });
  const server = new SliceServer(total, { token });
  const listener = await listenWs({ ...f.listen, maxPayload: shardFrameBytes(total), handshakeMaxFrame: 0 });
  listener.onLink((l) => server.accept(l));
  log.info(
    { listen: listener.address, params: total },
    `slice shard listening; the coordinator and workers name it with --slice-shard ${listener.address}`,
  );
  const signal = await new Promise<NodeJS.Signals>((res) =>
    process.once('SIGTERM', () => res('SIGTERM')).once('SIGINT', () => res('SIGINT')),
  );
  // The coordinator's run cannot go on without this slice: say so here, and tell it why.
  log.warn(
    { signal },
    `${signal}: slice shard stopping; a coordinator using it stops too (restart the shard, then resume the coordinator)`,
  );
  server.close(`slice shard stopped by ${signal}`);
  await listener.close();
  return 0;
}

/** Links to every shard, in slice order. */
export async function dialShards(urls: readonly string[], totalParams: number): Promise<Link[]> {
  return Promise.all(urls.map((u) => dialWs(u, shardFrameBytes(totalParams))));
}

/**
 * A joining side's link to the coordinator, given the shards (`--slice-shard`): parameters come
 * from them and gradients go to them (worker/sliced-link.ts); null without shards.
 */
export function slicedToShards(
  coordinator: Link,
  urls: readonly string[] | undefined,
  token: string | null,
): SlicedLink | null {
  return urls?.length ? slicedLink(coordinator, (total) => dialShards(urls, total), token, urls.length) : null;
}

/** Refuse, before anything starts, what a sharded update does not do. */
export function checkSliceable(config: Config): void {
  if (config.compression.kind !== 'none')
    fail('CONFIG_INVALID', '--slice-shard: slice links carry dense gradients; leave compression off (--compress none)');
  if (config.outlierFactor > 0)
    fail('CONFIG_INVALID', '--slice-shard: --reject-outliers needs whole gradients at the coordinator; leave it off');
}

/** The coordinator's side: dial the shards (checkSliceable has passed). */
export async function coordinatorSlices(
  urls: readonly string[] | undefined,
  config: Config,
  token: string | null,
): Promise<RemoteSlices | null> {
  if (!urls?.length) return null;
  checkSliceable(config);
  const total = jobLayout(config).totalParams;
  const slices = new RemoteSlices(await dialShards(urls, total), total, config.optimizer, token, config.wireDtype);
  await slices.ready(); // a shard of another job, or without the token, is refused now, before workers join
  return slices;
}
