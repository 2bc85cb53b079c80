/**
 * `srun dptrain slurm --config job.json`, one task per worker: task 0 (SLURM_PROCID=0) runs the
 * coordinator on the first node of the allocation and a worker beside it; every other task runs
 * a worker that dials the first node's NodeAddr. With --host-agents --agent-workers K (one task
 * a node), each task runs a host agent of K workers in place of its worker. The token comes from
 * DPTRAIN_TOKEN (srun propagates the batch script's environment) or a --token-file only its
 * owner can read. The run directory is runs/slurm-JOBID unless --out says otherwise: a requeued
 * job (same job id) finds its checkpoint there and resumes from it.
 */
import { checkStartedWithin } from '../shared/job/config.js';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { checkpointDir } from '../coordinator/checkpoint.js';
import { DptrainError, fail } from '../shared/util/errors.js';
import { readToken } from '../shared/wire/auth.js';
import { countWorkers, describeExit, type WorkerSlot } from './launch/contract.js';
import { FLAG_TABLE, flagName } from './flag-table.js';
import { MAIN } from './launch/local.js';
import { memberArgs } from './launch/members.js';
import { startProcs } from './launch/procs.js';
import { checkStartFailure, clearStartFailure, writeStartFailure } from './launch/slurm-start.js';
import { nodeAddr, slurmHostnames, slurmTask, tasksPerNode, type SlurmTask } from './launch/slurm.js';
import { Progress } from './progress.js';
import { createCoordinator, trainWith } from './run-coordinator.js';
import { handleSignals, openRun, traceOptions, type TrainFlags } from './train-cmd.js';
import { refuseCoordinatorWorker } from './coordinator-worker.js';
import { workerCommand } from './worker-cmd.js';
import { hostAgentCommand } from './host-agent-cmd.js';
import { checkHostAgents, idleBehindAgents } from './launch/agent-checks.js';

export interface SlurmFlags extends TrainFlags {
  port?: number;
  joinTimeout?: number;
  /** Each task (one per node) runs a host agent of `agentWorkers` workers instead of one worker. */
  hostAgents?: boolean;
  agentWorkers?: number;
}

/**
 * With --host-agents, the workers behind each node's agent; refused in one line where the
 * allocation does not give one task per node.
 */
export function slurmAgentWorkers(f: SlurmFlags, env: NodeJS.ProcessEnv): number | null {
  if (!f.hostAgents) {
    if (f.agentWorkers !== undefined) fail('CONFIG_INVALID', '--agent-workers goes with --host-agents');
    return null;
  }
  if (f.agentWorkers === undefined)
    fail('CONFIG_INVALID', "--host-agents under Slurm needs --agent-workers K: the workers each node's agent starts");
  if (!(Number.isInteger(f.agentWorkers) && f.agentWorkers >= 1))
    fail('CONFIG_INVALID', `--agent-workers ${f.agentWorkers}: expected an integer ≥ 1`);
  const per = env.SLURM_TASKS_PER_NODE;
  if (per && tasksPerNode(per).some((n) => n !== 1))
    fail(
      'CONFIG_INVALID',
      `--host-agents runs one host agent a node: submit with --ntasks-per-node=1 (SLURM_TASKS_PER_NODE is ${per})`,
    );
  return f.agentWorkers;
}

/** A token file another user could read is refused: whoever reads it can join the job. */
export function slurmToken(tokenFile: string | undefined): string {
  if (tokenFile && existsSync(tokenFile) && (statSync(tokenFile).mode & 0o077) !== 0) {
    fail(
      'CONFIG_INVALID',
      `--token-file ${tokenFile}: readable by others (mode ${(statSync(tokenFile).mode & 0o777).toString(8)}); chmod 600 it`,
    );
  }
  const token = readToken(tokenFile);
  if (token === null)
    fail(
      'CONFIG_INVALID',
      'no job token: export DPTRAIN_TOKEN=$(dptrain token) in the batch script (srun passes it on), or --token-file FILE (mode 600)',
    );
  return token;
}

/**
 * Each task's slot, rank by rank, with Slurm's default block distribution of tasks over nodes:
 * its worker, or with `agentWorkers` its host agent (one task a node).
 */
export function slurmMembers(
  t: SlurmTask,
  nodes: string[],
  perNode: string | undefined,
  agentWorkers: number | null,
): WorkerSlot[] {
  const per = perNode ? tasksPerNode(perNode) : nodes.map(() => Math.ceil(t.ntasks / nodes.length));
  const slots: WorkerSlot[] = [];
  nodes.forEach((host, i) => {
    for (let k = 0; k < (per[i] ?? 0) && slots.length < t.ntasks; k++) {
      const rank = slots.length;
      slots.push(
        agentWorkers
          ? { host, rank, name: `agent${rank}@${host}`, agentWorkers }
          : { host, rank, name: `rank${rank}@${host}` },
      );
    }
  });
  return slots;
}

/** Each task's worker name, rank by rank (slurmMembers without agents). */
export const slurmWorkerNames = (t: SlurmTask, nodes: string[], perNode: string | undefined): string[] =>
  slurmMembers(t, nodes, perNode, null).map((m) => m.name);

/** The default coordinator port: fixed per job, so that jobs sharing a node do not collide. */
export const slurmPort = (jobId: string): number => 20000 + (Number(jobId) % 20000);

/** The job flags given (--config, --steps …), as typed: what a run continued from its checkpoint does not read. */
export function givenJobFlags(f: SlurmFlags): string[] {
  const given = f as Record<string, unknown>;
  return FLAG_TABLE.filter(
    (r) => r.role === 'job' && given[r.key] !== undefined && !(given[r.key] === true && r.flags.includes('--no-')),
  ).map(flagName);
}

