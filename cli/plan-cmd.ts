/**
 * `dptrain plan`: how much compute a training run needs, how long it takes on given hardware,
 * and what model a budget buys. Pure arithmetic over shared/accounting; prints a table or JSON.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunSummary } from '../coordinator/summary.js';
import { deviceNames, devicePeak, type Precision } from '../shared/accounting/devices.js';
import { transformerParams, transformerTrainingFlopsPerToken } from '../shared/accounting/flops.js';
import { flopRateText, flopsText, percent, si } from '../shared/accounting/format.js';
import { plan, type PlanResult } from '../shared/accounting/plan.js';
import { budgetFlops, declaredPeak, parseConfig, readConfigFile } from '../shared/job/config.js';
import { fail } from '../shared/util/errors.js';
import { jobLayout, prepareJob } from '../shared/job/job-layout.js';
import { modelKind } from '../shared/models/index.js';

/** Assumed MFU when none is given: a well-tuned large run reaches 40–50% (PaLM App. B: 46.2%). */
export const DEFAULT_MFU = 0.4;

export interface PlanFlags {
  params?: number;
  /** A job config (`--config`; `--model` is its older name). */
  config?: string;
  model?: string;
  layers?: number;
  dModel?: number;
  heads?: number;
  headDim?: number;
  seq?: number;
  vocab?: number;
  bias: boolean;
  tied: boolean;
  tokens?: number;
  samples?: number;
  epochs: number;
  devices?: number;
  device?: string;
  precision: Precision;
  peak?: number;
  mfu?: number;
  fromRun?: string;
  observedTokensPerSec?: number;
  observedSamplesPerSec?: number;
  budget?: number;
  json?: boolean;
}

interface ModelSize {
  unit: 'token' | 'sample';
  flopsPerItem: number;
  params: number;
  describe: string;
  /** From a job config: the run it configures, the compute section's hardware and budget. */
  job?: { items: number; describe: string; peak: number | null; budget: number | null };
}

const MODEL_WAYS = '--params N, --config job.json, or a transformer shape (--layers --d-model --heads --seq --vocab)';

/** The job config file, from --config or its older name --model. */
function configFile(f: PlanFlags): string | undefined {
  if (f.config !== undefined && f.model !== undefined)
    fail('CONFIG_INVALID', '--model is the older name of --config: give one of them');
  return f.config ?? f.model;
}
const HARDWARE = `--device NAME (${deviceNames()}) or --peak FLOPS`;

/** What the data and throughput flags count in, and the flag that says so; mixing the two is refused. */
function givenUnit(f: PlanFlags): { unit: 'token' | 'sample'; flag: string } | undefined {
  const tokens =
    f.tokens !== undefined ? '--tokens' : f.observedTokensPerSec !== undefined ? '--observed-tokens-per-sec' : null;
  const samples =
    f.samples !== undefined ? '--samples' : f.observedSamplesPerSec !== undefined ? '--observed-samples-per-sec' : null;
  if (tokens && samples)
    fail('CONFIG_INVALID', `give ${tokens} or ${samples}, not both: count in tokens or in samples`);
  return tokens ? { unit: 'token', flag: tokens } : samples ? { unit: 'sample', flag: samples } : undefined;
}

