/**
 * `dptrain launch`: the coordinator here, the workers wherever the launcher puts them (ssh
 * hosts, srun steps, local processes), from one command; with --host-agents, one host agent per
 * host for that host's workers. Every worker's output comes back prefixed with its host and
 * rank; the first worker (or agent) to fail is named (host, rank, how it ended) and ends the
 * run, and every other one is stopped.
 */
import { accessSync, constants } from 'node:fs';
import { DptrainError, fail } from '../shared/util/errors.js';
import { newToken, readToken } from '../shared/wire/auth.js';
import { checkStartedWithin, type Config } from '../shared/job/config.js';
import { DEFAULT_LAUNCH, type LaunchSection } from '../shared/job/launch.js';
import { advertisedHost, checkAdvertise } from './advertise.js';
import { parseListen } from './parse-flags.js';
import { checkHostAgents, idleBehindAgents } from './launch/agent-checks.js';
import { makeLauncher, describeExit, describeSlot, type Launcher, type WorkerExit } from './launch/index.js';
import { parseHostList, readHostfile, type SshOptions } from './launch/ssh.js';
import { Progress } from './progress.js';
import { createCoordinator, trainWith, type ListenOptions } from './run-coordinator.js';
import { handleSignals, openRun, traceOptions, type TrainFlags } from './train-cmd.js';
import { refuseCoordinatorWorker } from './coordinator-worker.js';

export interface LaunchFlags extends TrainFlags {
  launcher?: LaunchSection['launcher'];
  hosts?: string;
  hostfile?: string;
  sshPort?: number;
  sshUser?: string;
  sshIdentity?: string;
  sshOption?: string[];
  remoteDptrain?: string;
  advertise?: string;
  joinTimeout?: number;
  hostAgents?: boolean;
  agentWorkers?: number;
}

/** The config's launch section with the flags over it. */
export function launchSection(f: LaunchFlags, c: Config): LaunchSection {
  const l = c.launch ?? DEFAULT_LAUNCH;
  return {
    launcher: f.launcher ?? l.launcher,
    hosts: f.hosts ?? (f.hostfile ? null : l.hosts),
    hostfile: f.hostfile ?? (f.hosts ? null : l.hostfile),
    sshPort: f.sshPort ?? l.sshPort,
    sshUser: f.sshUser ?? l.sshUser,
    sshIdentity: f.sshIdentity ?? l.sshIdentity,
    sshOptions: [...l.sshOptions, ...(f.sshOption ?? [])],
    remoteCommand: f.remoteDptrain ? f.remoteDptrain.split(/\s+/).filter(Boolean) : l.remoteCommand,
    listen: l.listen,
    advertise: f.advertise ?? l.advertise,
    joinTimeoutSec: f.joinTimeout ?? l.joinTimeoutSec,
    hostAgents: f.hostAgents ?? l.hostAgents,
    agentWorkers: f.agentWorkers ?? l.agentWorkers,
  };
}

