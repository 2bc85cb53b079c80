/**
 * The job config: one JSON file plus flags that override it. Every field has a documented
 * default (README "Config reference"); validation rejects unknown keys and bad values with one
 * line naming the field, so a typo never silently trains the default.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { DptrainError, fail } from '../util/errors.js';
import { devicePeak, PRECISIONS } from '../accounting/devices.js';
import { parseDataSpec, type DataSpec } from '../datasets/index.js';
import { checkKeys, isObj, num, oneOf, type Json } from './fields.js';
import { parseLaunchSection, type LaunchSection } from './launch.js';
import { parseModelSpec, type ModelSpec } from '../models/index.js';
import { DEFAULT_DENSE_LAYERS } from '../models/dense.js';
import { DEFAULT_LOSS } from '../models/heads.js';
import { WIRE_DTYPES, type WireDtype } from '../wire/wire-dtype.js';
import { MAX_LEAVES, type ShardsSetting } from './shard-tree.js';
import { NO_COMPRESSION, parseCompression, type CompressionConfig } from '../compress/index.js';

export const SCHEDULES = ['constant', 'cosine'] as const;

export type { DataSpec };

export interface OptimizerConfig {
  /** Peak learning rate. */
  lr: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  /** Decoupled weight decay (AdamW, Loshchilov & Hutter 2019); 0 = plain Adam. */
  weightDecay: number;
  /** Global-norm gradient clipping threshold; 0 = off. */
  clipNorm: number;
  /** Linear warmup from 0 to lr over this many steps. */
  warmupSteps: number;
  /** After warmup: constant, or cosine decay to lr * minLrRatio at the last step. */
  schedule: (typeof SCHEDULES)[number];
  minLrRatio: number;
}

export const BUDGET_POLICIES = ['stop', 'warn', 'continue'] as const;

/** Compute accounting (see shared/accounting and coordinator/accounting). */
export interface ComputeConfig {
  /** Budget in model training FLOPs; null = none. */
  budget: number | null;
  /** Or a budget in device-hours at the declared peak: hours × 3600 × peak FLOP/s. */
  budgetDeviceHours: number | null;
  /** At the budget: stop (save the model, exit 0), warn (once, go on) or continue (silently). */
  budgetPolicy: (typeof BUDGET_POLICIES)[number];
  /** Declared peak FLOP/s per worker; null = use `device`, else each worker's measured figure. */
  peakFlops: number | null;
  /** A device name from the table in shared/accounting/devices.ts (deviceNames()). */
  device: string | null;
  /** Which datasheet column `device` reads: TF.js trains in float32, so fp32 by default. */
  precision: (typeof PRECISIONS)[number];
}

