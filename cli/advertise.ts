/**
 * The address workers are told. A coordinator binds one address (--listen) and advertises
 * another when they differ: bound to every interface (0.0.0.0), behind NAT, or on the interface
 * of a fast network (--advertise eth1). It writes the address it advertises to
 * RUN/coordinator.json, where workers sharing the run directory read it (port 0 included). It is
 * written atomically (RunDir.writeJson renames a finished file into place): a worker sees all of it
 * or none, so it waits only while the file is absent and refuses one that is there but wrong.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { fail } from '../shared/util/errors.js';

export interface CoordinatorFile {
  /** ws://HOST:PORT as workers should dial it. */
  address: string;
  /** What the listener bound. */
  listen: string;
  port: number;
  pid: number;
  host: string;
}

/** An interface name (eth0, ib0) → its first IPv4 address; anything else is a host name or address as given. */
export function resolveAdvertise(v: string, ifaces = networkInterfaces()): string {
  const addrs = ifaces[v];
  if (!addrs) return v;
  const a = addrs.find((x) => x.family === 'IPv4') ?? addrs[0];
  if (!a) fail('CONFIG_INVALID', `--advertise ${v}: the interface has no address`);
  return a.address;
}

/**
 * The host `--advertise v` tells workers, refused in one line when no worker could dial it: not
 * a host for a URL ("a b"), or (with `resolve`) neither an interface of this machine nor a name
 * that resolves here: a mistyped interface would otherwise only fail on every worker, at the
 * join timeout.
 */
export async function checkAdvertise(
  v: string,
  ifaces = networkInterfaces(),
  resolve: ((host: string) => Promise<unknown>) | null = lookup,
): Promise<string> {
  const host = advertisedHost(v, ifaces);
  if (resolve && !ifaces[v] && isIP(host) === 0) {
    try {
      await resolve(host);
    } catch (e) {
      // Only a name the resolver knows does not exist; a resolver that is down says nothing of it.
      if ((e as NodeJS.ErrnoException).code === 'ENOTFOUND')
        fail(
          'CONFIG_INVALID',
          `--advertise ${v}: neither an interface of this machine (${Object.keys(ifaces).join(', ')}) nor a host name that resolves`,
        );
    }
  }
  return host;
}

/** resolveAdvertise, refusing what is no host of a ws:// address. */
export function advertisedHost(v: string, ifaces = networkInterfaces()): string {
  const host = resolveAdvertise(v, ifaces);
  const url = `ws://${host.includes(':') ? `[${host}]` : host}:7070`;
  if (!URL.canParse(url) || new URL(url).hostname === '')
    fail('CONFIG_INVALID', `--advertise ${v}: not a host name, an address or an interface of this machine`);
  return host;
}

const WILDCARD = new Set(['0.0.0.0', '::', '[::]']);

/**
 * The ws:// address to give workers for a listener at `bound`: the advertised host when given;
 * for a wildcard bind, this machine's host name (a wildcard is no address to dial).
 */
export function workerAddress(bound: string, advertise?: string): string {
  const u = new URL(bound);
  const host = advertise ?? (WILDCARD.has(u.hostname) ? hostname() : null);
  if (host === null) return bound;
  return `${u.protocol}//${host.includes(':') ? `[${host}]` : host}:${u.port}`;
}
