/** Flag parsing shared by the subcommands: strict numbers, config file + overrides → Config. */
import { InvalidArgumentError } from 'commander';
import { mergeOverrides, parseConfig, readConfigFile, type Config } from '../shared/config.js';

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
  seed?: number;
  out?: string;
  budget?: number;
  budgetDeviceHours?: number;
  budgetPolicy?: string;
  peakFlops?: number;
  device?: string;
  precision?: string;
}

/** The config file (if any), then flags over it, validated as one object. */
export function resolveConfig(f: JobFlags): Config {
  const file = f.config ? readConfigFile(f.config) : {};
  return parseConfig(
    mergeOverrides(file, {
      workers: f.workers,
      minWorkers: f.minWorkers,
      steps: f.steps,
      batchSize: f.batchSize,
      lr: f.lr,
      backend: f.backend,
      seed: f.seed,
      out: f.out,
      budget: f.budget,
      budgetDeviceHours: f.budgetDeviceHours,
      budgetPolicy: f.budgetPolicy,
      peakFlops: f.peakFlops,
      device: f.device,
      precision: f.precision,
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
