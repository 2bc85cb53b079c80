import { describe, expect, it } from 'vitest';
import type { OptimizerConfig } from '../../shared/job/config.js';
import { learningRate } from '../../coordinator/optimizers/schedule.js';

function opt(over: Partial<OptimizerConfig>): OptimizerConfig {
  return {
    lr: 0.01,
    beta1: 0.9,
    beta2: 0.999,
    epsilon: 1e-7,
    weightDecay: 0,
    clipNorm: 0,
    warmupSteps: 0,
    schedule: 'constant',
    minLrRatio: 0,
    ...over,
  };
}

describe('learningRate', () => {
  it('warms up linearly: lr·(s+1)/warmup for s < warmup', () => {
    const o = opt({ lr: 0.01, warmupSteps: 4 });
    // 0.01·1/4, 0.01·2/4, 0.01·3/4, 0.01·4/4
    const want = [0.0025, 0.005, 0.0075, 0.01];
    for (let s = 0; s < 4; s++) expect(learningRate(o, s, 100)).toBeCloseTo(want[s], 12);
    expect(learningRate(o, 0, 100)).toBeGreaterThan(0); // the first step is not wasted at lr 0
  });

  it('warmup is the same for the cosine schedule', () => {
    const o = opt({ lr: 0.2, warmupSteps: 5, schedule: 'cosine', minLrRatio: 0.1 });
    for (let s = 0; s < 5; s++) expect(learningRate(o, s, 50)).toBeCloseTo((0.2 * (s + 1)) / 5, 12);
  });

  it('constant stays lr after warmup', () => {
    const o = opt({ lr: 0.03, warmupSteps: 3 });
    for (let s = 3; s < 40; s++) expect(learningRate(o, s, 40)).toBe(0.03);
    expect(learningRate(opt({ lr: 0.03 }), 0, 10)).toBe(0.03);
  });

  describe('cosine', () => {
    const total = 30;
    const o = opt({ lr: 0.1, warmupSteps: 5, schedule: 'cosine', minLrRatio: 0.05 });

    it('is lr right after warmup', () => {
      expect(learningRate(o, 5, total)).toBeCloseTo(0.1, 12);
    });

    it('is lr·minLrRatio at the last step (total − 1)', () => {
      // 0.1·0.05 = 0.005
      expect(learningRate(o, total - 1, total)).toBeCloseTo(0.005, 12);
    });

    it('is halfway between at the midpoint', () => {
      // steps 5..29 span 24 steps; step 17 is progress 0.5: floor + (lr − floor)·0.5 = 0.0525
      expect(learningRate(o, 17, total)).toBeCloseTo(0.0525, 12);
    });

    it('is non-increasing from the end of warmup to the last step, and stays in [floor, lr]', () => {
      let prev = Infinity;
      for (let s = 5; s < total; s++) {
        const lr = learningRate(o, s, total);
        expect(lr).toBeLessThanOrEqual(prev);
        expect(lr).toBeGreaterThanOrEqual(0.005 - 1e-15);
        expect(lr).toBeLessThanOrEqual(0.1 + 1e-15);
        prev = lr;
      }
    });

    it('without warmup starts at lr and ends at the floor', () => {
      const o2 = opt({ lr: 1, schedule: 'cosine', minLrRatio: 0 });
      expect(learningRate(o2, 0, 11)).toBeCloseTo(1, 12);
      expect(learningRate(o2, 5, 11)).toBeCloseTo(0.5, 12); // progress 5/10: 0.5·(1 + cos π/2)
      expect(learningRate(o2, 10, 11)).toBeCloseTo(0, 12);
    });
  });
});
