/**
 * The config's optional `launch` section: where `dptrain launch` starts the workers and how
 * they reach the coordinator. The flags of `dptrain launch` override it field by field.
 */
import { fail } from '../util/errors.js';
import { checkKeys, isObj, num, oneOf } from './fields.js';

export const LAUNCHER_NAMES = ['local', 'ssh', 'slurm'] as const;

export interface LaunchSection {
  launcher: (typeof LAUNCHER_NAMES)[number];
  /** "host1:2,host2:4" */
  hosts: string | null;
  hostfile: string | null;
  sshPort: number | null;
  sshUser: string | null;
  sshIdentity: string | null;
  /** ssh -o KEY=VALUE options. */
  sshOptions: string[];
  /** The dptrain command on the remote hosts, as argv (default: this node and main.js). */
  remoteCommand: string[] | null;
  /** HOST:PORT the coordinator binds. */
  listen: string | null;
  /** The host (or interface) workers are told. */
  advertise: string | null;
  joinTimeoutSec: number;
  /** One `dptrain host-agent` per host for that host's workers, instead of one process each. */
  hostAgents: boolean;
  /** With hostAgents: at most this many workers behind one agent (null: all of a host's). */
  agentWorkers: number | null;
}

export const DEFAULT_LAUNCH: LaunchSection = {
  launcher: 'ssh',
  hosts: null,
  hostfile: null,
  sshPort: null,
  sshUser: null,
  sshIdentity: null,
  sshOptions: [],
  remoteCommand: null,
  listen: null,
  advertise: null,
  joinTimeoutSec: 120,
  hostAgents: false,
  agentWorkers: null,
};

const str = (v: unknown, field: string): string | null =>
  v === null
    ? null
    : typeof v === 'string' && v !== ''
      ? v
      : fail('CONFIG_INVALID', `launch.${field} must be a non-empty string`);

const strs = (v: unknown, field: string): string[] =>
  Array.isArray(v) && v.every((x) => typeof x === 'string')
    ? (v as string[])
    : fail('CONFIG_INVALID', `launch.${field} must be an array of strings`);

export function parseLaunchSection(raw: unknown): LaunchSection | null {
  if (raw === null || raw === undefined) return null;
  if (!isObj(raw)) fail('CONFIG_INVALID', 'launch must be an object');
  checkKeys(raw, Object.keys(DEFAULT_LAUNCH), 'launch.');
  const o = { ...DEFAULT_LAUNCH, ...raw };
  const hosts = Array.isArray(o.hosts) ? strs(o.hosts, 'hosts').join(',') : str(o.hosts, 'hosts');
  return {
    launcher: oneOf(o.launcher, 'launch.launcher', LAUNCHER_NAMES),
    hosts,
    hostfile: str(o.hostfile, 'hostfile'),
    sshPort: o.sshPort === null ? null : num(o.sshPort, 'launch.sshPort', { int: true, min: 1, max: 65535 }),
    sshUser: str(o.sshUser, 'sshUser'),
    sshIdentity: str(o.sshIdentity, 'sshIdentity'),
    sshOptions: strs(o.sshOptions, 'sshOptions'),
    remoteCommand: o.remoteCommand === null ? null : strs(o.remoteCommand, 'remoteCommand'),
    listen: str(o.listen, 'listen'),
    advertise: str(o.advertise, 'advertise'),
    joinTimeoutSec: num(o.joinTimeoutSec, 'launch.joinTimeoutSec', { min: 1 }),
    hostAgents:
      typeof o.hostAgents === 'boolean'
        ? o.hostAgents
        : fail('CONFIG_INVALID', `launch.hostAgents must be true or false, got ${JSON.stringify(o.hostAgents)}`),
    agentWorkers:
      o.agentWorkers === null ? null : num(o.agentWorkers, 'launch.agentWorkers', { int: true, min: 1, max: 1024 }),
  };
}
