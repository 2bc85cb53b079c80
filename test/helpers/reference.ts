/**
 * An independent single-process reference: the same model built with tfjs-layers, the same
 * initialization and data order, trained on the full global batch with tf.train.adam and the
 * tf.losses functions (mean reduction). dptrain with N workers must land on the same parameters.
 */
import * as tf from '@tensorflow/tfjs';

tf.enableProdMode();
import type { Config } from '../../shared/job/config.js';
import { gatherRows, loadDataset, type Dataset } from '../../shared/datasets/index.js';
import { jobLayout, prepareJob } from '../../shared/job/job-layout.js';
import { initParams, paramView, type ModelSpec } from '../../shared/models/index.js';
import type { GptSpec } from '../../shared/models/gpt.js';
import type { LayersSpec } from '../../shared/models/layers.js';
import { Sampler } from '../../shared/job/sampler.js';
import { gptReferenceTrain } from './gpt-reference.js';
import { loadLayersReference, layersReferenceLoss } from './layers-reference.js';

/** The model as tfjs-layers layers, read from the spec here (not through the model kind's own toLayers). */
function referenceModel(spec: Exclude<ModelSpec, GptSpec | LayersSpec>, ds: Dataset): tf.Sequential {
  const model = tf.sequential();
  if (spec.kind === 'cnn') {
    spec.layers.forEach((f, i) => {
      const first = i === 0 ? { inputShape: ds.inputShape } : {};
      if (f.type === 'conv2d')
        model.add(
          tf.layers.conv2d({
            filters: f.filters,
            kernelSize: f.kernel,
            strides: f.stride,
            padding: f.padding,
            activation: f.activation,
            ...first,
          }),
        );
      else if (f.type === 'maxPool')
        model.add(tf.layers.maxPooling2d({ poolSize: f.size, strides: f.stride, ...first }));
      else if (f.type === 'avgPool')
        model.add(tf.layers.averagePooling2d({ poolSize: f.size, strides: f.stride, ...first }));
      else if (f.type === 'flatten') model.add(tf.layers.flatten(first));
      else if (f.type === 'dense') model.add(tf.layers.dense({ units: f.units, activation: f.activation }));
    });
    return model;
  }
  spec.layers.forEach((l, i) => {
    model.add(
      tf.layers.dense({ units: l.units, activation: l.activation, ...(i === 0 ? { inputShape: [ds.inputSize] } : {}) }),
    );
  });
  return model;
}

export async function referenceTrain(cfg: Config, backend = 'cpu'): Promise<Float32Array> {
  await tf.setBackend(backend);
  const spec = cfg.model;
  if (spec.kind === 'gpt') return gptReferenceTrain(cfg, spec);
  await prepareJob(cfg);
  const ds = loadDataset(cfg.data, cfg.seed);
  const layout = jobLayout(cfg);
  const init = initParams(layout, cfg.seed);
  // A Layers model with weights in its file starts from them, as tfjs-layers loads them.
  const own = spec.kind === 'layers' ? await loadLayersReference(spec.path, spec.loss) : null;
  const model = own?.model ?? referenceModel(spec as Exclude<ModelSpec, GptSpec | LayersSpec>, ds);
  if (!own?.hasWeights) model.setWeights(layout.params.map((p) => tf.tensor(paramView(init, p), p.shape)));
  if (own) own.checkOrder(layout.params.map((p) => p.name));
  const opt = tf.train.adam(cfg.optimizer.lr, cfg.optimizer.beta1, cfg.optimizer.beta2, cfg.optimizer.epsilon);
  const sampler = new Sampler(ds.train.n, cfg.seed);
  for (let s = 0; s < cfg.steps; s++) {
    const rows = sampler.rows(s * cfg.batchSize, (s + 1) * cfg.batchSize);
    const b = gatherRows(ds.train, ds.inputSize, ds.outputSize, rows);
    const x = tf.tensor(b.x, [
      rows.length,
      ...(spec.kind === 'cnn' || spec.kind === 'layers' ? ds.inputShape : [ds.inputSize]),
    ]);
    const y = tf.tensor2d(b.y, [rows.length, ds.outputSize]);
    opt.minimize(() => {
      const out = model.apply(x) as tf.Tensor2D;
      if (spec.kind === 'layers') return layersReferenceLoss(own!.loss, y, out);
      switch (spec.loss) {
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
  model.getWeights().forEach((w, i) => {
    out.set(w.dataSync() as Float32Array, layout.params[i].offset);
  });
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
export function tensorRelDiff(
  a: Float32Array,
  b: Float32Array,
  slots: Array<{ offset: number; size: number }>,
): number {
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
