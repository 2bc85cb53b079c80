import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Trainer } from '../../worker/trainer.js';
import { loadDataset, type Dataset } from '../../shared/datasets/index.js';
import { DptrainError } from '../../shared/util/errors.js';
import {
  denseLayout,
  type DenseLayout as ModelLayout,
  type DenseSpec as ModelSpec,
} from '../../shared/models/dense.js';
import { initParams } from '../../shared/models/index.js';

const SEED = 1;

interface Case {
  name: string;
  ds: Dataset;
  spec: ModelSpec;
}

const spirals = loadDataset({ name: 'spirals', samples: 200, noise: 0.05, testFraction: 0.2 }, SEED);
const xor = loadDataset({ name: 'xor' }, SEED);
const CASES: Case[] = [
  {
    name: 'spirals, softmaxCrossEntropy',
    ds: spirals,
    spec: {
      layers: [
        { units: 8, activation: 'tanh' },
        { units: 2, activation: 'linear' },
      ],
      loss: 'softmaxCrossEntropy',
    },
  },
  {
    name: 'xor, binaryCrossEntropy',
    ds: xor,
    spec: {
      layers: [
        { units: 4, activation: 'tanh' },
        { units: 1, activation: 'linear' },
      ],
      loss: 'binaryCrossEntropy',
    },
  },
  {
    name: 'xor, meanSquaredError',
    ds: xor,
    spec: {
      layers: [
        { units: 4, activation: 'tanh' },
        { units: 1, activation: 'sigmoid' },
      ],
      loss: 'meanSquaredError',
    },
  },
];

function setup(c: Case): { layout: ModelLayout; params: Float32Array; trainer: Trainer } {
  const layout = denseLayout(c.spec, c.ds);
  const params = initParams(layout, SEED);
  // Non-zero biases, so that their gradients are exercised away from the symmetric start.
  for (const slot of layout.params)
    if (slot.shape.length === 1) for (let i = 0; i < slot.size; i++) params[slot.offset + i] = 0.1 * (i + 1);
  const trainer = new Trainer(layout, c.ds, SEED);
  trainer.setParams(0, params);
  return { layout, params, trainer };
}

function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, rel: number): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) {
    const tol = rel * Math.max(Math.abs(a[i]), Math.abs(b[i])) + 1e-7;
    expect(Math.abs(a[i] - b[i]), `element ${i}: ${a[i]} vs ${b[i]}`).toBeLessThanOrEqual(tol);
  }
}

beforeAll(async () => {
  tf.enableProdMode();
  await tf.setBackend('cpu');
});

