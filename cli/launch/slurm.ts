/**
 * `slurm`: inside an allocation (sbatch, salloc), one `srun` step per worker, pinned to its
 * node. srun propagates the environment, so the token goes as DPTRAIN_TOKEN, and forwards
 * SIGTERM to its task. Also what `dptrain slurm` reads of its task: rank, nodes, the first
 * node's address.
 */
import { execFileSync } from 'node:child_process';
import { fail } from '../../shared/util/errors.js';
import type { Launcher, WorkerSlot } from './contract.js';
import { MAIN } from './local.js';
import { memberArgs, type SlotShape, workerSlots } from './members.js';
import { startProcs, type Proc } from './procs.js';

export interface SlurmTask {
  jobId: string;
  /** SLURM_PROCID: this task's rank in the step. */
  rank: number;
  ntasks: number;
  nodelist: string;
  /** SLURM_RESTART_COUNT: > 0 after a requeue. */
  restarts: number;
  /** SLURMD_NODENAME: the node this task runs on. */
  node: string;
}

function need(env: NodeJS.ProcessEnv, key: string): string {
  const v = env[key];
  if (v === undefined || v === '')
    fail('CONFIG_INVALID', `${key} is not set: run this inside a Slurm allocation (sbatch, or srun within salloc)`);
  return v;
}

/** The Slurm task this process is, from the variables srun sets. */
export function slurmTask(env: NodeJS.ProcessEnv = process.env): SlurmTask {
  return {
    jobId: need(env, 'SLURM_JOB_ID'),
    rank: Number(need(env, 'SLURM_PROCID')),
    ntasks: Number(env.SLURM_NTASKS ?? env.SLURM_NPROCS ?? need(env, 'SLURM_NTASKS')),
    nodelist: env.SLURM_JOB_NODELIST ?? need(env, 'SLURM_NODELIST'),
    restarts: Number(env.SLURM_RESTART_COUNT ?? 0),
    node: env.SLURMD_NODENAME ?? '',
  };
}

/** Whether this process runs as a task of a Slurm job step. */
export const inSlurmStep = (env: NodeJS.ProcessEnv = process.env): boolean =>
  env.SLURM_PROCID !== undefined && env.SLURM_JOB_ID !== undefined;

function scontrol(args: string[], env: NodeJS.ProcessEnv): string {
  try {
    return execFileSync('scontrol', args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    return fail(
      'RUN_FAILED',
      `scontrol ${args.join(' ')}: ${err.code === 'ENOENT' ? 'not found (is slurm-client installed?)' : (err.stderr ?? err.message).trim()}`,
    );
  }
}

/** "n[1-3]" → n1, n2, n3 (`scontrol show hostnames`). */
export function slurmHostnames(nodelist: string, env: NodeJS.ProcessEnv = process.env): string[] {
  return scontrol(['show', 'hostnames', nodelist], env)
    .split('\n')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** The address a node is reached at: its NodeAddr (`scontrol show node`), which may differ from its name. */
export function nodeAddr(node: string, env: NodeJS.ProcessEnv = process.env): string {
  return /\bNodeAddr=(\S+)/.exec(scontrol(['show', 'node', node], env))?.[1] ?? node;
}

/** SLURM_TASKS_PER_NODE "2(x3),1" → [2, 2, 2, 1]. */
export function tasksPerNode(v: string): number[] {
  return v.split(',').flatMap((part) => {
    const m = /^(\d+)(?:\(x(\d+)\))?$/.exec(part.trim());
    if (!m) fail('CONFIG_INVALID', `SLURM_TASKS_PER_NODE ${v}: cannot read "${part}"`);
    return Array.from({ length: Number(m[2] ?? 1) }, () => Number(m[1]));
  });
}

/** Launcher inside an allocation: workers per node from SLURM_TASKS_PER_NODE (default one per node). */
export function slurmLauncher(env: NodeJS.ProcessEnv = process.env, shape: SlotShape = workerSlots): Launcher {
  const slots = (): WorkerSlot[] => {
    const nodes = slurmHostnames(need(env, 'SLURM_JOB_NODELIST'), env);
    const per = env.SLURM_TASKS_PER_NODE ? tasksPerNode(env.SLURM_TASKS_PER_NODE) : nodes.map(() => 1);
    let rank = 0;
    return shape(
      nodes.flatMap((host, i) =>
        Array.from({ length: per[i] ?? 1 }, () => ({ host, rank, name: `rank${rank++}@${host}` })),
      ),
    );
  };
  return {
    name: 'slurm',
    slots,
    start(req) {
      const env2 = { ...env, ...req.env, DPTRAIN_TOKEN: req.token };
      const specs = slots().map((slot) => ({
        slot,
        // --overlap: steps share the allocation's CPUs with the batch step and with each other.
        argv: [
          'srun',
          '--nodes=1',
          '--ntasks=1',
          '--overlap',
          `--nodelist=${slot.host}`,
          `--job-name=dptrain-${slot.name}`,
          process.execPath,
          MAIN,
          ...memberArgs(req, slot),
        ],
        env: env2,
      }));
      // srun forwards most signals to its task; it cannot catch SIGKILL, and two SIGINTs
      // within a second make it kill the step (a SIGKILL to srun alone would orphan the task).
      const hardKill = (p: Proc) => {
        p.child.kill('SIGINT');
        setTimeout(() => p.child.kill('SIGINT'), 100).unref();
      };
      return startProcs(specs, req, {
        output: 'prefix',
        signal: (p, sig) => (sig === 'SIGKILL' ? hardKill(p) : p.child.kill(sig)),
        kill: hardKill,
      });
    },
  };
}
