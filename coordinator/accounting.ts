/**
 * Live compute accounting: model FLOPs per step and in total, achieved FLOP/s (a windowed
 * median and an EMA, never a single step), MFU (each step's FLOP/s against the peaks of the
 * workers that did that step, then a windowed median), and the budget — how much is used,
 * when it runs out at the current rate, and whether the next step still fits.
 *
 * Model FLOPs are the analytic training FLOPs of the samples each optimizer step consumed
 * (shared/accounting/flops.ts); the budget is charged with them, as a 6·N·D plan is. Hardware
 * FLOPs add what was computed but not used: recomputed or late shards, skipped steps, and
 * evaluation (forward only).
 */
import type { ComputeConfig } from '../shared/job/config.js';
import type { Logger } from '../shared/util/log.js';
import { median } from '../shared/util/stats.js';

export type BudgetPolicy = ComputeConfig['budgetPolicy'];

/** Budget fractions at which a warning is logged (once each). */
export const BUDGET_WARNINGS = [0.5, 0.8, 0.95] as const;

/** Steps in the throughput window; the EMA weight of a new step. */
const WINDOW = 20;
const EMA_ALPHA = 0.1;

export interface WorkerWork {
  id: string;
  samples: number;
  computeMs: number;
  /** Peak FLOP/s this worker counts with: declared, or measured at join. */
  peakFlops: number;
}

export interface StepAccounting {
  flops: number;
  cumulativeFlops: number;
  hardwareFlops: number;
  /** Windowed median of per-step model FLOP/s. */
  modelFlopsPerSec: number;
  modelFlopsPerSecEma: number;
  /**
   * Median over the last 20 steps of each step's model FLOP/s over the summed peak of the workers
   * that computed it: a step's rate is never divided by another step's workers' peak (a worker
   * leaving would otherwise count the window's faster steps against the smaller peak).
   */
  mfu: number | null;
  /** Summed peak FLOP/s of the workers that computed this step (the MFU's basis); absent when none is known. */
  peakFlops?: number;
  /** Fraction of the budget used, or null without a budget. */
  budgetUsed: number | null;
  /** Seconds until the budget runs out at the current rate. */
  budgetEtaSec: number | null;
  /** Model FLOP/s each worker achieved on its own shards (samples × FLOPs / compute time). */
  workerFlopsPerSec: Record<string, number>;
}

export interface MeterOptions {
  trainFlopsPerSample: number;
  evalFlopsPerSample: number;
  budget: number | null;
  policy: BudgetPolicy;
  log: Logger;
}

export class ComputeMeter {
  cumulativeFlops = 0;
  hardwareFlops = 0;
  private rates: number[] = [];
  /** Per-step model FLOP/s over that step's peak, for the steps whose peak is known. */
  private utilizations: number[] = [];
  private ema = NaN;
  private warned = new Set<number>();
  private lastMfu: number | null = null;
  private lastPeak: number | null = null;

  constructor(private readonly o: MeterOptions) {}

  get budget(): number | null {
    return this.o.budget;
  }

  /** Would a step of `samples` more samples overrun the budget under policy "stop"? */
  stopsBefore(samples: number): boolean {
    return (
      this.o.policy === 'stop' &&
      this.o.budget !== null &&
      this.cumulativeFlops + samples * this.o.trainFlopsPerSample > this.o.budget
    );
  }

  /** Why a run whose budget leaves no step to take is refused (rather than a summary of no steps written over its own). */
  noStepLeft(resumed: boolean): string {
    const used = this.cumulativeFlops.toExponential(3);
    const budget = (this.o.budget ?? 0).toExponential(3);
    return resumed
      ? `the run already stopped at its compute budget (${used} of ${budget} FLOPs): raise --budget to continue it`
      : `the compute budget (${budget} FLOPs) is less than one step: raise --budget`;
  }

  /** stopsBefore, and if so, says in the log that the run stops here after `step` steps. */
  stopsRun(step: number, samples: number): boolean {
    if (!this.stopsBefore(samples)) return false;
    const budget = this.o.budget;
    const used = budget ? this.cumulativeFlops / budget : 0;
    this.o.log.warn(
      { step, cumulativeFlops: this.cumulativeFlops, budget, budgetUsed: +used.toFixed(4) },
      `compute budget reached after ${step} steps: the next step would exceed it; saving the model and stopping`,
    );
    return true;
  }

