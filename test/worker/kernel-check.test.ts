import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm'; // registers the wasm kernels (no need to initialize it)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertKernels, kernelsUsed } from '../../worker/kernel-check.js';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseConfig, readConfigFile } from '../../shared/job/config.js';
import { DptrainError } from '../../shared/util/errors.js';
import { jobLayout, prepareJob } from '../../shared/job/job-layout.js';
import { exampleConfig } from '../helpers/fixtures.js';
import type { DenseSpec as ModelSpec } from '../../shared/models/dense.js';
import { denseFor as layoutModel } from '../helpers/layouts.js';

const reluModel = layoutModel(
  {
    layers: [
      { units: 4, activation: 'relu' },
      { units: 3, activation: 'linear' },
    ],
    loss: 'softmaxCrossEntropy',
  },
  5,
  3,
);

async function thrown(p: Promise<unknown>): Promise<DptrainError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(DptrainError);
    return e as DptrainError;
  }
  throw new Error('expected a rejection');
}

beforeAll(async () => {
  tf.enableProdMode();
  await tf.setBackend('cpu');
});

describe('kernelsUsed', () => {
  it('a relu dense model uses BatchMatMul and Relu, and only registered cpu kernels', async () => {
    const k = await kernelsUsed(reluModel);
    expect(k).toContain('BatchMatMul');
    expect(k).toContain('Relu');
    expect(k).toContain('ArgMax'); // the evaluation step (correctCount) is profiled too
    expect(k.length).toBeGreaterThan(3);
    for (const name of k) {
      expect(name).not.toMatch(/__op$/);
      expect(tf.getKernel(name, 'cpu'), name).toBeDefined();
    }
    expect([...k].sort()).toEqual(k);
    expect(new Set(k).size).toBe(k.length);
  });

  it('depends on the model: tanh instead of relu', async () => {
    const spec: ModelSpec = {
      layers: [
        { units: 4, activation: 'tanh' },
        { units: 3, activation: 'linear' },
      ],
      loss: 'softmaxCrossEntropy',
    };
    const k = await kernelsUsed(layoutModel(spec, 5, 3));
    expect(k).toContain('Tanh');
    expect(k).not.toContain('Relu');
  });

  it('restores the backend it found', async () => {
    await kernelsUsed(reluModel);
    expect(tf.getBackend()).toBe('cpu');
  });

  // Fails against kernel-check.ts as written: the forward pass and correctCount run outside
  // any tidy inside tf.profile, so their intermediates are never disposed (8 for this model).
  it('leaks no tensors', async () => {
    const before = tf.memory().numTensors;
    await kernelsUsed(reluModel);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('assertKernels', () => {
  const registered: string[] = [];
  let needed: string[] = [];
  const leftOut = 'Relu';

  beforeAll(async () => {
    needed = await kernelsUsed(reluModel);
    // A fake backend 'partial' that has every kernel the model needs but one.
    for (const kernelName of needed) {
      if (kernelName === leftOut) continue;
      tf.registerKernel({
        kernelName,
        backendName: 'partial',
        kernelFunc: () => ({ dataId: {}, shape: [], dtype: 'float32' }),
      });
      registered.push(kernelName);
    }
  });

  afterAll(() => {
    for (const k of registered) tf.unregisterKernel(k, 'partial');
  });

  it('passes on cpu', async () => {
    await expect(assertKernels(reluModel, 'cpu')).resolves.toBeUndefined();
  });

  it('throws KERNEL_MISSING naming the one kernel the backend lacks', async () => {
    expect(needed).toContain(leftOut);
    const e = await thrown(assertKernels(reluModel, 'partial'));
    expect(e.code).toBe('KERNEL_MISSING');
    expect(e.message).toContain(`kernel ${leftOut} `);
    expect(e.message).toContain('partial backend');
    for (const k of registered) expect(e.message).not.toMatch(new RegExp(`\\b${k}\\b`));
  });

  it('names every missing kernel on a backend that has none', async () => {
    const e = await thrown(assertKernels(reluModel, 'nothing-registered'));
    expect(e.code).toBe('KERNEL_MISSING');
    expect(e.message).toContain('kernels ');
    for (const k of needed) expect(e.message).toContain(k);
  });

  it('wasm: a gelu model passes (wasm has Erf and the other kernels it needs)', async () => {
    // Checked when this test was written: tfjs-backend-wasm 4.22 registers an Erf kernel.
    expect(tf.getKernel('Erf', 'wasm')).toBeDefined();
    const spec: ModelSpec = {
      layers: [
        { units: 4, activation: 'gelu' },
        { units: 3, activation: 'linear' },
      ],
      loss: 'softmaxCrossEntropy',
    };
    const gelu = layoutModel(spec, 5, 3);
    expect(await kernelsUsed(gelu)).toContain('Erf');
    await expect(assertKernels(gelu, 'wasm')).resolves.toBeUndefined();
  });
});

describe('the examples on cpu and wasm', () => {
  const dir = resolve(__dirname, '../../examples');
  // Examples whose data is not on this host still have a shape: the check needs no files.
  const examples = readdirSync(dir).filter((f) => f.endsWith('.json'));

  it.each(
    examples.flatMap((f) => [
      [f, 'cpu'],
      [f, 'wasm'],
    ]),
  )('examples/%s passes on %s', async (file, backend) => {
    const layout = jobLayout(parseConfig(exampleConfig(join(dir, file))));
    await expect(assertKernels(layout, backend)).resolves.toBeUndefined();
  });

  it.each(['cpu', 'wasm'])(
    'examples/custom (a Layers model.json on a dataset module) passes on %s',
    async (backend) => {
      const cfg = parseConfig(readConfigFile(join(dir, 'custom', 'job.json')));
      await prepareJob(cfg);
      await expect(assertKernels(jobLayout(cfg), backend)).resolves.toBeUndefined();
    },
  );

  it('a cnn on wasm: the filter gradient takes no Conv2DBackpropFilter there, but does as webgpu runs it', async () => {
    const layout = jobLayout(parseConfig(JSON.parse(readFileSync(join(dir, 'cnn-mnist.json'), 'utf8'))));
    expect(await kernelsUsed(layout, 'wasm')).not.toContain('Conv2DBackpropFilter');
    expect(await kernelsUsed(layout, 'wasm')).toContain('Conv2D');
    expect(await kernelsUsed(layout, 'webgpu')).toContain('Conv2DBackpropFilter'); // webgpu keeps TF.js's gradient
  });
});
