/**
 * The address workers are told. A coordinator binds one address (--listen) and advertises
 * another when they differ: bound to every interface (0.0.0.0), behind NAT, or on the interface
 * of a fast network (--advertise eth1). It writes the address it advertises to
 * RUN/coordinator.json, where workers sharing the run directory read it (port 0 included). It is
 * written atomically (RunDir.writeJson renames a finished file into place): a worker sees all of it
 * or none, so it waits only while the file is absent and refuses one that is there but wrong.
 */
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