export const BACKENDS = ['auto', 'tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

/** What defines the optimization: sent to every worker, hashed into checkpoints. */
export interface JobConfig {
  seed: number;
  data: DataSpec;
  model: ModelSpec;
  /** Optimizer steps to run. */
  steps: number;
  /** Global batch per micro-step, split across the live workers (independent of their count). */
  batchSize: number;
  /** Micro-steps whose gradients are summed into one optimizer step (gradient accumulation). */
  accumulate: number;
  /** Evaluate on the test split every N steps (0 = only at the end). */
  evalEvery: number;
  optimizer: OptimizerConfig;
  /** How parameters and gradients travel (shared/wire/wire-dtype.ts); part of the job because it changes the numbers. */
  wireDtype: WireDtype;
  /**
   * Virtual shards per micro-batch (shared/job/shard-tree.ts): a count, "auto", or "per-worker";
   * null (unset): "auto" or "per-worker" by the model, wire and batch (jobLeaves).
   */
  shards: ShardsSetting | null;
  /** Lossy gradient compression with error feedback (shared/compress/); none by default. */
  compression: CompressionConfig;
}

/** How this launch runs the job: not part of the optimization. */
export interface LaunchConfig {
  /** Local worker processes `dptrain train` spawns. */
  workers: number;
  /** Below this many ready workers training pauses (and `dptrain coordinator` waits for this many to start). */
  minWorkers: number;
  /** Connections beyond this many workers are refused. */
  maxWorkers: number;
  /** Write a checkpoint every N steps (0 = only at the end and on SIGINT/SIGTERM). */
  checkpointEvery: number;
  /** Seconds a shard may take before it is reassigned; 0 = derived from recent step times. */
  stepTimeoutSec: number;
  /** Seconds to stay paused below minWorkers before checkpointing and exiting non-zero. */
  pauseTimeoutSec: number;
  /** Recompute a shard elsewhere if its gradient norm per sample exceeds this × the recent median (0 = off). */
  outlierFactor: number;
  /** Scripted faults for local runs ("kill:worker-1@40", see cli/faults.ts); added to --fault. */
  faults: string[];
  backend: BackendName;
  /** Let webgpu workers run on a software adapter (SwiftShader, llvmpipe); off, auto skips one. */
  allowSoftwareGpu: boolean;
  /** `dptrain train`: pass tensors to the local workers through /dev/shm files, not the socket. */
  sharedMemory: boolean;
  /** `dptrain train`: run one of the workers inside the coordinator's process (cli/coordinator-worker.ts). */
  coordinatorWorker: boolean;
  out: string | null;
  /** Where `dptrain launch` starts the workers (shared/job/launch.ts); null: flags only. */
  launch: LaunchSection | null;
}

export interface Config extends JobConfig, LaunchConfig {
  compute: ComputeConfig;
}

export const DEFAULT_CONFIG: Config = {
  seed: 42,
  data: { name: 'mnist', testFraction: 0.15 },
  model: { layers: DEFAULT_DENSE_LAYERS.map((l) => ({ ...l })), loss: DEFAULT_LOSS },
  steps: 1000,
  batchSize: 128,
  accumulate: 1,
  evalEvery: 250,
  wireDtype: 'float32',
  shards: null,
  compression: NO_COMPRESSION,
  optimizer: {
    lr: 0.001,
    beta1: 0.9,
    beta2: 0.999,
    epsilon: 1e-7, // tf.train.adam's default on float32 backends (backend.epsilon())
    weightDecay: 0,
    clipNorm: 0,
    warmupSteps: 0,
    schedule: 'constant',
    minLrRatio: 0,
  },
  workers: 2,
  minWorkers: 1,
  maxWorkers: 64,
  checkpointEvery: 100,
  stepTimeoutSec: 0,
  pauseTimeoutSec: 300,
  faults: [],
  outlierFactor: 0,
  backend: 'auto',
  allowSoftwareGpu: false,
  sharedMemory: true,
  coordinatorWorker: false,
  out: null,
  launch: null,
  compute: {
    budget: null,
    budgetDeviceHours: null,
    budgetPolicy: 'stop',
    peakFlops: null,
    device: null,
    precision: 'fp32',
  },
};

function parseOptimizer(raw: unknown): OptimizerConfig {
  const d = DEFAULT_CONFIG.optimizer;
  if (raw === undefined) return { ...d };
  if (!isObj(raw)) fail('CONFIG_INVALID', 'optimizer must be an object');
  checkKeys(raw, Object.keys(d), 'optimizer.');
  const o = { ...d, ...raw };
  return {
    lr: num(o.lr, 'optimizer.lr', { min: 0, minExclusive: true, max: 10 }),
    beta1: num(o.beta1, 'optimizer.beta1', { min: 0, max: 0.999999 }),
    beta2: num(o.beta2, 'optimizer.beta2', { min: 0, max: 0.999999 }),
    epsilon: num(o.epsilon, 'optimizer.epsilon', { min: 0, minExclusive: true, max: 1 }),
    weightDecay: num(o.weightDecay, 'optimizer.weightDecay', { min: 0, max: 1 }),
    clipNorm: num(o.clipNorm, 'optimizer.clipNorm', { min: 0 }),
    warmupSteps: num(o.warmupSteps, 'optimizer.warmupSteps', { int: true, min: 0 }),
    schedule: oneOf(o.schedule, 'optimizer.schedule', SCHEDULES),
    minLrRatio: num(o.minLrRatio, 'optimizer.minLrRatio', { min: 0, max: 1 }),
  };
}

function parseCompute(raw: unknown): ComputeConfig {
  const d = DEFAULT_CONFIG.compute;
  if (raw === undefined) return { ...d };
  if (!isObj(raw)) fail('CONFIG_INVALID', 'compute must be an object');
  checkKeys(raw, Object.keys(d), 'compute.');
  const o = { ...d, ...raw };
  const optional = (v: unknown, field: string) => (v === null ? null : num(v, field, { min: 0, minExclusive: true }));
  const c: ComputeConfig = {
    budget: optional(o.budget, 'compute.budget'),
    budgetDeviceHours: optional(o.budgetDeviceHours, 'compute.budgetDeviceHours'),
    budgetPolicy: oneOf(o.budgetPolicy, 'compute.budgetPolicy', BUDGET_POLICIES),
    peakFlops: optional(o.peakFlops, 'compute.peakFlops'),
    device:
      o.device === null
        ? null
        : typeof o.device === 'string'
          ? o.device
          : fail('CONFIG_INVALID', 'compute.device must be a device name'),
    precision: oneOf(o.precision, 'compute.precision', PRECISIONS),
  };
  if (c.budget !== null && c.budgetDeviceHours !== null)
    fail('CONFIG_INVALID', 'compute.budget and compute.budgetDeviceHours: give one, not both');
  if (c.peakFlops !== null && c.device !== null)
    fail('CONFIG_INVALID', 'compute.peakFlops and compute.device: give one, not both (--peak-flops or --device)');
  // The precision picks a column of the device's datasheet: without a device it would say nothing.
  if (c.device === null && c.precision !== d.precision)
    fail('CONFIG_INVALID', `compute.precision ${c.precision} goes with compute.device (--precision with --device)`);
  if (c.device !== null) devicePeak(c.device, c.precision, 'compute.device'); // fails early on an unknown name
  if (c.budgetDeviceHours !== null && declaredPeak(c) === null) {
    fail(
      'CONFIG_INVALID',
      'compute.budgetDeviceHours needs a peak: set compute.peakFlops or compute.device (--peak-flops / --device)',
    );
  }
  return c;
}

/** The peak FLOP/s per worker the config declares, if any. */
export function declaredPeak(c: ComputeConfig): number | null {
  return c.peakFlops ?? (c.device !== null ? devicePeak(c.device, c.precision, 'compute.device') : null);
}

/**
 * The members a command starts itself fit within maxWorkers (`workers` for train, the launcher's
 * slots for launch and slurm); `dptrain coordinator` starts none and does not read `workers`.
 */
export function checkStartedWithin(c: Pick<Config, 'maxWorkers'>, started: number, what: string): void {
  if (started > c.maxWorkers) fail('CONFIG_INVALID', `${what} (${started}) is above maxWorkers (${c.maxWorkers})`);
}

/** The budget in model FLOPs, from either form. */
export function budgetFlops(c: ComputeConfig): number | null {
  if (c.budget !== null) return c.budget;
  const peak = declaredPeak(c);
  return c.budgetDeviceHours !== null && peak !== null ? c.budgetDeviceHours * 3600 * peak : null;
}

function parseShards(v: unknown): ShardsSetting | null {
  if (v === undefined || v === null) return null;
  if (v === 'auto' || v === 'per-worker') return v;
  if (typeof v === 'string') {
    fail('CONFIG_INVALID', `shards must be "auto", "per-worker" or an integer, got ${JSON.stringify(v)}`);
  }
  return num(v, 'shards', { int: true, min: 1, max: MAX_LEAVES });
}

/** Validate a config object (from a file, after flags are merged in). */
export function parseConfig(raw: unknown): Config {
  if (!isObj(raw)) fail('CONFIG_INVALID', 'the config must be a JSON object');
  checkKeys(raw, Object.keys(DEFAULT_CONFIG), '');
  const o = { ...DEFAULT_CONFIG, ...raw };
  let model: ModelSpec;
  try {
    model = parseModelSpec(o.model);
  } catch (e) {
    if (e instanceof DptrainError) fail('CONFIG_INVALID', e.message);
    throw e;
  }
  const workers = num(o.workers, 'workers', { int: true, min: 1, max: 1024 });
  const c: Config = {
    seed: num(o.seed, 'seed', { int: true, min: 0, max: 2 ** 32 - 1 }),
    data: parseDataSpec(o.data),
    model,
    steps: num(o.steps, 'steps', { int: true, min: 0 }),
    batchSize: num(o.batchSize, 'batchSize', { int: true, min: 1, max: 1 << 20 }),
    accumulate: num(o.accumulate, 'accumulate', { int: true, min: 1, max: 4096 }),
    evalEvery: num(o.evalEvery, 'evalEvery', { int: true, min: 0 }),
    optimizer: parseOptimizer(o.optimizer),
    wireDtype: oneOf(o.wireDtype, 'wireDtype', WIRE_DTYPES),
    shards: parseShards(o.shards),
    compression: parseCompression(o.compression),
    workers,
    minWorkers: num(o.minWorkers, 'minWorkers', { int: true, min: 1, max: 1024 }),
    maxWorkers: num(o.maxWorkers, 'maxWorkers', { int: true, min: 1, max: 4096 }),
    checkpointEvery: num(o.checkpointEvery, 'checkpointEvery', { int: true, min: 0 }),
    stepTimeoutSec: num(o.stepTimeoutSec, 'stepTimeoutSec', { min: 0 }),
    pauseTimeoutSec: num(o.pauseTimeoutSec, 'pauseTimeoutSec', { min: 0 }),
    outlierFactor: o.outlierFactor === 0 ? 0 : num(o.outlierFactor, 'outlierFactor', { min: 1, minExclusive: true }),
    faults:
      Array.isArray(o.faults) && o.faults.every((f) => typeof f === 'string')
        ? (o.faults as string[])
        : fail('CONFIG_INVALID', 'faults must be an array of strings like "kill:worker-1@40"'),
    backend: oneOf(o.backend, 'backend', BACKENDS),
    sharedMemory:
      typeof o.sharedMemory === 'boolean'
        ? o.sharedMemory
        : fail('CONFIG_INVALID', `sharedMemory must be true or false, got ${JSON.stringify(o.sharedMemory)}`),
    coordinatorWorker:
      typeof o.coordinatorWorker === 'boolean'
        ? o.coordinatorWorker
        : fail('CONFIG_INVALID', `coordinatorWorker must be true or false, got ${JSON.stringify(o.coordinatorWorker)}`),
    allowSoftwareGpu:
      typeof o.allowSoftwareGpu === 'boolean'
        ? o.allowSoftwareGpu
        : fail('CONFIG_INVALID', `allowSoftwareGpu must be true or false, got ${JSON.stringify(o.allowSoftwareGpu)}`),
    out:
      o.out === null
        ? null
        : typeof o.out === 'string' && o.out !== ''
          ? o.out
          : fail('CONFIG_INVALID', 'out must be a directory path'),
    launch: parseLaunchSection(o.launch),
    compute: parseCompute(o.compute),
  };
  if (typeof c.shards === 'number' && c.shards > c.batchSize)
    fail(
      'CONFIG_INVALID',
      `shards (${c.shards}) is above batchSize (${c.batchSize}): a shard holds at least one sample`,
    );
  if (c.minWorkers > c.maxWorkers)
    fail('CONFIG_INVALID', `minWorkers (${c.minWorkers}) is above maxWorkers (${c.maxWorkers})`);
  return c;
}

export function readConfigFile(path: string): Json {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return fail(
      'CONFIG_UNREADABLE',
      `cannot read config file ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return fail('CONFIG_UNREADABLE', `config file ${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (!isObj(raw)) fail('CONFIG_INVALID', `config file ${path} must hold a JSON object`);
  return resolveConfigRelative(raw, dirname(resolve(path)));
}

/** Files a config names relative to itself: [section, the field that selects it, its value, the path field]. */
const CONFIG_RELATIVE: Array<[string, string, string, string]> = [
  ['data', 'name', 'module', 'path'],
  ['model', 'kind', 'layers', 'path'],
];

/**
 * A dataset module's or a Layers model's relative path is relative to the config file's folder,
 * and made absolute here: the job every worker receives names the same file (other data paths
 * stay relative to the working directory, as they always were).
 */
export function resolveConfigRelative(raw: Json, dir: string): Json {
  const out: Json = { ...raw };
  for (const [section, key, value, field] of CONFIG_RELATIVE) {
    const s = out[section];
    if (
      isObj(s) &&
      s[key] === value &&
      typeof s[field] === 'string' &&
      s[field] !== '' &&
      !isAbsolute(s[field] as string)
    ) {
      out[section] = { ...s, [field]: resolve(dir, s[field] as string) };
    }
  }
  return out;
}

/**
 * Overrides over a config file, keyed by config path: `steps`, or `optimizer.lr` for a field of a
 * nested section (which overrides that field alone). Undefined values are not given.
 */
export function mergeOverrides(file: Json, overrides: Record<string, unknown>): Json {
  const out: Json = { ...file };
  for (const [path, v] of Object.entries(overrides)) {
    if (v === undefined) continue;
    const [section, field] = path.split('.');
    if (field === undefined) {
      out[section] = v;
      continue;
    }
    const prev = out[section];
    out[section] = { ...(isObj(prev) ? prev : {}), [field]: v };
  }
  return out;
}

export function jobOf(c: Config): JobConfig {
  const { seed, data, model, steps, batchSize, accumulate, evalEvery, optimizer, wireDtype, shards, compression } = c;
  return { seed, data, model, steps, batchSize, accumulate, evalEvery, optimizer, wireDtype, shards, compression };
}
