import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadDataset } from '../../shared/datasets/index.js';
import { layoutModel } from '../../shared/models/index.js';
import { formatProfile, profileStep } from '../../worker/profile.js';

const ds = loadDataset({ name: 'spirals', samples: 400, noise: 0.05, testFraction: 0.2 }, 1);
const layout = layoutModel(
  {
    layers: [
      { units: 32, activation: 'relu' },
      { units: 16, activation: 'tanh' },
      { units: 2, activation: 'linear' },
    ],
    loss: 'softmaxCrossEntropy',
  },
  ds,
);

beforeAll(() => tf.enableProdMode());

describe.each(['cpu', 'wasm'])('profileStep on %s', (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend);
  });

  it('counts every matMul of one step: 3 forward, 2 per layer backward but none into the data', async () => {
    const p = await profileStep(layout, ds, { batch: 64, steps: 2 });
    expect(p.backend).toBe(backend);
    const mm = p.rows.find((r) => r.kernel === 'BatchMatMul');
    expect(mm?.calls).toBe(3 + 2 + 2 + 1);
    expect(p.kernelMs).toBeCloseTo(
      p.rows.reduce((s, r) => s + r.totalMs, 0),
      9,
    );
    expect(p.rows.reduce((s, r) => s + r.share, 0)).toBeCloseTo(1, 6);
    // rows are real kernels of this backend, slowest first; wrappers are apart
    for (const r of p.rows) expect(tf.getKernel(r.kernel, backend)).toBeDefined();
    for (const r of p.composites) expect(tf.getKernel(r.kernel, backend)).toBeUndefined();
    expect(p.rows.map((r) => r.totalMs)).toEqual([...p.rows.map((r) => r.totalMs)].sort((a, b) => b - a));
    expect(mm?.slowestInputs).toMatch(/^\d+x\d+ \d+x\d+$/);
  });

  it('compares forms: the materialized gradient adds Transpose kernels, the flag form has none', async () => {
    const flags = await profileStep(layout, ds, { batch: 64, steps: 1, matMulGrad: 'flags' });
    const fast = await profileStep(layout, ds, { batch: 64, steps: 1, matMulGrad: 'materialize' });
    expect(flags.matMulGrad).toBe('flags');
    expect(flags.rows.some((r) => r.kernel === 'Transpose')).toBe(false);
    expect(fast.rows.find((r) => r.kernel === 'Transpose')?.calls).toBeGreaterThan(0);
    const text = formatProfile(fast);
    expect(text).toContain(`backend ${backend}, matMul gradient: materialize, batch 64`);
    expect(text).toMatch(/BatchMatMul\s+8\s/);
  });

  it('profiles as many steps as it times, and shows the one of median kernel time', async () => {
    const p = await profileStep(layout, ds, { batch: 32, steps: 3 });
    expect(p.profiledKernelMs).toHaveLength(3);
    expect(p.profiledKernelMs).toEqual([...p.profiledKernelMs].sort((a, b) => a - b));
    expect(p.kernelMs).toBe(p.profiledKernelMs[1]);
    expect(formatProfile(p)).toMatch(
      /kernels [\d.]+ ms in the profiled step of median kernel time, of 3 \([\d.]+–[\d.]+ ms\)/,
    );
  });

  it('leaves no tensors behind', async () => {
    const before = tf.memory().numTensors;
    await profileStep(layout, ds, { batch: 32, steps: 1 });
    expect(tf.memory().numTensors).toBe(before);
  });
});
