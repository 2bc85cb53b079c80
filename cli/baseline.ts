/**
 * The single-process TF.js training loop a user would write without dptrain — tfjs-layers
 * model, tf.train.adam, optimizer.minimize — for the same model, data order, batch and
 * backend. Scaling figures are speed-ups against this, measured in the same run.
 */
import * as tf from '@tensorflow/tfjs';
import type { Config } from '../shared/config.js';
import { gatherRows, loadDataset } from '../shared/datasets/index.js';
import { jobLayout } from '../shared/job-layout.js';
import { initParams, modelKind, paramView, type AnyLayout } from '../shared/models/index.js';
import { batchTensors } from '../worker/batch.js';
import { Sampler } from '../shared/sampler.js';
import { median } from '../coordinator/summary.js';

const LOSSES = {
  softmaxCrossEntropy: (y: tf.Tensor, out: tf.Tensor) => tf.losses.softmaxCrossEntropy(y, out),
  binaryCrossEntropy: (y: tf.Tensor, out: tf.Tensor) => tf.losses.sigmoidCrossEntropy(y, out),
  meanSquaredError: (y: tf.Tensor, out: tf.Tensor) => tf.losses.meanSquaredError(y, out),
};

/**
 * The model as a user would train it in one process, returning the step's loss: dense as a
 * tfjs-layers model, other kinds through their own TF.js graph over tf.variables.
 */
function singleProcessModel(layout: AnyLayout, init: Float32Array): { loss: (x: tf.Tensor, y: tf.Tensor) => tf.Scalar; dispose: () => void } {
  const spec = layout.spec;
  if (spec.kind === undefined || spec.kind === 'dense') {
    const model = tf.sequential();
    spec.layers.forEach((l, i) => model.add(tf.layers.dense({ units: l.units, activation: l.activation, ...(i === 0 ? { inputShape: [layout.inputSize] } : {}) })));
    model.setWeights(layout.params.map((p) => tf.tensor(paramView(init, p), p.shape)));
    const lossFn = LOSSES[spec.loss];
    return { loss: (x, y) => lossFn(y, model.apply(x) as tf.Tensor) as tf.Scalar, dispose: () => model.dispose() };
  }
  const m = modelKind(spec);
  const vars = layout.params.map((p) => tf.variable(tf.tensor(paramView(init, p), p.shape)));
  const perItem = m.flops(layout).itemsPerSample;
  return {
    loss: (x, y) => tf.div(m.lossSum(layout, m.forward(layout, vars, x), y), x.shape[0] * perItem) as tf.Scalar,
    dispose: () => tf.dispose(vars),
  };
}

/** Median samples/s over `steps` steps after `warmup` (the TF.js backend must already be set). */
export async function baselineSamplesPerSec(cfg: Config, batch: number, steps: number, warmup = 10): Promise<number> {
  const ds = loadDataset(cfg.data, cfg.seed);
  const layout = jobLayout(cfg);
  const model = singleProcessModel(layout, initParams(layout, cfg.seed));
  const opt = tf.train.adam(cfg.optimizer.lr, cfg.optimizer.beta1, cfg.optimizer.beta2, cfg.optimizer.epsilon);
  const sampler = new Sampler(ds.train.n, cfg.seed);
  const times: number[] = [];
  for (let s = 0; s < warmup + steps; s++) {
    const t0 = performance.now();
    const rows = sampler.rows(s * batch, (s + 1) * batch);
    const b = gatherRows(ds.train, ds.inputSize, ds.outputSize, rows);
    const { x, y } = batchTensors(layout, rows.length, b.x, b.y);
    const loss = opt.minimize(() => model.loss(x, y), true)!;
    await loss.data(); // the step is done when its loss is readable
    tf.dispose([x, y, loss]);
    if (s >= warmup) times.push(performance.now() - t0);
  }
  model.dispose();
  opt.dispose();
  return batch / (median(times)! / 1000);
}
