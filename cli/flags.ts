/** A training command's flags → its Config: the config file, then the flags of the table over it. */
import { loadLatestCheckpoint, type LoadedCheckpoint } from '../coordinator/checkpoint.js';
import { DEFAULT_CONFIG, mergeOverrides, parseConfig, readConfigFile, type Config } from '../shared/job/config.js';
import { fail } from '../shared/util/errors.js';
import { COMMAND_SCOPES, FLAG_TABLE, type FlagScope, flagName, overridesOf } from './flag-table.js';

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
  /** What the config file sets that this command does not read, one line each (see unusedFields). */
  unused: string[];
}

export type TrainingCommand = keyof typeof COMMAND_SCOPES;

/**
 * The config to run: from a file and flags, or — with --resume DIR — the checkpoint's own
 * config, with only launch flags (workers, backend, budget, timeouts) allowed to change.
 */
export function resolveRun(f: JobFlags, command: TrainingCommand): ResolvedRun {
  if (!f.resume) {
    const file = f.config ? readConfigFile(f.config) : {};
    return { config: configOf(file, f), unused: unusedFields(file, command) };
  }
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
  // Nothing left to train: running would only evaluate again and write a summary of no steps over the run's own.
  if (resume.state.step >= config.steps)
    fail(
      'CONFIG_INVALID',
      `--resume ${f.resume}: the run already finished all its ${config.steps} steps; nothing to resume (start a new run to train further)`,
    );
  return { config, resume, unused: [] }; // the checkpoint's config was read by the command that began the run
}

/** The config file (if any), then flags over it, validated as one object. */
export function resolveConfig(f: JobFlags): Config {
  return configOf(f.config ? readConfigFile(f.config) : {}, f);
}

function configOf(file: Record<string, unknown>, f: JobFlags): Config {
  return parseConfig(mergeOverrides(file, overridesOf(f as Record<string, unknown>, ['job', 'launch'])));
}

/**
 * Fields the config file sets, to other than their default, that `command` does not read (a
 * field whose flag only other commands take, e.g. `workers` for `dptrain coordinator`, which waits
 * for `minWorkers`): one line each, naming the commands that do. A warning, not a refusal: one job
 * file may serve `train` on one machine and `coordinator` on several.
 */
export function unusedFields(file: Record<string, unknown>, command: TrainingCommand): string[] {
  const scopes: readonly FlagScope[] = COMMAND_SCOPES[command];
  const defaults = DEFAULT_CONFIG as unknown as Record<string, unknown>;
  const out: string[] = [];
  for (const row of FLAG_TABLE) {
    if (!row.field || scopes.includes(row.scope)) continue;
    const value = at(file, row.field);
    if (value === undefined || JSON.stringify(value) === JSON.stringify(at(defaults, row.field))) continue;
    const takers = Object.entries(COMMAND_SCOPES)
      .filter(([, s]) => (s as readonly FlagScope[]).includes(row.scope))
      .map(([c]) => `dptrain ${c}`);
    out.push(
      `config field ${row.field} (${JSON.stringify(value)}) is not used by dptrain ${command}; ${takers.join(' and ')} read it`,
    );
  }
  return out;
}

/** The value at a config path (`optimizer.lr`: a field of a section). */
function at(o: Record<string, unknown>, path: string): unknown {
  const [section, field] = path.split('.');
  const v = o[section];
  if (field === undefined) return v;
  return v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[field] : undefined;
}
