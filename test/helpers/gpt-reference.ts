/**
 * An independent single-process GPT for the equivalence tests, written here from the model's
 * definition (nanoGPT's model.py), not from shared/models/gpt.ts, and in other TF.js forms:
 * tf.gather embeddings, tf.moments LayerNorm, tf.split into q, k, v, 4-D heads, matMul with
 * transpose flags, tf.linalg.bandPart for the causal mask, tf.losses.softmaxCrossEntropy over
 * all B·T positions; parameters as tf.variables, trained with tf.train.adam on the full batch.
 * Only the initialization (initParams) and the data order are shared with dptrain.
 */
import * as tf from '@tensorflow/tfjs';
import type { Config } from '../../shared/job/config.js';
import { gatherRows } from '../../shared/datasets/index.js';
import { jobLayout, loadJobData } from '../../shared/job/job-layout.js';
import type { GptSpec } from '../../shared/models/gpt.js';
import { initParams, paramView } from '../../shared/models/index.js';
import { Sampler } from '../../shared/job/sampler.js';

type P = Record<string, tf.Variable>;

function layerNorm(x: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), g), b);
}

function gelu(x: tf.Tensor): tf.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
}

/** Logits [B, T, V] of ids [B, T]. */
function gptLogits(spec: GptSpec, p: P, ids: tf.Tensor2D): tf.Tensor3D {
  const [b, t] = ids.shape;
  const d = spec.dModel;
  const h = spec.heads;
  let x = tf.add(tf.gather(p.wte, ids), p.wpe) as tf.Tensor3D; // [B, T, d]
  const causal = tf.linalg.bandPart(tf.ones([t, t]), -1, 0); // 1 on and below the diagonal
  for (let l = 0; l < spec.layers; l++) {
    const w = (n: string) => p[`h_${l}/${n}`];
    const a = layerNorm(x, w('ln_1/gain'), w('ln_1/bias'));
    const qkv = tf.add(tf.matMul(tf.reshape(a, [b * t, d]), w('attn/qkv/kernel')), w('attn/qkv/bias'));
    const [q, k, v] = tf.split(qkv, 3, 1).map((z) => tf.transpose(tf.reshape(z, [b, t, h, d / h]), [0, 2, 1, 3])); // [B, H, T, Q]
    const att = tf.div(tf.matMul(q, k, false, true), Math.sqrt(d / h));
    const masked = tf.where(tf.equal(causal, 1), att, tf.fill(att.shape, -Infinity));
    const y = tf.reshape(tf.transpose(tf.matMul(tf.softmax(masked), v), [0, 2, 1, 3]), [b * t, d]);
    x = tf.add(
      x,
      tf.reshape(tf.add(tf.matMul(y, w('attn/proj/kernel')), w('attn/proj/bias')), [b, t, d]),
    ) as tf.Tensor3D;
    const m = tf.reshape(layerNorm(x, w('ln_2/gain'), w('ln_2/bias')), [b * t, d]);
    const fc = gelu(tf.add(tf.matMul(m, w('mlp/fc/kernel')), w('mlp/fc/bias')));
    x = tf.add(
      x,
      tf.reshape(tf.add(tf.matMul(fc, w('mlp/proj/kernel')), w('mlp/proj/bias')), [b, t, d]),
    ) as tf.Tensor3D;
  }
  const f = tf.reshape(layerNorm(x, p['ln_f/gain'], p['ln_f/bias']), [b * t, d]);
  return tf.reshape(tf.matMul(f, p.wte, false, true), [b, t, -1]);
}

export async function gptReferenceTrain(cfg: Config, spec: GptSpec): Promise<Float32Array> {
  const layout = jobLayout(cfg);
  const ds = loadJobData(cfg);
  const init = initParams(layout, cfg.seed);
  const vars: P = Object.fromEntries(
    layout.params.map((s) => [s.name, tf.variable(tf.tensor(paramView(init, s), s.shape))]),
  );
  const vocab = layout.params[0].shape[0];
  const opt = tf.train.adam(cfg.optimizer.lr, cfg.optimizer.beta1, cfg.optimizer.beta2, cfg.optimizer.epsilon);
  const sampler = new Sampler(ds.train.n, cfg.seed);
  for (let s = 0; s < cfg.steps; s++) {
    const rows = sampler.rows(s * cfg.batchSize, (s + 1) * cfg.batchSize);
    const bt = gatherRows(ds.train, ds.inputSize, ds.outputSize, rows);
    const ids = tf.tensor2d(Int32Array.from(bt.x), [rows.length, spec.seq], 'int32');
    const labels = tf.oneHot(tf.tensor1d(Int32Array.from(bt.y), 'int32'), vocab);
    opt.minimize(
      () => tf.losses.softmaxCrossEntropy(labels, tf.reshape(gptLogits(spec, vars, ids), [-1, vocab])) as tf.Scalar,
    );
    tf.dispose([ids, labels]);
  }
  const out = new Float32Array(layout.totalParams);
  for (const s of layout.params) out.set(vars[s.name].dataSync() as Float32Array, s.offset);
  tf.dispose(Object.values(vars));
  opt.dispose();
  return out;
}
