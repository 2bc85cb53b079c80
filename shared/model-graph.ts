/**
 * The TF.js graph a model spec describes: forward pass, per-sample losses and correctness.
 * Parameters are passed in (one tensor per ParamSlot), so gradients are taken with respect to
 * plain tensors and the worker keeps no optimizer state.
 */
import * as tf from '@tensorflow/tfjs';
import type { TargetKind } from './datasets/dataset.js';
import type { Activation, ModelLayout } from './model-spec.js';
import { matMul } from './ops/matmul.js';

function activate(x: tf.Tensor2D, a: Activation): tf.Tensor2D {
  switch (a) {
    case 'relu':
      return tf.relu(x);
    case 'tanh':
      return tf.tanh(x);
    case 'sigmoid':
      return tf.sigmoid(x);
    case 'gelu':
      // Exact GELU, x·Φ(x) (Hendrycks & Gimpel 2016), as Keras and tfjs-layers 'gelu'.
      return tf.mul(x, tf.mul(0.5, tf.add(1, tf.erf(tf.div(x, Math.SQRT2))))) as tf.Tensor2D;
    case 'linear':
      return x;
  }
}

/** Output of the last layer (logits for the cross-entropy losses). */
export function forward(layout: ModelLayout, params: tf.Tensor[], x: tf.Tensor2D): tf.Tensor2D {
  let h = x;
  layout.spec.layers.forEach((l, i) => {
    // The first layer's input is data: its gradient is never needed.
    const z = tf.add(matMul(h, params[2 * i], { constantA: i === 0 }), params[2 * i + 1]) as tf.Tensor2D;
    h = activate(z, l.activation);
  });
  return h;
}

/**
 * Sum over the batch of each sample's loss. A sample's loss averages over its output units
 * (as Keras does), so the mean of these over a batch equals tf.losses.* with default reduction.
 */
export function lossSum(layout: ModelLayout, out: tf.Tensor2D, y: tf.Tensor2D): tf.Scalar {
  switch (layout.spec.loss) {
    case 'softmaxCrossEntropy':
      return tf.neg(tf.sum(tf.mul(y, tf.logSoftmax(out)))) as tf.Scalar;
    case 'binaryCrossEntropy': {
      // Stable sigmoid cross-entropy on logits: max(z,0) − z·y + log(1 + e^−|z|).
      const per = tf.add(tf.sub(tf.relu(out), tf.mul(out, y)), tf.log1p(tf.exp(tf.neg(tf.abs(out)))));
      return tf.div(tf.sum(per), layout.outputSize) as tf.Scalar;
    }
    case 'meanSquaredError':
      return tf.div(tf.sum(tf.square(tf.sub(out, y))), layout.outputSize) as tf.Scalar;
  }
}

/**
 * How many samples the model gets right, or null where the targets are real-valued.
 * Cross-entropy outputs are logits (threshold 0 for binary); MSE outputs are values (0.5).
 */
export function correctCount(layout: ModelLayout, targets: TargetKind, out: tf.Tensor2D, y: tf.Tensor2D): tf.Scalar | null {
  if (targets === 'real') return null;
  if (targets === 'onehot') return tf.sum(tf.cast(tf.equal(tf.argMax(out, 1), tf.argMax(y, 1)), 'int32')) as tf.Scalar;
  // Binary targets: a sample is right when every output unit is on the right side.
  const threshold = layout.spec.loss === 'binaryCrossEntropy' ? 0 : 0.5;
  const unitRight = tf.cast(tf.equal(tf.greater(out, threshold), tf.greater(y, 0.5)), 'int32');
  return tf.sum(tf.min(unitRight, 1)) as tf.Scalar;
}
