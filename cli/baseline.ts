/**
 * The single-process TF.js training loop a user would write without dptrain — tfjs-layers
 * model, tf.train.adam, optimizer.minimize — for the same model, data order, batch and
 * backend. Scaling figures are speed-ups against this, measured in the same run.
 */
import * as tf from '@tensorflow/tfjs';
import type { Config } from '../shared/config.js';
import { gatherRows, loadDataset } from '../shared/datasets/index.js';
import { initParams, layoutModel, paramView } from '../shared/model-spec.js';
import { Sampler } from '../shared/sampler.js';
import { median } from '../coordinator/summary.js';

const LOSSES = {
  softmaxCrossEntropy: (y: tf.Tensor, out: tf.Tensor) => tf.losses.softmaxCrossEntropy(y, out),
  binaryCrossEntropy: (y: tf.Tensor, out: tf.Tensor) => tf.losses.sigmoidCrossEntropy(y, out),
  meanSquaredError: (y: tf.Tensor, out: tf.Tensor) => tf.losses.meanSquaredError(y, out),
};

/** Median samples/s over `steps` steps after `warmup` (the TF.js backend must already be set). */
export async function baselineSamplesPerSec(cfg: Config, batch: number, steps: number, warmup = 10): Promise<number> {
  const ds = loadDataset(cfg.data, cfg.seed);
  const layout = layoutModel(cfg.model, ds.inputSize, ds.outputSize);
  const model = tf.sequential();
  cfg.model.layers.forEach((l, i) => model.add(tf.layers.dense({ units: l.units, activation: l.activation, ...(i === 0 ? { inputShape: [ds.inputSize] } : {}) })));
  const init = initParams(layout, cfg.seed);
  model.setWeights(layout.params.map((p) => tf.tensor(paramView(init, p), p.shape)));
  const opt = tf.train.adam(cfg.optimizer.lr, cfg.optimizer.beta1, cfg.optimizer.beta2, cfg.optimizer.epsilon);
  const sampler = new Sampler(ds.train.n, cfg.seed);
  const lossFn = LOSSES[cfg.model.loss];
  const times: number[] = [];
  for (let s = 0; s < warmup + steps; s++) {
    const t0 = performance.now();
    const rows = sampler.rows(s * batch, (s + 1) * batch);
    const b = gatherRows(ds.train, ds.inputSize, ds.outputSize, rows);
    const x = tf.tensor2d(b.x, [rows.length, ds.inputSize]);
    const y = tf.tensor2d(b.y, [rows.length, ds.outputSize]);
    const loss = opt.minimize(() => lossFn(y, model.apply(x) as tf.Tensor) as tf.Scalar, true)!;
    await loss.data(); // the step is done when its loss is readable
    tf.dispose([x, y, loss]);
    if (s >= warmup) times.push(performance.now() - t0);
  }
  model.dispose();
  opt.dispose();
  return batch / (median(times)! / 1000);
}
