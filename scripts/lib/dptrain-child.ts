/**
 * dptrain started as a child process, as a user starts it: the built CLI, a training run on local
 * worker processes with the benchmarks' per-worker batch, and the line of a child's output that
 * an error quotes.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunSummary } from '../../coordinator/summary.js';
import { PER_WORKER_BATCH } from '../reference-job.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The built CLI, from scripts/lib/ (tests) or dist/scripts/lib/ (benchmarks). */
export const BUILT_CLI = here.includes('/dist/')
  ? resolve(here, '../../cli/main.js')
  : resolve(here, '../../dist/cli/main.js');

/** The last line of a child's output: what it said before failing. */
export function lastLine(output: string): string | undefined {
  return output.trim().split('\n').pop();
}

/** The summary.json of the run written to `out`. */
export function readSummary(out: string): RunSummary {
  return JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as RunSummary;
}

export interface LocalTraining {
  /** The job file (`--config`). */
  job: string;
  workers: number;
  steps: number;
  /** The run directory; its summary.json is the result. */
  out: string;
  /** Flags beyond the common ones (`--no-shared-memory`, `--shards 8`). */
  flags?: string[];
  /** Another build's CLI (a base build to compare with); default BUILT_CLI. */
  cli?: string;
}

/**
 * `dptrain train` on `workers` local processes, batch PER_WORKER_BATCH per worker (weak
 * scaling), wasm backend; resolves with its summary.json.
 */
export function trainLocally(o: LocalTraining): Promise<RunSummary> {
  const args = [o.cli ?? BUILT_CLI, 'train', '--config', o.job, '--workers', String(o.workers)];
  args.push('--batch-size', String(PER_WORKER_BATCH * o.workers), '--steps', String(o.steps));
  args.push('--backend', 'wasm', ...(o.flags ?? []), '--out', o.out);
  const which = o.cli ? ` (${o.cli})` : '';
  return new Promise((res, rej) => {
    execFile(process.execPath, args, { maxBuffer: 64 << 20 }, (err, _o, stderr) => {
      if (err) return rej(new Error(`dptrain train${which} failed: ${lastLine(stderr)}`));
      res(readSummary(o.out));
    });
  });
}
