/**
 * The launcher registry: a name (`--launcher`, the config's `launch.launcher`) → a launcher
 * made from the launch options. The commands see the Launcher contract only.
 */
import { fail } from '../../shared/util/errors.js';
import type { Launcher } from './contract.js';
import { localLauncher } from './local.js';
import { hostAgentSlots, type SlotShape, workerSlots } from './members.js';
import { sshLauncher, type SshOptions } from './ssh.js';
import { slurmLauncher } from './slurm.js';

export interface LaunchOptions {
  /** local: how many workers. */
  workers?: number;
  ssh?: SshOptions;
  env?: NodeJS.ProcessEnv;
  /** Start one host agent per host for its workers (at most `perAgent` workers each; null: all of the host's). */
  hostAgents?: { perAgent: number | null } | null;
}

export const LAUNCHERS: Record<string, (o: LaunchOptions, shape: SlotShape) => Launcher> = {
  local: (o, shape) => localLauncher(o.workers ?? 1, shape),
  ssh: (o, shape) => sshLauncher(o.ssh ?? { hosts: [] }, shape),
  slurm: (o, shape) => slurmLauncher(o.env, shape),
};

export function makeLauncher(name: string, o: LaunchOptions): Launcher {
  const make = LAUNCHERS[name];
  if (!make) fail('CONFIG_INVALID', `--launcher ${name}: unknown; use one of ${Object.keys(LAUNCHERS).join(', ')}`);
  return make(o, o.hostAgents ? hostAgentSlots(o.hostAgents.perAgent) : workerSlots);
}

export type { Launcher, LaunchedWorkers, LaunchRequest, WorkerExit, WorkerSlot } from './contract.js';
export { describeExit, describeSlot } from './contract.js';