/** The model, or null when none was given (a budget alone is still answered). */
function modelSize(f: PlanFlags): ModelSize | null {
  const shapeFlags = [f.layers, f.dModel, f.heads, f.seq, f.vocab];
  const file = configFile(f);
  const given = [f.params !== undefined, file !== undefined, shapeFlags.some((v) => v !== undefined)].filter(
    Boolean,
  ).length;
  if (given === 0) return null;
  if (given > 1) fail('CONFIG_INVALID', `give the model one way: ${MODEL_WAYS}`);
  if (f.params !== undefined) {
    // 6·N holds per token and per sample alike: count in whichever the other flags give.
    const unit = givenUnit(f)?.unit ?? 'token';
    return {
      unit,
      flopsPerItem: 6 * f.params,
      params: f.params,
      describe: `${si(f.params).trim()} parameters, 6·N FLOPs per ${unit}`,
    };
  }
  if (file !== undefined) {
    const cfg = parseConfig(readConfigFile(file));
    const layout = jobLayout(cfg);
    const fl = modelKind(layout.spec).flops(layout);
    const samples = cfg.steps * cfg.batchSize * cfg.accumulate;
    // Per token for sequence models (the same count a transformer shape gets), per sample otherwise.
    return {
      unit: fl.unit,
      flopsPerItem: fl.training / fl.itemsPerSample,
      params: layout.totalParams,
      describe: `${fl.describe} (${file})`,
      job: {
        items: samples * fl.itemsPerSample,
        describe: `the job's ${cfg.steps.toLocaleString('en-US')} steps × batch ${cfg.batchSize * cfg.accumulate}`,
        peak: declaredPeak(cfg.compute),
        budget: budgetFlops(cfg.compute),
      },
    };
  }
  if (shapeFlags.some((v) => v === undefined))
    fail('CONFIG_INVALID', 'a transformer shape needs all of --layers, --d-model, --heads, --seq, --vocab');
  // Heads split d_model unless --head-dim says otherwise: a fractional head would be counted (as a config refuses it).
  if (f.headDim === undefined && f.dModel! % f.heads! !== 0)
    fail(
      'CONFIG_INVALID',
      `--d-model (${f.dModel}) must be a multiple of --heads (${f.heads}), or give --head-dim for heads of another width`,
    );
  const shape = {
    layers: f.layers!,
    dModel: f.dModel!,
    heads: f.heads!,
    headDim: f.headDim,
    seq: f.seq!,
    vocab: f.vocab!,
    bias: f.bias,
    tiedEmbeddings: f.tied,
  };
  const p = transformerParams(shape);
  return {
    unit: 'token',
    flopsPerItem: transformerTrainingFlopsPerToken(shape, p.total),
    params: p.total,
    describe:
      `transformer L${shape.layers} d${shape.dModel} H${shape.heads} T${shape.seq}: ${p.total.toLocaleString('en-US')} parameters ` +
      `(${p.nonEmbedding.toLocaleString('en-US')} without embeddings), 6·N + 12·L·H·Q·T per token`,
  };
}

function readRun(dir: string): RunSummary {
  const file = join(dir, 'summary.json');
  if (!existsSync(file))
    fail('CONFIG_UNREADABLE', `--from-run ${dir}: no summary.json there (is it a finished dptrain run directory?)`);
  return JSON.parse(readFileSync(file, 'utf8')) as RunSummary;
}

/** What a job config needs before it is planned: its dataset module imported (its describe() gives the shape). */
export async function preparePlan(f: PlanFlags): Promise<void> {
  const file = configFile(f);
  if (file !== undefined) await prepareJob(parseConfig(readConfigFile(file)));
}

/** Flags that say one thing twice: refused, as train refuses --peak-flops with --device, rather than one silently winning. */
function refuseBoth(f: PlanFlags): void {
  if (f.peak !== undefined && f.device !== undefined)
    fail('CONFIG_INVALID', `--peak and --device ${f.device}: give one, not both`);
  const observed =
    f.observedTokensPerSec !== undefined
      ? '--observed-tokens-per-sec'
      : f.observedSamplesPerSec !== undefined
        ? '--observed-samples-per-sec'
        : null;
  if (f.mfu !== undefined && observed)
    fail('CONFIG_INVALID', `--mfu and ${observed}: give one, not both (the throughput gives the MFU)`);
}

