/**
 * The compute-requirements calculator behind `dptrain plan`: from model size, data and hardware
 * to training FLOPs, PF-days, device-hours and wall-clock time; MFU from an observed
 * throughput; and, for a budget, the compute-optimal model and data size.
 */
import { PF_DAY } from './flops.js';

export interface PlanInput {
  /** Training FLOPs per token (or per sample, for non-sequence models); null: no model given. */
  flopsPerItem: number | null;
  /** 'token' or 'sample': what an item is. */
  unit: 'token' | 'sample' | null;
  /** Parameter count (6·N FLOPs per token); null with no model. */
  params: number | null;
  /** Items per epoch and epochs (items = tokens or samples). */
  items?: number;
  epochs?: number;
  devices: number;
  /** Peak FLOP/s of one device; null: no hardware given. */
  peakFlops: number | null;
  /** Assumed model FLOPs utilization, 0 < mfu ≤ 1. */
  mfu: number;
  /** Observed throughput (items/s over all devices) to derive MFU from, instead of `mfu`. */
  observedItemsPerSec?: number;
  /** Compute budget in FLOPs, for the compute-optimal split. */
  budget?: number;
}

/** What could be answered from what was given; the rest is null (see `missing`). */
export interface PlanResult {
  unit: 'token' | 'sample' | null;
  flopsPerItem: number | null;
  params: number | null;
  items: number | null;
  trainingFlops: number | null;
  pfDays: number | null;
  /** Given or assumed, or derived from an observed throughput (which needs the model and the hardware). */
  mfu: number | null;
  /** Device-hours at that MFU: trainingFlops / (peak · mfu) / 3600. */
  deviceHours: number | null;
  /** Wall-clock seconds on `devices` devices. */
  wallSeconds: number | null;
  devices: number;
  peakFlops: number | null;
  budget: number | null;
  /** Share of the budget the planned training takes. */
  budgetFraction: number | null;
  /** Chinchilla-optimal split of the budget (Hoffmann et al. 2022: D ≈ 20·N, C ≈ 6·N·D). */
  optimal: { params: number; tokens: number } | null;
  /** What in the input looks wrong but still gives an answer, one line each. */
  warnings: string[];
}

/** Chinchilla's rule of thumb: about 20 training tokens per parameter (Hoffmann et al. 2022, Table 3). */
export const CHINCHILLA_TOKENS_PER_PARAM = 20;

/** For C = 6·N·D with D = 20·N: N = √(C / 120), D = 20·N. */
export function computeOptimal(budget: number): { params: number; tokens: number } {
  const params = Math.sqrt(budget / (6 * CHINCHILLA_TOKENS_PER_PARAM));
  return { params, tokens: CHINCHILLA_TOKENS_PER_PARAM * params };
}

export function plan(p: PlanInput): PlanResult {
  const items = p.items !== undefined ? p.items * (p.epochs ?? 1) : null;
  const trainingFlops = items !== null && p.flopsPerItem !== null ? items * p.flopsPerItem : null;
  const observed = p.observedItemsPerSec;
  const mfu =
    observed === undefined
      ? p.mfu
      : p.flopsPerItem !== null && p.peakFlops !== null
        ? (p.flopsPerItem * observed) / (p.devices * p.peakFlops)
        : null;
  // No run beats the datasheet: above 100%, the throughput or the peak given is not what the devices do.
  const warnings =
    observed !== undefined && mfu !== null && mfu > 1
      ? [
          `MFU over 100% of the peak: check that the observed throughput is of all ${p.devices} device${p.devices === 1 ? '' : 's'} together (--devices), and the peak (--device, --precision, --peak)`,
        ]
      : [];
  const deviceHours =
    trainingFlops !== null && p.peakFlops !== null && mfu !== null ? trainingFlops / (p.peakFlops * mfu) / 3600 : null;
  return {
    unit: p.unit,
    flopsPerItem: p.flopsPerItem,
    params: p.params,
    items,
    trainingFlops,
    pfDays: trainingFlops !== null ? trainingFlops / PF_DAY : null,
    mfu,
    deviceHours,
    wallSeconds: deviceHours !== null ? (deviceHours * 3600) / p.devices : null,
    devices: p.devices,
    peakFlops: p.peakFlops,
    budget: p.budget ?? null,
    budgetFraction: p.budget !== undefined && trainingFlops !== null ? trainingFlops / p.budget : null,
    optimal: p.budget !== undefined ? computeOptimal(p.budget) : null,
    warnings,
  };
}
