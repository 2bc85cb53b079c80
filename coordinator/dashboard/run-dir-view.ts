/**
 * A finished (or interrupted) run directory as a page's RunView: config.json, metrics.jsonl,
 * summary.json when the run got that far, and the warnings of log.jsonl.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../../shared/util/errors.js';
import { stepStats, type RunSummary, type StepRecord } from '../summary.js';
import {
  evalRow,
  MAX_ROWS,
  stepRow,
  thin,
  warningOf,
  type DerivedSummary,
  type EvalRow,
  type RunView,
  type StepRow,
  type WarningRow,
} from './view.js';

/** Warnings kept per run in a report (the latest). */
const MAX_WARNINGS = 200;

function jsonLines<T>(file: string): T[] {
  if (!existsSync(file)) return [];
  const out: T[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as T);
    } catch {
      // a line torn by a crash: the rest of the file is still good
    }
  }
  return out;
}

function readJson<T>(file: string): T | null {
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return fail('CONFIG_UNREADABLE', `${file}: not valid JSON`);
  }
}

export function readRunView(dir: string, name: string): RunView {
  const metrics = join(dir, 'metrics.jsonl');
  const summary = readJson<RunSummary>(join(dir, 'summary.json'));
  // A run of --steps 0 has a summary and no steps; one stopped before its first step, a checkpoint.
  if (!existsSync(metrics) && !summary && !existsSync(join(dir, 'checkpoints')))
    fail('CONFIG_UNREADABLE', `${dir}: no metrics.jsonl there; give the directory of a dptrain run (its --out)`);
  const config = readJson<Record<string, unknown>>(join(dir, 'config.json')) ?? {};
  const records = jsonLines<StepRecord>(metrics).filter((r) => typeof r.step === 'number' && r.timeline);
  let steps: StepRow[] = [];
  for (const r of records) steps.push(stepRow(r, steps.length ? steps[steps.length - 1].t : 0));
  while (steps.length > MAX_ROWS) steps = thin(steps);
  const evals = records.map(evalRow).filter((e) => e !== null);
  // The final evaluation is not part of a step record; summary.json has it.
  if (summary && summary.testLoss !== null && evals[evals.length - 1]?.step !== summary.steps)
    evals.push({ step: summary.steps, testLoss: summary.testLoss, testAccuracy: summary.testAccuracy });
  const warnings: WarningRow[] = [];
  for (const rec of jsonLines<Record<string, unknown>>(join(dir, 'log.jsonl'))) {
    const w = warningOf(rec, warnings.length + 1);
    if (w) warnings.push(w);
  }
  const compute = config.compute as { budget?: number | null } | undefined;
  return {
    name,
    config,
    steps,
    evals,
    workers: [],
    warnings: warnings.slice(-MAX_WARNINGS),
    budget: summary?.budget ?? compute?.budget ?? null,
    totalSteps: typeof config.steps === 'number' ? config.steps : (records[records.length - 1]?.step ?? 0),
    summary,
    derived: summary || !records.length ? null : derivedSummary(records, evals),
    // No summary: the run was stopped (a signal, a crash, a pause that timed out), or is still going.
    state: summary ? 'finished' : 'stopped',
  };
}

/** A stopped run's summary figures, from its step records as summarize() takes them. */
export function derivedSummary(records: StepRecord[], evals: EvalRow[]): DerivedSummary {
  const last = records[records.length - 1];
  const stats = stepStats(records);
  return {
    steps: last.step,
    epochs: last.epoch,
    finalLoss: last.loss,
    testAccuracy: evals[evals.length - 1]?.testAccuracy ?? null,
    samplesPerSec: stats.samplesPerSec,
    medianStepMs: stats.medianStepMs,
    modelFlopsPerSec: stats.modelFlopsPerSec,
    mfu: stats.mfu,
    totalFlops: last.cumulativeFlops,
    hardwareFlops: last.hardwareFlops,
    budgetUsed: last.budgetUsed ?? null,
    wireBytesPerStep: stats.wireBytesPerStep,
    timeline: stats.timeline,
  };
}