export function planCommand(f: PlanFlags): { result: PlanResult; text: string } {
  refuseBoth(f);
  const m = modelSize(f);
  if (!m && f.budget === undefined) fail('CONFIG_INVALID', `give a model (${MODEL_WAYS}) or a --budget`);
  if (f.tokens !== undefined && f.samples !== undefined) fail('CONFIG_INVALID', 'give --tokens or --samples, not both');
  // A transformer shape or a job's model counts in its own unit: a count in the other would be mislabelled.
  const given = givenUnit(f);
  if (m && given && given.unit !== m.unit) {
    const model = configFile(f) ? `the model of ${configFile(f)}` : 'a transformer shape';
    fail(
      'CONFIG_INVALID',
      `${given.flag}: ${model} counts ${m.unit}s; give --${m.unit}s or --observed-${m.unit}s-per-sec`,
    );
  }
  const run = f.fromRun ? readRun(f.fromRun) : null;
  if (run && run.mfu === null) fail('CONFIG_INVALID', `--from-run ${f.fromRun}: that run recorded no MFU`);
  // A job config answers for itself what the flags leave open: its run's length, its declared
  // hardware and its budget.
  const fromJob = f.tokens === undefined && f.samples === undefined && f.epochs === 1 ? m?.job : undefined;
  const flagPeak = f.peak ?? (f.device ? devicePeak(f.device, f.precision, '--device', '--peak') : undefined);
  let peak = flagPeak ?? m?.job?.peak ?? undefined;
  const peakSource = flagPeak === undefined && peak !== undefined ? ` (${configFile(f)}: compute)` : '';
  const budget = f.budget ?? m?.job?.budget ?? undefined;
  let devices = f.devices;
  if (peak === undefined && run) {
    peak = run.peakFlops / Math.max(1, run.workers);
    devices ??= run.workers;
  }
  const observed = f.observedTokensPerSec ?? f.observedSamplesPerSec;
  const result = plan({
    flopsPerItem: m?.flopsPerItem ?? null,
    unit: m?.unit ?? null,
    params: m?.params ?? null,
    items: f.tokens ?? f.samples ?? fromJob?.items,
    epochs: f.epochs,
    devices: devices ?? 1,
    peakFlops: peak ?? null,
    mfu: f.mfu ?? run?.mfu ?? DEFAULT_MFU,
    observedItemsPerSec: observed,
    budget,
  });
  const mfuSource =
    observed !== undefined
      ? 'from the observed throughput'
      : f.mfu !== undefined
        ? 'given'
        : run
          ? `measured in ${f.fromRun}`
          : 'assumed';
  // What cannot be answered gets a row naming what it needs, not a refusal of the whole plan.
  const needs = (what: string[]) => `needs ${what.join(' and ')}`;
  const unit = m?.unit ?? given?.unit ?? 'token';
  const rows: Array<[string, string]> = [];
  if (m) {
    rows.push(['model', m.describe]);
    rows.push([`FLOPs per ${m.unit}`, `${m.flopsPerItem.toLocaleString('en-US')} (training: forward + backward)`]);
  } else rows.push(['model', `none given (${MODEL_WAYS})`]);
  if (result.items !== null)
    rows.push([
      `${unit}s`,
      `${si(result.items).trim()} (${fromJob ? fromJob.describe : `${f.epochs} epoch${f.epochs === 1 ? '' : 's'}`})`,
    ]);
  if (result.trainingFlops !== null)
    rows.push([
      'training compute',
      `${result.trainingFlops.toExponential(3)} FLOPs = ${result.pfDays!.toPrecision(3)} PF-days`,
    ]);
  else if (m || result.items !== null)
    rows.push([
      'training compute',
      needs([...(m ? [] : ['a model']), ...(result.items !== null ? [] : ['--tokens or --samples'])]),
    ]);
  rows.push([
    'hardware',
    peak !== undefined ? `${result.devices} × ${flopRateText(peak)} peak${peakSource}` : `none given (${HARDWARE})`,
  ]);
  rows.push([
    'MFU',
    result.mfu !== null ? `${percent(result.mfu)} (${mfuSource})` : needs(['the model and the hardware']),
  ]);
  for (const w of result.warnings) rows.push(['WARNING', w]);
  if (result.deviceHours !== null) {
    rows.push(['device-hours', result.deviceHours.toPrecision(4)]);
    rows.push(['wall-clock', wallText(result.wallSeconds!)]);
  } else if (result.trainingFlops !== null) rows.push(['device-hours', needs(['the hardware'])]);
  if (result.budget !== null) {
    rows.push([
      'budget',
      `${flopsText(result.budget)}${result.budgetFraction !== null ? ` (this plan uses ${percent(result.budgetFraction)})` : ''}`,
    ]);
    rows.push([
      'compute-optimal',
      `${si(result.optimal!.params).trim()} parameters on ${si(result.optimal!.tokens).trim()} tokens (Chinchilla, D ≈ 20·N)`,
    ]);
  }
  const w = Math.max(...rows.map(([k]) => k.length));
  return { result, text: rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n') };
}

function wallText(sec: number): string {
  if (sec < 120) return `${sec.toPrecision(3)} s`;
  if (sec < 7200) return `${(sec / 60).toPrecision(3)} min`;
  if (sec < 172_800) return `${(sec / 3600).toPrecision(3)} h`;
  return `${(sec / 86_400).toPrecision(3)} days`;
}

export function planJson(r: PlanResult): object {
  const perItem =
    r.unit === 'token'
      ? { flopsPerToken: r.flopsPerItem }
      : r.unit === 'sample'
        ? { flopsPerSample: r.flopsPerItem }
        : {};
  return { ...perItem, ...r };
}
