/**
 * Refuse a model the chosen backend cannot run, before training starts. The wasm backend, for
 * one, has no Conv2DBackpropFilter or UnsortedSegmentSum kernel, so a kernel error would
 * otherwise surface mid-run. The kernels a model needs are found by running one tiny training
 * and evaluation step on the cpu backend (which has every kernel) under tf.profile.
 */
import * as tf from '@tensorflow/tfjs';
import { fail } from '../shared/util/errors.js';
import { modelKind, type AnyLayout } from '../shared/models/index.js';
import { withFormsOf } from '../shared/ops/forms.js';
import { batchTensors } from './batch.js';

/**
 * Kernels one training and evaluation step needs, with the ops taking the gradient forms they
 * take on `asBackend` (shared/ops/forms.ts: e.g. conv2d's filter gradient on wasm).
 */
export async function kernelsUsed(layout: AnyLayout, asBackend = 'cpu'): Promise<string[]> {
  const m = modelKind(layout.spec);
  const previous = tf.getBackend();
  await tf.setBackend('cpu');
  try {
    const info = await withFormsOf(asBackend, () =>
      tf.profile(() =>
        tf.tidy(() => {
          const params = layout.params.map((p) => tf.zeros(p.shape));
          const { x, y } = batchTensors(
            layout,
            2,
            new Float32Array(2 * layout.inputSize),
            new Float32Array(2 * layout.outputSize),
          );
          const f = (...ps: tf.Tensor[]) => m.lossSum(layout, m.forward(layout, ps, x), y);
          tf.valueAndGrads(f)(params);
          m.correctCount(layout, m.forward(layout, params, x), y);
        }),
      ),
    );
    // kernelNames also lists op scopes such as "logSoftmax__op"; keep the registered kernels.
    return [...new Set(info.kernelNames)].filter((k) => tf.getKernel(k, 'cpu') !== undefined).sort();
  } finally {
    await tf.setBackend(previous);
  }
}

export async function assertKernels(layout: AnyLayout, backend: string): Promise<void> {
  const needed = await kernelsUsed(layout, backend);
  const missing = needed.filter((k) => tf.getKernel(k, backend) === undefined);
  if (missing.length > 0) {
    fail(
      'KERNEL_MISSING',
      `the model needs kernel${missing.length > 1 ? 's' : ''} ${missing.join(', ')} that the ${backend} backend lacks; ` +
        'choose another --backend (cpu has every kernel) or change the model',
    );
  }
}
