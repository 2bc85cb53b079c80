/** A training command's flags → its Config: the config file, then the flags of the table over it. */
import { loadLatestCheckpoint, type LoadedCheckpoint } from '../coordinator/checkpoint.js';
import { mergeOverrides, parseConfig, readConfigFile, type Config } from '../shared/job/config.js';
import { fail } from '../shared/util/errors.js';
import { FLAG_TABLE, flagName, overridesOf } from './flag-table.js';

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
  coordinatorWorker?: boolean;
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
  shards?: string | number;
}

/** Flags that change the optimization: not allowed with --resume (the checkpoint fixes them). */
const JOB_ROWS = FLAG_TABLE.filter((r) => r.role === 'job');

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
  if (f.out !== undefined && f.out !== f.resume)
    fail('CONFIG_INVALID', `--out ${f.out}: a resumed run continues in its own directory (${f.resume}); drop --out`);
  const resume = loadLatestCheckpoint(f.resume);
  const given = f as Record<string, unknown>;
  const changed = JOB_ROWS.filter((r) => given[r.key] !== undefined);
  if (changed.length) {
    const names = changed.map(flagName).join(', ');
    fail(
      'CONFIG_INVALID',
      `${names}: cannot be changed with --resume; the checkpoint fixes the job (start a new run to change it)`,
    );
  }
  const saved = resume.state.config as unknown as Record<string, unknown>;
  const config = parseConfig(mergeOverrides(saved, { ...overridesOf(given, ['launch']), out: f.resume }));
  return { config, resume };
}

/** The config file (if any), then flags over it, validated as one object. */
export function resolveConfig(f: JobFlags): Config {
  const file = f.config ? readConfigFile(f.config) : {};
  return parseConfig(mergeOverrides(file, overridesOf(f as Record<string, unknown>, ['job', 'launch'])));
}