describe.each(CASES)('Trainer ($name)', (c) => {
  let layout: ModelLayout;
  let params: Float32Array;
  let trainer: Trainer;
  beforeAll(() => {
    ({ layout, params, trainer } = setup(c));
  });
  afterAll(() => trainer.dispose());

  it('leaks no tensors in gradients() and evaluate()', async () => {
    const before = tf.memory().numTensors;
    await trainer.gradients(0, 10);
    await trainer.gradients(3, 7);
    await trainer.evaluate(0, c.ds.test.n);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('returns a gradient for every parameter and the row count', async () => {
    const r = await trainer.gradients(0, 10);
    expect(r.grads).toBeInstanceOf(Float32Array);
    expect(r.grads.length).toBe(layout.totalParams);
    expect(r.count).toBe(10);
    expect(Number.isFinite(r.lossSum)).toBe(true);
    expect(r.lossSum).toBeGreaterThan(0);
    expect(r.grads.some((g) => g !== 0)).toBe(true);
  });

  it('returns sums: [0,10) = [0,4) + [4,10)', async () => {
    const all = await trainer.gradients(0, 10);
    const a = await trainer.gradients(0, 4);
    const b = await trainer.gradients(4, 10);
    expectClose(
      all.grads,
      a.grads.map((g, i) => g + b.grads[i]),
      1e-5,
    );
    expectClose([all.lossSum], [a.lossSum + b.lossSum], 1e-5);
    expect(a.count + b.count).toBe(all.count);
  });

  it('is deterministic for the same range', async () => {
    const x = await trainer.gradients(2, 9);
    const y = await trainer.gradients(2, 9);
    expect(Array.from(x.grads)).toEqual(Array.from(y.grads));
    expect(x.lossSum).toBe(y.lossSum);
  });

  it('matches central finite differences of lossSum', async () => {
    const from = 0;
    const to = 16;
    const g = (await trainer.gradients(from, to)).grads;
    const eps = 1e-2;
    // In each parameter tensor, check the entry with the largest gradient and the first entry.
    const picks = new Set<number>();
    for (const slot of layout.params) {
      let best = slot.offset;
      for (let i = slot.offset; i < slot.offset + slot.size; i++) if (Math.abs(g[i]) > Math.abs(g[best])) best = i;
      picks.add(best);
      picks.add(slot.offset);
    }
    const probe = new Trainer(layout, c.ds, SEED);
    try {
      for (const i of picks) {
        const p = params.slice();
        p[i] = params[i] + eps;
        probe.setParams(1, p);
        const up = (await probe.gradients(from, to)).lossSum;
        p[i] = params[i] - eps;
        probe.setParams(2, p);
        const down = (await probe.gradients(from, to)).lossSum;
        const fd = (up - down) / (2 * eps);
        // Relative 2e-2, plus 1e-4 absolute: float32 rounding of a loss sum of ~10 is ~1e-6,
        // which the division by 2·eps turns into ~1e-4 of noise in the numeric gradient.
        const tol = 2e-2 * Math.abs(g[i]) + 1e-4;
        expect(Math.abs(fd - g[i]), `param ${i}: analytic ${g[i]}, numeric ${fd}`).toBeLessThanOrEqual(tol);
      }
    } finally {
      probe.dispose();
    }
  });

  it('evaluate: count = rows, correct in [0, count]', async () => {
    const n = c.ds.test.n;
    const e = await trainer.evaluate(0, n);
    expect(e.count).toBe(n);
    expect(Number.isInteger(e.correct)).toBe(true);
    expect(e.correct).toBeGreaterThanOrEqual(0);
    expect(e.correct).toBeLessThanOrEqual(n);
    expect(e.lossSum).toBeGreaterThan(0);
    const part = await trainer.evaluate(1, n);
    expect(part.count).toBe(n - 1);
    expect(part.correct).toBeLessThanOrEqual(e.correct);
  });

  it('evaluate throws past the test split', async () => {
    const n = c.ds.test.n;
    await expect(trainer.evaluate(0, n + 1)).rejects.toThrow(DptrainError);
    try {
      await trainer.evaluate(n - 1, n + 5);
      expect.unreachable();
    } catch (e) {
      expect((e as DptrainError).code).toBe('MESSAGE_INVALID');
    }
  });
});

describe('Trainer cross-checks', () => {
  it('xor: evaluate over the 4 points equals one epoch of training loss', async () => {
    // The xor test split is the training split, and stream positions [0,4) are one epoch.
    const { trainer } = setup(CASES[1]);
    const e = await trainer.evaluate(0, 4);
    const g = await trainer.gradients(0, 4);
    expect(e.lossSum).toBeCloseTo(g.lossSum, 5);
    trainer.dispose();
  });

  it('spirals: correct matches an independent float64 forward pass', async () => {
    const c = CASES[0];
    const { layout, params, trainer } = setup(c);
    const { test } = c.ds;
    const [w0, b0, w1, b1] = layout.params.map((s) => params.subarray(s.offset, s.offset + s.size));
    let correct = 0;
    for (let r = 0; r < test.n; r++) {
      const h = Array.from({ length: 8 }, (_, j) =>
        Math.tanh(test.x[2 * r] * w0[j] + test.x[2 * r + 1] * w0[8 + j] + b0[j]),
      );
      const z = [0, 1].map((k) => h.reduce((s, hj, j) => s + hj * w1[2 * j + k], b1[k]));
      const pred = z[1] > z[0] ? 1 : 0;
      if (test.y[2 * r + pred] === 1) correct++;
    }
    expect((await trainer.evaluate(0, test.n)).correct).toBe(correct);
    trainer.dispose();
  });
});
