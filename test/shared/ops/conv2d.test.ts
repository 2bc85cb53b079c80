/**
 * conv2d's filter gradient as a forward convolution (shared/ops/conv2d.ts) against TF.js's own
 * Conv2DBackpropFilter on the cpu backend: on cpu itself, and computed on wasm (which lacks that
 * kernel, the reason the form exists).
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conv2d, convGradFor, convPads, type Padding } from '../../../shared/ops/conv2d.js';

type Case = [h: number, w: number, k: number, stride: number, padding: Padding];
const CASES: Case[] = [
  [12, 12, 3, 1, 'same'],
  [12, 10, 5, 1, 'valid'],
  [13, 13, 3, 2, 'same'],
  [14, 11, 3, 2, 'valid'],
  [9, 9, 4, 3, 'same'],
];

interface Grads {
  dx: Float32Array;
  dw: Float32Array;
}

/** Inputs from a seed, and the gradients of Σ conv² on the current backend. */
function grads([h, w, k, stride, padding]: Case, form: 'builtin' | 'forward'): Grads {
  return tf.tidy(() => {
    const x = tf.randomNormal([3, h, w, 2], 0, 1, 'float32', 11);
    const f = tf.randomNormal([k, k, 2, 4], 0, 1, 'float32', 12);
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.square(conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, padding, { grad: form }))),
    )([x, f]);
    return { dx: dx.dataSync() as Float32Array, dw: dw.dataSync() as Float32Array };
  });
}

/** ‖a − b‖∞ / ‖b‖∞ */
function rel(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / m;
}

let reference: Grads[];

beforeAll(async () => {
  tf.enableProdMode();
  await tf.setBackend('cpu');
  reference = CASES.map((c) => grads(c, 'builtin'));
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

describe('conv2d filter gradient through a forward convolution', () => {
  it('TF padding: same gives ceil(n / stride) outputs, the odd pixel after', () => {
    expect(convPads(28, 3, 1, 'same')).toEqual({ out: 28, before: 1, after: 1 });
    expect(convPads(13, 4, 2, 'same')).toEqual({ out: 7, before: 1, after: 2 });
    expect(convPads(14, 3, 2, 'valid')).toEqual({ out: 6, before: 0, after: 0 });
  });

  it.each(CASES.map((c, i) => [c.join(' '), i]))(
    'on cpu, %s: equals Conv2DBackpropFilter (≤ 1e-5 relative)',
    async (_, i) => {
      const ours = grads(CASES[i as number], 'forward');
      const ref = reference[i as number];
      expect(rel(ours.dw, ref.dw)).toBeLessThanOrEqual(1e-5);
      expect(rel(ours.dx, ref.dx)).toBeLessThanOrEqual(1e-6);
    },
  );

  it.each(CASES.map((c, i) => [c.join(' '), i]))(
    'on wasm, %s: equals cpu Conv2DBackpropFilter (≤ 1e-5 relative)',
    async (_, i) => {
      await tf.setBackend('wasm');
      expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined(); // why this form exists
      expect(convGradFor('wasm')).toBe('forward');
      const ours = grads(CASES[i as number], 'forward');
      const ref = reference[i as number];
      const d = rel(ours.dw, ref.dw);
      console.log(`wasm ${CASES[i as number].join(' ')}: filter gradient ${d.toExponential(2)} from cpu's`);
      expect(d).toBeLessThanOrEqual(1e-5);
      expect(rel(ours.dx, ref.dx)).toBeLessThanOrEqual(1e-5);
      await tf.setBackend('cpu');
    },
  );
});
