/**
 * Child process of test/worker/webgpu-trainer.test.ts (it needs the SwiftShader environment
 * from the start, see helpers/webgpu.ts): a few Trainer steps and a calibration on webgpu,
 * counting live tensors around them, then the same gradients on cpu. Prints one JSON line.
 */
import * as tf from '@tensorflow/tfjs';
import { parseConfig } from '../../shared/job/config.js';
import { loadDataset } from '../../shared/datasets/index.js';
import { initParams, layoutModel } from '../../shared/models/index.js';
import { selectBackend } from '../../worker/backend.js';
import { calibrate } from '../../worker/calibrate.js';
import { Trainer } from '../../worker/trainer.js';
import { tensorRelDiff } from './reference.js';

const cfg = parseConfig({
  seed: 3,
  data: { name: 'spirals', samples: 400 },
  model: {
    layers: [{ units: 32, activation: 'tanh' }, { units: 16, activation: 'gelu' }, { units: 2 }],
    loss: 'softmaxCrossEntropy',
  },
});
const ds = loadDataset(cfg.data, cfg.seed);
const layout = layoutModel(cfg.model, ds);
const params = initParams(layout, cfg.seed);

const choice = await selectBackend('webgpu', { allowSoftwareGpu: true });
const gpu = new Trainer(layout, ds, cfg.seed);
gpu.setParams(0, params);
const first = await gpu.gradients(0, 64); // compiles the shaders
const before = tf.memory().numTensors;
for (let i = 1; i <= 3; i++) await gpu.gradients(i * 64, (i + 1) * 64);
await gpu.evaluate(0, 50);
const cal = await calibrate('webgpu', 100);
const leaked = tf.memory().numTensors - before;

await tf.setBackend('cpu');
const cpu = new Trainer(layout, ds, cfg.seed);
cpu.setParams(0, params);
const ref = await cpu.gradients(0, 64);

process.stdout.write(
  JSON.stringify({
    backend: choice.name,
    adapter: choice.adapter ?? null,
    leaked,
    calibrationN: cal.n,
    calibrationGflops: cal.flopsPerSec / 1e9,
    gradRelDiff: tensorRelDiff(first.grads, ref.grads, layout.params),
    lossRelDiff: Math.abs(first.lossSum - ref.lossSum) / Math.abs(ref.lossSum),
  }) + '\n',
);
process.exit(0);