export function sshOptions(l: LaunchSection): SshOptions {
  if (l.hosts && l.hostfile) fail('CONFIG_INVALID', '--hosts and --hostfile: give one');
  if (l.sshPort !== null && !(Number.isInteger(l.sshPort) && l.sshPort >= 1 && l.sshPort <= 65535))
    fail('CONFIG_INVALID', `--ssh-port ${l.sshPort}: a port from 1 to 65535`);
  // ssh -o takes KEY=VALUE (or "KEY VALUE"); a bare word reaches ssh as an error on every host.
  for (const o of l.sshOptions)
    if (!/^\w+[= ]\S/.test(o))
      fail('CONFIG_INVALID', `--ssh-option ${o}: expected KEY=VALUE, e.g. StrictHostKeyChecking=no`);
  // ssh only warns about a key it cannot read and goes on with the default one.
  if (l.sshIdentity !== null) {
    try {
      accessSync(l.sshIdentity, constants.R_OK);
    } catch (e) {
      fail(
        'CONFIG_UNREADABLE',
        `--ssh-identity ${l.sshIdentity}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
      );
    }
  }
  const hosts = l.hostfile ? readHostfile(l.hostfile) : l.hosts ? parseHostList(l.hosts) : [];
  return {
    hosts,
    port: l.sshPort ?? undefined,
    user: l.sshUser ?? undefined,
    identity: l.sshIdentity ?? undefined,
    options: l.sshOptions,
    command: l.remoteCommand ?? undefined,
  };
}

/** The flags only the ssh launcher reads: [key, flag] (the host list is refused for local above, with its own line). */
const SSH_ONLY: ReadonlyArray<[keyof LaunchFlags, string]> = [
  ['hosts', '--hosts'],
  ['hostfile', '--hostfile'],
  ['sshUser', '--ssh-user'],
  ['sshPort', '--ssh-port'],
  ['sshIdentity', '--ssh-identity'],
  ['sshOption', '--ssh-option'],
  ['remoteDptrain', '--remote-dptrain'],
];

/**
 * A flag the chosen launcher does not read is refused, not dropped (docs/launching.md): under
 * slurm the allocation says where the workers run, locally they run here.
 */
export function refuseOtherLaunchers(f: LaunchFlags, launcher: LaunchSection['launcher']): void {
  if (launcher === 'ssh') return;
  const given = SSH_ONLY.find(([key]) => f[key] !== undefined);
  if (!given) return;
  const where =
    launcher === 'slurm'
      ? "under slurm the workers run on the allocation's nodes (srun)"
      : 'the local launcher starts --workers N here';
  fail('CONFIG_INVALID', `${given[1]} is for the ssh launcher; ${where}`);
}

/** Remote workers: bind every interface unless told where, and tell them the advertised host. */
function listenFor(f: LaunchFlags, l: LaunchSection, token: string): ListenOptions {
  const advertise = l.advertise ? advertisedHost(l.advertise) : undefined;
  const local = l.launcher === 'local';
  const bound =
    f.listen ??
    (l.listen ? parseListen(l.listen) : { host: local ? '127.0.0.1' : (advertise ?? '0.0.0.0'), port: 7070 });
  return { ...bound, token, advertise };
}

export async function launchCommand(f: LaunchFlags): Promise<number> {
  // Workers get the token through their launcher (stdin over ssh, the environment under srun).
  // Before anything starts: a mistyped interface or host would fail on every worker, late.
  if (f.advertise !== undefined) await checkAdvertise(f.advertise);
  const token = readToken(f.tokenFile) ?? newToken();
  let section = DEFAULT_LAUNCH;
  let launcher: Launcher | null = null;
  const { config, resume, s } = await openRun(
    'launch',
    f,
    () => listenFor(f, section, token),
    (c) => {
      // A bad host list, or a job the host agents cannot run, fails before anything starts.
      section = launchSection(f, c);
      refuseCoordinatorWorker(c, 'dptrain launch');
      if (section.agentWorkers !== null && !section.hostAgents)
        fail('CONFIG_INVALID', '--agent-workers goes with --host-agents (launch.hostAgents)');
      // The local launcher starts `workers` processes here: a host list given with it on the
      // command line would otherwise be ignored without a word.
      if (section.launcher === 'local' && (f.hosts || f.hostfile))
        fail(
          'CONFIG_INVALID',
          `--${f.hosts ? 'hosts' : 'hostfile'} is for ssh hosts; the local launcher starts --workers N here`,
        );
      refuseOtherLaunchers(f, section.launcher);
      if (section.advertise) advertisedHost(section.advertise); // the config's, refused before the listener binds
      // And the other way round: ssh and slurm start one worker a slot or task.
      if (section.launcher !== 'local' && f.workers !== undefined)
        fail(
          'CONFIG_INVALID',
          `--workers ${f.workers} is for the local launcher; ${section.launcher === 'ssh' ? 'with ssh, the host list says how many (HOST:SLOTS)' : 'under slurm, the allocation has a worker a task'}`,
        );
      launcher = makeLauncher(section.launcher, {
        workers: c.workers,
        ssh: section.launcher === 'ssh' ? sshOptions(section) : undefined,
        hostAgents: section.hostAgents ? { perAgent: section.agentWorkers } : null,
      });
      if (section.hostAgents) checkHostAgents(c, launcher.slots());
      checkStartedWithin(c, launcher.slots().length, section.hostAgents ? 'host agents' : 'workers');
    },
  );
  const slots = launcher!.slots();
  const idle = section.hostAgents ? idleBehindAgents(config, slots) : null;
  if (idle) s.log.warn(idle);
  const progress = new Progress(config.steps);
  const coord = createCoordinator(config, s, progress, {
    ...traceOptions(f),
    token,
    resume: resume?.state,
    startWorkers: slots.length,
    expectedWorkers: slots.map((w) => w.name),
    joinTimeoutMs: section.joinTimeoutSec * 1000,
  });
  s.log.info(
    {
      launcher: launcher!.name,
      [section.hostAgents ? 'hostAgents' : 'workers']: slots.length,
      ...(section.hostAgents ? { workers: slots.reduce((k, a) => k + (a.agentWorkers ?? 1), 0) } : {}),
      hosts: [...new Set(slots.map((w) => w.host))],
      connect: s.workerAddress,
    },
    section.hostAgents ? 'starting host agents' : 'starting workers',
  );
  let failed: WorkerExit | null = null;
  const workers = launcher!.start({
    address: s.workerAddress,
    token,
    backend: { name: config.backend, allowSoftwareGpu: config.allowSoftwareGpu },
    logDir: (name) => s.runDir.workerLog(name),
    log: s.log,
    onExit: (e) => {
      if (e.stopped || failed || (e.code === 0 && !e.signal)) return;
      failed = e;
      const others = section.hostAgents ? 'host agents' : 'workers';
      // 255 is ssh's own status (no connection, or it dropped): the remote command never said anything.
      const how =
        launcher!.name === 'ssh' && e.code === 255
          ? `${describeExit(e)} (ssh could not reach ${e.host} or lost the connection)`
          : describeExit(e);
      const line = `${describeSlot(e)} failed: ${how}; stopping the other ${others} (its log: ${s.runDir.workerLog(e.name)})`;
      s.log.error({ worker: e.name, host: e.host, rank: e.rank, code: e.code, signal: e.signal }, line);
      coord.abort(new DptrainError('WORKER_LOST', line));
    },
  });
  handleSignals(coord, s, () => void workers.stop(0));
  try {
    await trainWith(coord, s, progress);
    return 0;
  } finally {
    const ends = await workers.stop();
    const left = ends.filter((e) => e.stopped && e.signal === 'SIGKILL');
    if (left.length)
      s.log.warn({ workers: left.map((e) => e.name) }, 'workers that did not end within the grace period were killed');
  }
}
