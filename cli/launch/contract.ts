/**
 * The launcher contract: whatever starts worker processes for a coordinator (on this machine,
 * over ssh, through srun) does it behind this one interface, so `dptrain train`, `dptrain
 * launch` and the fault injector see workers, not child processes.
 */
import type { Logger } from '../../shared/util/log.js';

/** One worker a launcher starts: where, and its place in the job. */
export interface WorkerSlot {
  host: string;
  /** 0-based, unique in the job. */
  rank: number;
  /** The name it joins the coordinator with (coordinator log, join timeout, faults). */
  name: string;
  /** Set: this slot is a host agent (`dptrain host-agent`) with this many workers behind it, not one worker. */
  agentWorkers?: number;
}

/** How a worker ended. `code` and `signal` as the launcher saw them; `stopped`: we ended it. */
export interface WorkerExit extends WorkerSlot {
  code: number | null;
  signal: NodeJS.Signals | null;
  stopped: boolean;
}

export interface LaunchRequest {
  /** The address workers connect to (ws://HOST:PORT). */
  address: string;
  /** The job token. Never on a command line: the launcher passes it by environment or stdin. */
  token: string;
  backend: { name: string; allowSoftwareGpu: boolean };
  /** Where per-worker logs go (RUN/workers/NAME.log). */
  logDir: (name: string) => string;
  log: Logger;
  /** More flags of the joining commands (cli/join-flags.ts, e.g. --connect-timeout): a host agent takes them too. */
  workerFlags?: string[];
  /** Extra environment for the workers (e.g. DPTRAIN_SHM_DIR for local ones). */
  env?: Record<string, string>;
  /** Called once per worker as it ends, in the order they end. */
  onExit?: (e: WorkerExit) => void;
}

export interface LaunchedWorkers {
  readonly slots: readonly WorkerSlot[];
  /** Send a signal to one worker (fault injection: SIGKILL, SIGSTOP, SIGCONT). */
  signal(name: string, sig: NodeJS.Signals): void;
  /** End every worker still running (TERM, then KILL after `graceMs`); resolves with every exit. */
  stop(graceMs?: number): Promise<WorkerExit[]>;
  /** Resolves once every worker has ended, by itself or stopped. */
  readonly ended: Promise<WorkerExit[]>;
}

export interface Launcher {
  /** The name it is registered under (`--launcher`, the config's `launch.launcher`). */
  readonly name: string;
  /** The workers it would start, before starting any (join timeout names, faults). */
  slots(): WorkerSlot[];
  start(req: LaunchRequest): LaunchedWorkers;
}

/** "exit status 3", "killed by SIGKILL": how a worker ended, for one log line. */
export function describeExit(e: Pick<WorkerExit, 'code' | 'signal'>): string {
  if (e.signal) return `killed by ${e.signal}`;
  return `exit status ${e.code ?? '?'}`;
}

/** "1 worker", "4 workers". */
export const countWorkers = (n: number): string => `${n} worker${n === 1 ? '' : 's'}`;

/** "worker rank 3 on host2 (rank3@host2)", "host agent 1 on host2 (agent1@host2, 4 workers)" */
export function describeSlot(s: WorkerSlot): string {
  if (s.agentWorkers !== undefined)
    return `host agent ${s.rank} on ${s.host} (${s.name}, ${countWorkers(s.agentWorkers)})`;
  return `worker rank ${s.rank} on ${s.host} (${s.name})`;
}
