/** Flag parsing shared by the subcommands: strict numbers, config file + overrides → Config. */
import { InvalidArgumentError } from 'commander';
import { loadLatestCheckpoint, type LoadedCheckpoint } from '../coordinator/checkpoint.js';
import { mergeOverrides, parseConfig, readConfigFile, type Config } from '../shared/job/config.js';
import { fail } from '../shared/util/errors.js';

export function intFlag(v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('expected a non-negative integer.');
  return Number(v);
}

export function numFlag(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('expected a number.');
  return n;
}

export interface JobFlags {
  config?: string;
  workers?: number;
  minWorkers?: number;
  steps?: number;
  batchSize?: number;
  lr?: number;
  backend?: string;
  allowSoftwareGpu?: boolean;
  sharedMemory?: boolean;
  seed?: number;
  out?: string;
  budget?: number;
  budgetDeviceHours?: number;
  budgetPolicy?: string;
  peakFlops?: number;
  device?: string;
  precision?: string;
  maxWorkers?: number;
  checkpointEvery?: number;
  stepTimeout?: number;
  pauseTimeout?: number;
  resume?: string;
  rejectOutliers?: number;
  wireDtype?: string;
  shards?: string;
}

/** Flags that change the optimization: not allowed with --resume (the checkpoint fixes them). */
const JOB_FLAGS = ['config', 'steps', 'batchSize', 'lr', 'seed', 'wireDtype', 'shards'] as const;
const FLAG_NAMES: Record<string, string> = { config: '--config', steps: '--steps', batchSize: '--batch-size', lr: '--lr', seed: '--seed', wireDtype: '--wire-dtype', shards: '--shards' };

function launchOverrides(f: JobFlags): Record<string, unknown> {
  return {
    workers: f.workers,
    minWorkers: f.minWorkers,
    maxWorkers: f.maxWorkers,
    backend: f.backend,
    allowSoftwareGpu: f.allowSoftwareGpu,
    sharedMemory: f.sharedMemory,
    out: f.out,
    checkpointEvery: f.checkpointEvery,
    stepTimeoutSec: f.stepTimeout,
    pauseTimeoutSec: f.pauseTimeout,
    outlierFactor: f.rejectOutliers,
    budget: f.budget,
    budgetDeviceHours: f.budgetDeviceHours,
    budgetPolicy: f.budgetPolicy,
    peakFlops: f.peakFlops,
    device: f.device,
    precision: f.precision,
  };
}

export interface ResolvedRun {
  config: Config;
  resume?: LoadedCheckpoint;
}

/**
 * The config to run: from a file and flags, or — with --resume DIR — the checkpoint's own
 * config, with only launch flags (workers, backend, budget, timeouts) allowed to change.
 */
export function resolveRun(f: JobFlags): ResolvedRun {
  if (!f.resume) return { config: resolveConfig(f) };
  if (f.out !== undefined && f.out !== f.resume) fail('CONFIG_INVALID', `--out ${f.out}: a resumed run continues in its own directory (${f.resume}); drop --out`);
  const resume = loadLatestCheckpoint(f.resume);
  const changed = JOB_FLAGS.filter((k) => f[k] !== undefined);
  if (changed.length) {
    fail('CONFIG_INVALID', `${changed.map((k) => FLAG_NAMES[k]).join(', ')}: cannot be changed with --resume; the checkpoint fixes the job (start a new run to change it)`);
  }
  const config = parseConfig(mergeOverrides(resume.state.config as unknown as Record<string, unknown>, { ...launchOverrides(f), out: f.resume }));
  return { config, resume };
}

/** The config file (if any), then flags over it, validated as one object. */
export function resolveConfig(f: JobFlags): Config {
  const file = f.config ? readConfigFile(f.config) : {};
  return parseConfig(
    mergeOverrides(file, {
      ...launchOverrides(f),
      steps: f.steps,
      batchSize: f.batchSize,
      lr: f.lr,
      seed: f.seed,
      wireDtype: f.wireDtype,
      // A count, or a name the config check names if wrong.
      shards: f.shards !== undefined && /^\d+$/.test(f.shards) ? Number(f.shards) : f.shards,
    }),
  );
}

/** "0.0.0.0:7070", ":7070", "7070" → host and port. */
export function parseListen(v: string): { host: string; port: number } {
  const m = /^(?:(.*):)?(\d{1,5})$/.exec(v);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new InvalidArgumentError('expected HOST:PORT, e.g. 0.0.0.0:7070.');
  const host = (m[1] ?? '127.0.0.1').replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
  return { host, port };
}
