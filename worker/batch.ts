import * as tf from '@tensorflow/tfjs';
import type { AnyLayout } from '../shared/models/index.js';

/**
 * A batch as the model takes it: inputs [n, ...inputShape] in the data's dtype (float32
 * features, int32 token ids), targets [n, outputSize] (int32 for next-token ids).
 */
export function batchTensors(
  layout: AnyLayout,
  n: number,
  x: Float32Array | Int32Array,
  y: Float32Array | Int32Array,
): { x: tf.Tensor; y: tf.Tensor } {
  const { inputDtype, targets } = layout.data;
  const xs = tf.tensor(
    inputDtype === 'int32' && x instanceof Float32Array ? Int32Array.from(x) : x,
    [n, ...layout.inputShape],
    inputDtype,
  );
  const ys = tf.tensor(
    targets === 'tokens' && y instanceof Float32Array ? Int32Array.from(y) : y,
    [n, layout.outputSize],
    targets === 'tokens' ? 'int32' : 'float32',
  );
  return { x: xs, y: ys };
}
