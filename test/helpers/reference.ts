/**
 * An independent single-process reference: the same model built with tfjs-layers, the same
 * initialization and data order, trained on the full global batch with tf.train.adam and the
 * tf.losses functions (mean reduction). dptrain with N workers must land on the same parameters.
 */
import * as tf from '@tensorflow/tfjs';

tf.enableProdMode();
import type { Config } from '../../shared/config.js';
import { gatherRows, loadDataset } from '../../shared/datasets/index.js';
import { initParams, layoutModel, paramView } from '../../shared/model-spec.js';
import { Sampler } from '../../shared/sampler.js';

export async function referenceTrain(cfg: Config, backend = 'cpu'): Promise<Float32Array> {
  await tf.setBackend(backend);
  const ds = loadDataset(cfg.data, cfg.seed);
  const layout = layoutModel(cfg.model, ds.inputSize, ds.outputSize);
  const init = initParams(layout, cfg.seed);
  const model = tf.sequential();
  cfg.model.layers.forEach((l, i) =>
    model.add(tf.layers.dense({ units: l.units, activation: l.activation, ...(i === 0 ? { inputShape: [ds.inputSize] } : {}) })),
  );
  model.setWeights(layout.params.map((p) => tf.tensor(paramView(init, p), p.shape)));
  const opt = tf.train.adam(cfg.optimizer.lr, cfg.optimizer.beta1, cfg.optimizer.beta2, cfg.optimizer.epsilon);
  const sampler = new Sampler(ds.train.n, cfg.seed);
  for (let s = 0; s < cfg.steps; s++) {
    const rows = sampler.rows(s * cfg.batchSize, (s + 1) * cfg.batchSize);
    const b = gatherRows(ds.train, ds.inputSize, ds.outputSize, rows);
    const x = tf.tensor2d(b.x, [rows.length, ds.inputSize]);
    const y = tf.tensor2d(b.y, [rows.length, ds.outputSize]);
    opt.minimize(() => {
      const out = model.apply(x) as tf.Tensor2D;
      switch (cfg.model.loss) {
        case 'softmaxCrossEntropy':
          return tf.losses.softmaxCrossEntropy(y, out) as tf.Scalar;
        case 'binaryCrossEntropy':
          return tf.losses.sigmoidCrossEntropy(y, out) as tf.Scalar;
        case 'meanSquaredError':
          return tf.losses.meanSquaredError(y, out) as tf.Scalar;
      }
    });
    tf.dispose([x, y]);
  }
  const out = new Float32Array(layout.totalParams);
  model.getWeights().forEach((w, i) => out.set(w.dataSync() as Float32Array, layout.params[i].offset));
  model.dispose();
  opt.dispose();
  return out;
}

/**
 * The max relative difference used by the equivalence tests: for each parameter tensor, the
 * largest absolute difference divided by the tensor's largest magnitude (‖a−b‖∞ / ‖b‖∞), and
 * the worst of these over tensors. Elementwise ratios are not used for the bound: Adam scales
 * each coordinate by 1/√v̂, so coordinates whose gradient is ~0 amplify float32 rounding noise
 * of the reduction order into differences that are tiny in absolute terms but not relative to
 * their (near-zero) own value.
 */
export function tensorRelDiff(a: Float32Array, b: Float32Array, slots: Array<{ offset: number; size: number }>): number {
  let worst = 0;
  for (const s of slots) {
    let diff = 0;
    let scale = 0;
    for (let i = s.offset; i < s.offset + s.size; i++) {
      diff = Math.max(diff, Math.abs(a[i] - b[i]));
      scale = Math.max(scale, Math.abs(b[i]));
    }
    worst = Math.max(worst, diff / Math.max(scale, 1e-12));
  }
  return worst;
}

/**
 * Largest elementwise difference relative to the magnitude of the reference value, with a
 * floor of 1e-3 so that entries that are (nearly) zero do not divide by zero.
 */
export function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), 1e-3));
  return worst;
}
