/** The small job the equivalence tests (cpu and webgpu workers) train against a single-process reference. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig } from '../../shared/job/config.js';
import { jobLayout } from '../../shared/job/job-layout.js';
import { initParams } from '../../shared/models/index.js';
import { tempDir } from './cli.js';

export const EQUIV_JOB = {
  seed: 7,
  data: { name: 'spirals', samples: 600, noise: 0.05 },
  model: {
    layers: [
      { units: 24, activation: 'tanh' },
      { units: 16, activation: 'relu' },
      { units: 2, activation: 'linear' },
    ],
    loss: 'softmaxCrossEntropy',
  },
  steps: 20,
  batchSize: 50, // 3 workers get shards of 17, 17 and 16
  evalEvery: 0,
  optimizer: { lr: 0.01 },
};

/** A small convolutional job on MNIST: same and valid padding, stride 2, both poolings. */
export const EQUIV_CNN_JOB = {
  seed: 5,
  data: { name: 'mnist' },
  model: {
    kind: 'cnn',
    layers: [
      { type: 'conv2d', filters: 4, kernel: 3, padding: 'same', activation: 'tanh' },
      { type: 'maxPool', size: 2 },
      { type: 'conv2d', filters: 6, kernel: 3, stride: 2, activation: 'relu' },
      { type: 'avgPool', size: 2 },
      { type: 'flatten' },
      { type: 'dense', units: 16, activation: 'tanh' },
      { type: 'dense', units: 10 },
    ],
    loss: 'softmaxCrossEntropy',
  },
  steps: 20,
  batchSize: 50,
  evalEvery: 0,
  optimizer: { lr: 0.01 },
};

/**
 * A small GPT on a small text. Adam's epsilon is 1e-4 here, not tf.train.adam's 1e-7: a GPT has
 * parameters whose true gradient is zero or nearly so (the key bias exactly: softmax ignores a
 * shift shared by a row of scores), and with epsilon 1e-7 Adam turns the float32 rounding noise
 * of those gradients, which any two correct implementations sum in different orders, into
 * updates. Measured with this job against the reference: 5.6e-5 at epsilon 1e-7 (1 worker;
 * worst: h_1/attn/qkv/bias, its key part), and with 2 workers 1.2e-5 at 1e-6, 5.5e-6 at 1e-5,
 * 1.8e-6 at 1e-4.
 */
export const equivGptJob = (textFile: string) => ({
  seed: 9,
  data: { name: 'text', path: textFile, testWindows: 4 },
  model: { kind: 'gpt', layers: 2, dModel: 16, heads: 2, seq: 8 },
  steps: 10,
  batchSize: 12,
  evalEvery: 0,
  optimizer: { lr: 0.01, epsilon: 1e-4 },
});

/**
 * The example's own Layers model (examples/custom: conv, pool, flatten, dense, softmax) with its
 * saved weights as the initialization, on its dataset module.
 */
export const equivLayersJob = (modelFile: string, dataModule: string) => ({
  seed: 4,
  data: { name: 'module', path: dataModule, options: { train: 400, test: 50 } },
  model: { kind: 'layers', path: modelFile },
  steps: 20,
  batchSize: 50,
  evalEvery: 0,
  optimizer: { lr: 0.01 },
});

/** A run directory with `job` written to job.json, its parsed config, parameter slots and initialization. */
export function equivalenceSetup(tag: string, job: object = EQUIV_JOB) {
  const dir = tempDir(tag);
  const file = join(dir, 'job.json');
  writeFileSync(file, JSON.stringify(job));
  const cfg = parseConfig(job);
  const layout = jobLayout(cfg);
  return { dir, file, cfg, slots: layout.params, init: initParams(layout, cfg.seed) };
}
