/**
 * Reading gradients where they lie (worker/tensor-memory.ts): on wasm, views of the heap must
 * hold exactly what data() returns; elsewhere there are no views and data() is used.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDataset } from '../../shared/datasets/index.js';
import { initParams, layoutModel } from '../../shared/models/index.js';
import { Trainer } from '../../worker/trainer.js';
import { heapViews, joinParts } from '../../worker/tensor-memory.js';

const ds = loadDataset({ name: 'spirals', samples: 300, noise: 0.05, testFraction: 0.2 }, 1);
const layout = layoutModel(
  {
    layers: [
      { units: 16, activation: 'relu' },
      { units: 2, activation: 'linear' },
    ],
    loss: 'softmaxCrossEntropy',
  },
  ds,
);
const params = initParams(layout, 1);

/** The flat gradient over rows [0, 64) on a backend, read back the plain way (data() of a concat). */
async function referenceGradient(backend: string): Promise<Float32Array> {
  await tf.setBackend(backend);
  const t = new Trainer(layout, ds, 1);
  t.setParams(0, params);
  const r = await t.gradientParts(0, 64);
  const out = joinParts(r.parts).slice();
  r.release();
  t.dispose();
  return out;
}

describe('heapViews', () => {
  afterAll(() => tf.setBackend('cpu'));

  it('is null on the cpu backend', async () => {
    await tf.setBackend('cpu');
    const t = tf.tensor([1, 2, 3]);
    expect(heapViews([t])).toBeNull();
    t.dispose();
  });

  it('on wasm, views hold exactly what data() returns, for inputs and computed tensors', async () => {
    expect(await tf.setBackend('wasm')).toBe(true);
    const a = tf.tensor2d([
      [1.5, -2],
      [3, 4e-39],
    ]); // 4e-39: a float32 denormal, kept bit for bit
    const b = tf.tidy(() => tf.matMul(a, a).add(1));
    const views = heapViews([a, b]);
    expect(views).not.toBeNull();
    for (const [k, t] of [a, b].entries())
      expect(new Uint32Array(views![k].slice().buffer)).toEqual(
        new Uint32Array(((await t.data()) as Float32Array).slice().buffer),
      );
    const ints = tf.tensor([1, 2], undefined, 'int32');
    expect(heapViews([ints])).toBeNull(); // not float32: no view
    tf.dispose([a, b, ints]);
  });

  it('joinParts concatenates, and returns a single part as it is', () => {
    const one = new Float32Array([1, 2]);
    expect(joinParts([one])).toBe(one);
    expect(Array.from(joinParts([one, new Float32Array([]), new Float32Array([3])]))).toEqual([1, 2, 3]);
  });
});

describe('Trainer.gradientParts', () => {
  let cpu: Float32Array;
  beforeAll(async () => {
    cpu = await referenceGradient('cpu');
  });
  afterAll(() => tf.setBackend('cpu'));

  it('on wasm: one heap view per parameter tensor, agreeing with the cpu backend; nothing leaks', async () => {
    await tf.setBackend('wasm');
    const t = new Trainer(layout, ds, 1);
    t.setParams(0, params);
    const before = tf.memory().numTensors;
    const r = await t.gradientParts(0, 64);
    expect(r.parts.map((p) => p.length)).toEqual(layout.params.map((s) => s.size));
    expect(r.count).toBe(64);
    const got = joinParts(r.parts).slice();
    r.release();
    expect(tf.memory().numTensors).toBe(before);
    // Different kernels sum in another order: agreement to float32 rounding, which wrong memory would not give.
    for (let i = 0; i < cpu.length; i++)
      expect(Math.abs(got[i] - cpu[i]), `element ${i}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(cpu[i])));
    // gradients() is the same numbers in a copy of their own.
    const g = await t.gradients(0, 64);
    expect(Array.from(g.grads)).toEqual(Array.from(got));
    expect(tf.memory().numTensors).toBe(before);
    t.dispose();
  });

  it('on cpu: one part read back with data(), and release frees nothing twice', async () => {
    await tf.setBackend('cpu');
    const t = new Trainer(layout, ds, 1);
    t.setParams(0, params);
    const before = tf.memory().numTensors;
    const r = await t.gradientParts(0, 64);
    expect(r.parts).toHaveLength(1);
    expect(Array.from(r.parts[0])).toEqual(Array.from(cpu));
    r.release();
    expect(tf.memory().numTensors).toBe(before);
    t.dispose();
  });
});
