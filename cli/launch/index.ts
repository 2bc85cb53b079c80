/**
 * The launcher registry: a name (`--launcher`, the config's `launch.launcher`) → a launcher
 * made from the launch options. The commands see the Launcher contract only.
 */
import { fail } from '../../shared/util/errors.js';
import type { Launcher } from './contract.js';
import { localLauncher } from './local.js';
import { sshLauncher, type SshOptions } from './ssh.js';
import { slurmLauncher } from './slurm.js';

export interface LaunchOptions {
  /** local: how many workers. */
  workers?: number;
  ssh?: SshOptions;
  env?: NodeJS.ProcessEnv;
}

export const LAUNCHERS: Record<string, (o: LaunchOptions) => Launcher> = {
  local: (o) => localLauncher(o.workers ?? 1),
  ssh: (o) => sshLauncher(o.ssh ?? { hosts: [] }),
  slurm: (o) => slurmLauncher(o.env),
};

export function makeLauncher(name: string, o: LaunchOptions): Launcher {
  const make = LAUNCHERS[name];
  if (!make) fail('CONFIG_INVALID', `--launcher ${name}: unknown; use one of ${Object.keys(LAUNCHERS).join(', ')}`);
  return make(o);
}

export type { Launcher, LaunchedWorkers, LaunchRequest, WorkerExit, WorkerSlot } from './contract.js';
export { describeExit, describeSlot } from './contract.js';
