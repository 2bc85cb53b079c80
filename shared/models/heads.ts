/**
 * What classifier and regressor kinds (dense, cnn) share: activations, the losses on their last
 * layer's output, and correct counts.
 */
import * as tf from '@tensorflow/tfjs';
import type { TargetKind } from '../datasets/dataset.js';
import { fail } from '../util/errors.js';

export const ACTIVATIONS = ['relu', 'tanh', 'sigmoid', 'gelu', 'linear'] as const;
export type Activation = (typeof ACTIVATIONS)[number];

/**
 * softmaxCrossEntropy and binaryCrossEntropy take logits: the last layer must be linear and
 * the loss applies softmax / sigmoid itself (numerically stable, as Keras `from_logits`).
 * The exported model gets that link function on its last layer, so it predicts probabilities.
 */
export const LOSSES = ['softmaxCrossEntropy', 'binaryCrossEntropy', 'meanSquaredError'] as const;
export type Loss = (typeof LOSSES)[number];

/** The link the exported last layer applies to the logits the loss was trained on. */
export const LINK = { softmaxCrossEntropy: 'softmax', binaryCrossEntropy: 'sigmoid', meanSquaredError: null } as const;

export function activate<T extends tf.Tensor>(x: T, a: Activation): T {
  switch (a) {
    case 'relu':
      return tf.relu(x);
    case 'tanh':
      return tf.tanh(x);
    case 'sigmoid':
      return tf.sigmoid(x);
    case 'gelu':
      // Exact GELU, x·Φ(x) (Hendrycks & Gimpel 2016), as Keras and tfjs-layers 'gelu'.
      return tf.mul(x, tf.mul(0.5, tf.add(1, tf.erf(tf.div(x, Math.SQRT2))))) as T;
    case 'linear':
      return x;
  }
}

export function parseActivation(v: unknown, field: string): Activation {
  const a = v ?? 'linear';
  if (!(ACTIVATIONS as readonly unknown[]).includes(a))
    fail('MODEL_INVALID', `${field} must be one of ${ACTIVATIONS.join(', ')}, got ${JSON.stringify(a)}`);
  return a as Activation;
}

/** What `model.loss` is when a dense or cnn model leaves it out (docs/config.md). */
export const DEFAULT_LOSS: Loss = 'softmaxCrossEntropy';

export function parseLoss(v: unknown, field: string): Loss {
  if (v === undefined) return DEFAULT_LOSS;
  if (!(LOSSES as readonly unknown[]).includes(v))
    fail('MODEL_INVALID', `${field} must be one of ${LOSSES.join(', ')}, got ${JSON.stringify(v)}`);
  return v as Loss;
}

/** A loss on logits needs a linear last layer; softmax needs two outputs at least. */
export function checkHead(loss: Loss, lastActivation: Activation, lastField: string): void {
  if (loss !== 'meanSquaredError' && lastActivation !== 'linear') {
    fail(
      'MODEL_INVALID',
      `${lastField}.activation must be "linear" with ${loss}: the loss applies ${loss === 'softmaxCrossEntropy' ? 'softmax' : 'sigmoid'} to the logits itself`,
    );
  }
}

/** Refuse data a classifier / regressor head cannot take (token targets, a softmax of one). */
export function checkTargets(loss: Loss, targets: TargetKind, outputs: number, kind: string): void {
  if (targets === 'tokens')
    fail('MODEL_INVALID', `model.kind ${kind} cannot train on token data (next-token targets); use model.kind gpt`);
  // A cross-entropy's sigmoid or softmax bounds the exported model's outputs to (0, 1): real targets cannot be met.
  if (targets === 'real' && loss !== 'meanSquaredError')
    fail(
      'MODEL_INVALID',
      `model.loss ${loss} is for classes; the data's targets are real numbers: use meanSquaredError`,
    );
  if (loss === 'softmaxCrossEntropy' && outputs < 2) {
    fail('MODEL_INVALID', 'model.loss softmaxCrossEntropy needs at least 2 outputs; use binaryCrossEntropy for one');
  }
}

/**
 * Sum over the batch of each sample's loss. A sample's loss averages over its output units
 * (as Keras does), so the mean of these over a batch equals tf.losses.* with default reduction.
 */
export function headLossSum(loss: Loss, outputSize: number, out: tf.Tensor, y: tf.Tensor): tf.Scalar {
  switch (loss) {
    case 'softmaxCrossEntropy':
      return tf.neg(tf.sum(tf.mul(y, tf.logSoftmax(out)))) as tf.Scalar;
    case 'binaryCrossEntropy': {
      // Stable sigmoid cross-entropy on logits: max(z,0) − z·y + log(1 + e^−|z|).
      const per = tf.add(tf.sub(tf.relu(out), tf.mul(out, y)), tf.log1p(tf.exp(tf.neg(tf.abs(out)))));
      return tf.div(tf.sum(per), outputSize) as tf.Scalar;
    }
    case 'meanSquaredError':
      return tf.div(tf.sum(tf.square(tf.sub(out, y))), outputSize) as tf.Scalar;
  }
}

/**
 * How many samples the model gets right, or null where the targets are real-valued.
 * Cross-entropy outputs are logits (threshold 0 for binary); MSE outputs are values (0.5).
 */
export function headCorrectCount(loss: Loss, targets: TargetKind, out: tf.Tensor, y: tf.Tensor): tf.Scalar | null {
  if (targets === 'real' || targets === 'tokens') return null;
  if (targets === 'onehot') return tf.sum(tf.cast(tf.equal(tf.argMax(out, 1), tf.argMax(y, 1)), 'int32')) as tf.Scalar;
  // Binary targets: a sample is right when every output unit is on the right side.
  const threshold = loss === 'binaryCrossEntropy' ? 0 : 0.5;
  const unitRight = tf.cast(tf.equal(tf.greater(out, threshold), tf.greater(y, 0.5)), 'int32');
  return tf.sum(tf.min(unitRight, 1)) as tf.Scalar;
}
