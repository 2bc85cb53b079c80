/**
 * conv2d whose filter gradient every backend can compute. The wasm backend has no
 * Conv2DBackpropFilter kernel, so there the filter gradient is itself a forward conv2d over
 * transposed tensors: for stride s,
 *   dW[i, j, c, k] = Σ_{n, y, x} xPadded[n, y·s + i, x·s + j, c] · dy[n, y, x, k]
 * which is a conv2d of xPadded seen as [c, H, W, n] (channels as the batch, the batch as
 * channels) with dy seen as a filter [outH, outW, n, k], dilated by s. The input gradient is
 * conv2dTranspose (Conv2DBackpropInput, which wasm has). Other backends keep TF.js's gradient.
 */
import * as tf from '@tensorflow/tfjs';
import { gradientBackend } from './forms.js';

export type Padding = 'same' | 'valid';

/** How a backend's conv2d filter gradient is taken. */
export type ConvGrad = 'builtin' | 'forward';

export const CONV_GRAD: Readonly<Record<string, ConvGrad>> = { wasm: 'forward', cpu: 'forward' };

export function convGradFor(backend: string): ConvGrad {
  return CONV_GRAD[backend] ?? 'builtin';
}

/** TensorFlow's padding: 'same' gives ceil(size / stride) outputs, the odd pixel at the end. */
export function convPads(
  size: number,
  kernel: number,
  stride: number,
  padding: Padding,
): { out: number; before: number; after: number } {
  if (padding === 'valid') return { out: Math.floor((size - kernel) / stride) + 1, before: 0, after: 0 };
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + kernel - size, 0);
  return { out, before: Math.floor(total / 2), after: total - Math.floor(total / 2) };
}

/** dW of a stride-s conv, through a forward conv2d (see the file comment). */
export function filterGradByForwardConv(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: [number, number, number, number],
  stride: number,
  padding: Padding,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [, h, w] = x.shape;
    const [kh, kw] = filterShape;
    const ph = convPads(h, kh, stride, padding);
    const pw = convPads(w, kw, stride, padding);
    const xp =
      padding === 'same' && ph.before + ph.after + pw.before + pw.after > 0
        ? tf.pad(x, [
            [0, 0],
            [ph.before, ph.after],
            [pw.before, pw.after],
            [0, 0],
          ])
        : x;
    const xt = tf.transpose(xp, [3, 1, 2, 0]) as tf.Tensor4D; // [c, H, W, n]
    const f = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D; // [outH, outW, n, k]
    const g = tf.conv2d(xt, f, 1, 'valid', 'NHWC', stride); // [c, ≥kh, ≥kw, k]
    const cut = g.shape[1] === kh && g.shape[2] === kw ? g : tf.slice(g, [0, 0, 0, 0], [-1, kh, kw, -1]);
    return tf.transpose(cut, [1, 2, 0, 3]); // [kh, kw, c, k]
  });
}

function forwardGradConv(stride: number, padding: Padding, constantX: boolean) {
  return tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [x, w, save] = args as [tf.Tensor4D, tf.Tensor4D, tf.GradSaveFunc];
    save([x, w]);
    return {
      value: tf.conv2d(x, w, stride, padding),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const g = dy as tf.Tensor4D;
        const [sx, sw] = saved as [tf.Tensor4D, tf.Tensor4D];
        const dx = constantX ? tf.zerosLike(sx) : tf.conv2dTranspose(g, sw, sx.shape, stride, padding);
        return [dx, filterGradByForwardConv(sx, g, sw.shape, stride, padding)];
      },
    };
  });
}

export interface Conv2dOptions {
  /** x is input data, not a function of any parameter: skip its gradient. */
  constantX?: boolean;
  /** Force a form (tests); default: the backend's entry in CONV_GRAD. */
  grad?: ConvGrad;
}

/** NHWC conv2d, filter [kh, kw, in, out], square stride, with a filter gradient the backend has. */
export function conv2d(
  x: tf.Tensor4D,
  w: tf.Tensor4D,
  stride: number,
  padding: Padding,
  o: Conv2dOptions = {},
): tf.Tensor4D {
  const form = o.grad ?? convGradFor(gradientBackend());
  if (form === 'builtin') return tf.conv2d(x, w, stride, padding);
  return forwardGradConv(stride, padding, o.constantX ?? false)(x, w) as tf.Tensor4D;
}