const hasCheckpoint = (dir: string): boolean =>
  existsSync(checkpointDir(dir)) && readdirSync(checkpointDir(dir)).some((f) => f.endsWith('.ckpt'));

export async function slurmCommand(f: SlurmFlags, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const task = slurmTask(env);
  const token = slurmToken(f.tokenFile);
  const nodes = slurmHostnames(task.nodelist);
  const head = nodeAddr(nodes[0]);
  const port = f.port ?? slurmPort(task.jobId);
  const address = `ws://${head.includes(':') ? `[${head}]` : head}:${port}`;
  const node = task.node || nodes[0];
  const agentWorkers = slurmAgentWorkers(f, env);
  const out = f.out ?? join('runs', `slurm-${task.jobId}`);
  const name = `${agentWorkers ? 'agent' : 'rank'}${task.rank}@${node}`;
  const backend = f.backend ?? 'auto';
  // What a task's worker or host agent joins with: the same flags either way.
  const joining = {
    connect: address,
    name,
    allowSoftwareGpu: f.allowSoftwareGpu,
    connectTimeout: f.joinTimeout ?? 120,
    reconnectTimeout: 300,
    precision: 'fp32' as const,
    tokenFile: f.tokenFile,
    // Task 0's config error ends every task at once, with its code, not at the join timeout.
    beforeTry: () => checkStartFailure(out, env),
  };
  if (task.rank !== 0 && agentWorkers)
    // A launched agent stays on SIGTERM until the coordinator's goodbye, as the worker below does.
    return hostAgentCommand({
      ...joining,
      backend,
      workers: agentWorkers,
      listen: { host: '127.0.0.1', port: 0 },
      sharedMemory: true,
      launched: true,
    });
  if (task.rank !== 0) {
    // Preemption and requeue signal every task at once: stay, so the coordinator can finish
    // its step and checkpoint; it then says goodbye (Slurm's KillWait bounds the wait).
    process.on('SIGTERM', () =>
      process.stderr.write(`dptrain: ${name}: SIGTERM; the coordinator will end this worker after its checkpoint\n`),
    );
    return workerCommand({ ...joining, backend: backend as never });
  }
  // A requeued job runs the same command again: its checkpoint fixes the job, so the job's
  // own flags (--config, --steps …) give way to it.
  const requeued = f.resume === undefined && hasCheckpoint(out);
  const jobFlagsCleared = Object.fromEntries(FLAG_TABLE.filter((r) => r.role === 'job').map((r) => [r.key, undefined]));
  const run = requeued
    ? { ...f, ...jobFlagsCleared, out: undefined, resume: out }
    : { ...f, out: f.resume ? undefined : out };
  const members = slurmMembers(task, nodes, env.SLURM_TASKS_PER_NODE, agentWorkers);
  const opened = await openRun('slurm', run, { host: '0.0.0.0', port, token, advertise: head }, (c) => {
    refuseCoordinatorWorker(c, 'dptrain slurm');
    if (agentWorkers) checkHostAgents(c, members);
    checkStartedWithin(c, members.length, agentWorkers ? 'host agents' : 'workers');
  }).catch((e: unknown) => {
    if (e instanceof DptrainError) writeStartFailure(out, env, e);
    throw e;
  });
  clearStartFailure(out);
  const { config, resume: loaded, s } = opened;
  if (requeued) {
    const ignored = givenJobFlags(f);
    // Requeued by Slurm, the step runs the first attempt's command line again: nothing new in it.
    if (ignored.length && task.restarts === 0)
      s.log.warn(
        { ignored },
        `${out} holds this job's checkpoint (step ${loaded?.state.step}): continuing that job; ${ignored.join(', ')} ${ignored.length === 1 ? 'is' : 'are'} not read (the checkpoint fixes the job; for a new job, give another --out)`,
      );
  }
  const idle = agentWorkers ? idleBehindAgents(config, members) : null;
  if (idle) s.log.warn(idle);
  s.log.info(
    { job: task.jobId, tasks: task.ntasks, nodes, restarts: task.restarts, resumeFrom: loaded?.state.step },
    `slurm task 0: coordinator at ${s.workerAddress}; every task runs a ${agentWorkers ? `host agent of ${countWorkers(agentWorkers)}` : 'worker'}`,
  );
  const progress = new Progress(config.steps);
  const coord = createCoordinator(config, s, progress, {
    ...traceOptions(f),
    token,
    resume: loaded?.state,
    startWorkers: task.ntasks,
    expectedWorkers: members.map((m) => m.name),
    joinTimeoutMs: (f.joinTimeout ?? 120) * 1000,
  });
  // Task 0's own worker: a child process, so that the coordinator's loop is not blocked by
  // TF.js; in the task's process group, so Slurm's process tracking ends it with the task.
  const slot = members[0];
  const req = {
    address: s.workerAddress,
    token,
    backend: { name: backend, allowSoftwareGpu: config.allowSoftwareGpu },
    log: s.log,
    logDir: (n: string) => s.runDir.workerLog(n),
  };
  const own = startProcs(
    [{ slot, argv: [process.execPath, MAIN, ...memberArgs(req, slot)], env: { ...env, DPTRAIN_TOKEN: token } }],
    {
      ...req,
      onExit: (e) => {
        if (!e.stopped && (e.code !== 0 || e.signal))
          s.log.warn(
            { worker: e.name },
            `task 0's ${agentWorkers ? 'host agent' : 'worker'} ${describeExit(e)}; training goes on with the other tasks`,
          );
      },
    },
    { output: 'prefix', ipc: true, terminate: () => {} },
  );
  handleSignals(coord, s, () => void own.stop(0));
  try {
    await trainWith(coord, s, progress);
    return 0;
  } finally {
    await own.stop();
  }
}
