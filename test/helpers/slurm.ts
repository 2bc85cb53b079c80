/**
 * A Slurm cluster on this machine for the tests: slurmctld and one slurmd per node, each its
 * own NodeName and Port on 127.0.0.1, no munge (AuthType=auth/none, CredType=cred/none), no
 * systemd (the daemons run in the foreground as children of the test), process tracking by
 * process group. `slurmSkip` says why it cannot run here (Debian's slurmctld, slurmd and
 * slurm-client missing; not root), or is null.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, tempDir } from './cli.js';

const BINARIES = ['/usr/sbin/slurmctld', '/usr/sbin/slurmd', '/usr/bin/srun', '/usr/bin/sbatch', '/usr/bin/scontrol'];

export const slurmSkip: string | null = BINARIES.some((b) => !existsSync(b))
  ? `no ${BINARIES.filter((b) => !existsSync(b)).join(', ')} (apt-get install -y slurmctld slurmd slurm-client)`
  : process.getuid?.() !== 0
    ? 'slurmd must run as root'
    : null;

export interface SlurmCluster {
  dir: string;
  nodes: string[];
  /** The environment of a Slurm client of this cluster (SLURM_CONF). */
  env: NodeJS.ProcessEnv;
  /** Run a client command (sbatch, squeue, scontrol …) against it. */
  client(cmd: string, args: string[]): string;
  stop(): Promise<void>;
}

function stopProc(p: ChildProcess): Promise<void> {
  return new Promise<void>((r) => {
    if (p.exitCode !== null || p.signalCode !== null) return r();
    const t = setTimeout(() => p.kill('SIGKILL'), 5000);
    p.once('exit', () => {
      clearTimeout(t);
      r();
    });
    p.kill('SIGTERM');
  });
}

export async function startSlurm(nodeCount: number, cpusPerNode = 2): Promise<SlurmCluster> {
  const dir = tempDir('slurm');
  const nodes = Array.from({ length: nodeCount }, (_, i) => `n${i + 1}`);
  const ctldPort = await freePort();
  const ports = await Promise.all(nodes.map(() => freePort()));
  const conf = join(dir, 'slurm.conf');
  mkdirSync(join(dir, 'state'));
  writeFileSync(
    conf,
    [
      'ClusterName=dptrain-test',
      'SlurmctldHost=localhost(127.0.0.1)',
      `SlurmctldPort=${ctldPort}`,
      'AuthType=auth/none',
      'CredType=cred/none',
      'ProctrackType=proctrack/pgid',
      'TaskPlugin=task/none',
      'SwitchType=switch/none',
      'MpiDefault=none',
      'SelectType=select/cons_tres',
      'SelectTypeParameters=CR_CPU',
      'SchedulerType=sched/builtin',
      'ReturnToService=2',
      'SlurmUser=root',
      'SlurmdUser=root',
      `StateSaveLocation=${join(dir, 'state')}`,
      `SlurmdSpoolDir=${join(dir, 'spool-%n')}`,
      `SlurmctldPidFile=${join(dir, 'slurmctld.pid')}`,
      `SlurmdPidFile=${join(dir, 'slurmd-%n.pid')}`,
      `SlurmctldLogFile=${join(dir, 'slurmctld.log')}`,
      `SlurmdLogFile=${join(dir, 'slurmd-%n.log')}`,
      'JobCompType=jobcomp/none',
      'AccountingStorageType=accounting_storage/none',
      'JobAcctGatherType=jobacct_gather/none',
      'SlurmctldTimeout=30',
      'SlurmdTimeout=30',
      'InactiveLimit=0',
      'KillWait=5',
      'MinJobAge=300',
      'JobRequeue=1',
      ...nodes.map(
        (n, i) =>
          `NodeName=${n} NodeHostname=localhost NodeAddr=127.0.0.1 Port=${ports[i]} CPUs=${cpusPerNode} State=UNKNOWN`,
      ),
      `PartitionName=debug Nodes=${nodes.join(',')} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4`,
    ].join('\n') + '\n',
  );
  const env = { ...process.env, SLURM_CONF: conf };
  const daemon = (bin: string, args: string[], log: string) => {
    const fd = openSync(join(dir, log), 'a');
    const p = spawn(bin, args, { env, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    return p;
  };
  const procs: ChildProcess[] = [daemon('/usr/sbin/slurmctld', ['-D', '-i', '-f', conf], 'slurmctld.out')];
  const client = (cmd: string, args: string[]) =>
    execFileSync(cmd, args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  // slurmd registers with slurmctld; wait until slurmctld answers first.
  await waitFor(
    () => client('scontrol', ['ping']).includes('UP'),
    20_000,
    'slurmctld did not answer scontrol ping',
    join(dir, 'slurmctld.log'),
  );
  for (const n of nodes) procs.push(daemon('/usr/sbin/slurmd', ['-D', '-N', n, '-f', conf], `slurmd-${n}.out`));
  await waitFor(
    () => {
      const idle = client('sinfo', ['-h', '-N', '-o', '%N %t'])
        .split('\n')
        .filter((l) => / idle/.test(l)).length;
      return idle === nodeCount;
    },
    30_000,
    `the ${nodeCount} nodes did not become idle`,
    join(dir, 'slurmd-n1.log'),
  );
  return {
    dir,
    nodes,
    env,
    client,
    stop: async () => {
      try {
        client('scancel', ['--full', '-u', 'root']);
      } catch {
        // nothing to cancel
      }
      for (const p of procs.slice(1)) await stopProc(p);
      await stopProc(procs[0]);
    },
  };
}

async function waitFor(ok: () => boolean, timeoutMs: number, what: string, log: string): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    try {
      if (ok()) return;
    } catch {
      // not up yet
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what} within ${timeoutMs / 1000} s (see ${log})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
