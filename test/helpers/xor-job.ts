/** The smallest job a coordinator test trains: XOR, 4 tanh units, one sigmoid output. */
import type { CheckpointCounters } from '../../coordinator/checkpoint.js';

export const XOR_JOB = {
  data: { name: 'xor' },
  model: { layers: [{ units: 4, activation: 'tanh' }, { units: 1 }], loss: 'binaryCrossEntropy' },
};

/** Its parameter count: 2×4 + 4, then 4×1 + 1. */
export const XOR_TOTAL = 2 * 4 + 4 + 4 + 1;

/** A checkpoint's counters for a run without faults or compute yet. */
export const ZERO_COUNTERS: CheckpointCounters = {
  stale: 0,
  reassigned: 0,
  recomputed: 0,
  outliers: 0,
  dropped: 0,
  skipped: 0,
  cumulativeFlops: 0,
  hardwareFlops: 0,
};
