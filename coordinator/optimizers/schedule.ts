import type { OptimizerConfig } from '../../shared/job/config.js';

/**
 * Learning rate for optimizer step `step` (0-based) of `total`: linear warmup to lr over
 * warmupSteps (the first step gets lr/warmupSteps, not 0), then constant or cosine decay to
 * lr·minLrRatio at the last step (Loshchilov & Hutter 2017, without restarts).
 */
export function learningRate(o: OptimizerConfig, step: number, total: number): number {
  if (step < o.warmupSteps) return (o.lr * (step + 1)) / o.warmupSteps;
  if (o.schedule === 'constant') return o.lr;
  const span = Math.max(1, total - o.warmupSteps - 1);
  const progress = Math.min(1, (step - o.warmupSteps) / span);
  const floor = o.lr * o.minLrRatio;
  return floor + (o.lr - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
