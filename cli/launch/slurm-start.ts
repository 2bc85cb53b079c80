/**
 * `dptrain slurm`: task 0 tells the other tasks that its coordinator will not start (a config
 * error, a finished run …). Without it they would dial the first node until --join-timeout and
 * end with CONNECT_FAILED, which points at the network, not at the config. Task 0 writes a
 * marker beside the run directory (the tasks share the submit directory, as runs/slurm-JOBID
 * needs); the others read it between tries and end with task 0's error code. The marker names
 * the job step and restart it is for, so one left by an earlier step or attempt is not read as
 * this one's.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { DptrainError, type ErrorCode } from '../../shared/util/errors.js';

interface StartFailure {
  job: string;
  step: string;
  restarts: number;
  code: ErrorCode;
  message: string;
}

/** Where task 0 says why it did not start, for the run directory `out`. */
export const startFailureFile = (out: string): string => `${out}.start-failed.json`;

const stepOf = (env: NodeJS.ProcessEnv) => ({
  job: env.SLURM_JOB_ID ?? '',
  step: env.SLURM_STEP_ID ?? '',
  restarts: Number(env.SLURM_RESTART_COUNT ?? 0),
});

/** Task 0: its coordinator did not start, for this reason. Best effort: the error is task 0's to report either way. */
export function writeStartFailure(out: string, env: NodeJS.ProcessEnv, e: DptrainError): void {
  const file = startFailureFile(out);
  const record: StartFailure = { ...stepOf(env), code: e.code, message: e.message };
  try {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(`${file}.tmp`, JSON.stringify(record));
    renameSync(`${file}.tmp`, file); // whole or absent for a reader
  } catch {
    // an unwritable directory: the other tasks give up at their join timeout, as before
  }
}

/** Task 0 started: a marker of an earlier attempt goes. */
export function clearStartFailure(out: string): void {
  rmSync(startFailureFile(out), { force: true });
}

/** The other tasks, between tries: task 0's error, when it failed to start in this very step. */
export function checkStartFailure(out: string, env: NodeJS.ProcessEnv): void {
  let record: Partial<StartFailure>;
  try {
    record = JSON.parse(readFileSync(startFailureFile(out), 'utf8')) as Partial<StartFailure>;
  } catch {
    return; // none (or not ours to read): keep trying
  }
  const me = stepOf(env);
  if (record.job !== me.job || record.step !== me.step || record.restarts !== me.restarts) return;
  if (typeof record.code !== 'string' || typeof record.message !== 'string') return;
  throw new DptrainError(record.code, `task 0 did not start the coordinator: ${record.message}`);
}