  /** Work computed that no optimizer step used (late or recomputed shards, skipped steps). */
  wasted(samples: number): void {
    this.hardwareFlops += samples * this.o.trainFlopsPerSample;
  }

  evaluated(samples: number): void {
    this.hardwareFlops += samples * this.o.evalFlopsPerSample;
  }

  /** Account one applied optimizer step. */
  step(samples: number, stepMs: number, workers: WorkerWork[]): StepAccounting {
    const flops = samples * this.o.trainFlopsPerSample;
    this.cumulativeFlops += flops;
    this.hardwareFlops += flops;
    const rate = flops / (stepMs / 1000);
    this.rates.push(rate);
    if (this.rates.length > WINDOW) this.rates.shift();
    this.ema = Number.isNaN(this.ema) ? rate : EMA_ALPHA * rate + (1 - EMA_ALPHA) * this.ema;
    const modelFlopsPerSec = median(this.rates) ?? rate;
    const peak = workers.reduce((s, w) => s + w.peakFlops, 0);
    if (peak > 0) {
      this.utilizations.push(rate / peak);
      if (this.utilizations.length > WINDOW) this.utilizations.shift();
      this.lastPeak = peak;
    }
    const mfu = peak > 0 ? median(this.utilizations) : null;
    this.lastMfu = mfu;
    const workerFlopsPerSec: Record<string, number> = {};
    for (const w of workers)
      if (w.computeMs > 0) workerFlopsPerSec[w.id] = (w.samples * this.o.trainFlopsPerSample) / (w.computeMs / 1000);
    const budget = this.o.budget;
    const budgetUsed = budget !== null ? this.cumulativeFlops / budget : null;
    const budgetEtaSec = budget !== null ? Math.max(0, budget - this.cumulativeFlops) / modelFlopsPerSec : null;
    if (budgetUsed !== null) this.warn(budgetUsed, budgetEtaSec ?? 0);
    return {
      flops,
      cumulativeFlops: this.cumulativeFlops,
      hardwareFlops: this.hardwareFlops,
      modelFlopsPerSec,
      modelFlopsPerSecEma: this.ema,
      mfu,
      ...(peak > 0 ? { peakFlops: peak } : {}),
      budgetUsed,
      budgetEtaSec,
      workerFlopsPerSec,
    };
  }

  /** Account a step: applied, or skipped (its samples computed for nothing). */
  account(skipped: boolean, samples: number, stepMs: number, workers: () => WorkerWork[]): StepAccounting {
    if (!skipped) return this.step(samples, stepMs, workers());
    this.wasted(samples);
    return this.idle();
  }

  /** A step that applied no update (skipped): no model FLOPs; rates, MFU and its peak as of the last applied one. */
  idle(): StepAccounting {
    const budget = this.o.budget;
    const rate = median(this.rates) ?? 0;
    return {
      flops: 0,
      cumulativeFlops: this.cumulativeFlops,
      hardwareFlops: this.hardwareFlops,
      modelFlopsPerSec: rate,
      modelFlopsPerSecEma: Number.isNaN(this.ema) ? 0 : this.ema,
      mfu: this.lastMfu,
      ...(this.lastPeak !== null ? { peakFlops: this.lastPeak } : {}),
      budgetUsed: budget !== null ? this.cumulativeFlops / budget : null,
      budgetEtaSec: budget !== null && rate > 0 ? Math.max(0, budget - this.cumulativeFlops) / rate : null,
      workerFlopsPerSec: {},
    };
  }

  get mfu(): number | null {
    return this.lastMfu;
  }

  get flopsPerSec(): number | null {
    return median(this.rates);
  }

  private warn(used: number, etaSec: number): void {
    const marks = this.o.policy === 'warn' ? [...BUDGET_WARNINGS, 1] : BUDGET_WARNINGS;
    for (const m of marks) {
      if (used < m || this.warned.has(m)) continue;
      this.warned.add(m);
      const left =
        m >= 1
          ? 'exhausted; training goes on (budgetPolicy "warn")'
          : `runs out in about ${Math.round(etaSec)} s at the current rate`;
      this.o.log.warn(
        { budgetUsed: +used.toFixed(4), cumulativeFlops: this.cumulativeFlops, budget: this.o.budget },
        `compute budget ${Math.round(m * 100)}% used: ${left}`,
      );
    }
  }
}
