/**
 * matMul whose gradient runs on each backend's fast kernels.
 *
 * The gradient TF.js registers for BatchMatMul calls matMul with transposeA / transposeB set.
 * On the wasm backend (tfjs-backend-wasm 4.22) only the flag-free form reaches XNNPACK; with a
 * flag set it runs a plain loop. So there the gradient is taken as matMul(dy, transpose(b)) and
 * matMul(transpose(a), dy): the transposes are exact copies, and the products differ from the
 * flagged ones by float32 rounding only (summation order).
 *
 * Which form a backend gets is decided by measurement (`dptrain profile`, and the figures kept
 * beside each entry below), never by guess; a backend not listed keeps TF.js's own gradient.
 */
import * as tf from '@tensorflow/tfjs';
import { gradientBackend, scopedSetting } from './forms.js';

/** How a backend's matMul gradient is taken. */
export type MatMulGrad = 'flags' | 'materialize';

/**
 * Measured on the 2-core development machine, TF.js 4.22 (docs/performance.md has the tables):
 *   wasm:   2048×512ᵀ · 2048×128, flags 288 ms, materialized transpose 20.5 ms; a whole worker
 *           step of the reference MLP at batch 128: 352 ms → 34 ms → materialize
 *   cpu:    the same product, flags 368 ms, materialized 437 ms (the cpu transpose is itself a
 *           JavaScript loop); whole steps within noise of each other (1,300 / 1,256 ms) → flags
 *   webgpu: SwiftShader, whole step 3,705 ms with flags, 5,032 ms materialized (its Transpose
 *           alone 1,305 ms) → flags; not yet measured on a hardware GPU
 */
export const MATMUL_GRAD: Readonly<Record<string, MatMulGrad>> = {
  wasm: 'materialize',
  cpu: 'flags',
  webgpu: 'flags',
};

/** Swap the last two axes (a rank-2 or batched rank-3+ matrix). */
function swapLast(t: tf.Tensor): tf.Tensor {
  const r = t.rank;
  if (r === 2) return tf.transpose(t);
  const perm = Array.from({ length: r }, (_, i) => i);
  perm[r - 2] = r - 1;
  perm[r - 1] = r - 2;
  return tf.transpose(t, perm);
}

/** a · b, gradients with respect to both operands through flag-free matMuls. */
const materializedBoth = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [a, b, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const g = dy as tf.Tensor;
      const [sa, sb] = saved;
      return [tf.matMul(g, swapLast(sb)), tf.matMul(swapLast(sa), g)];
    },
  };
});

/**
 * a · b where a is data (the model's input), so no gradient flows into it: customGrad must
 * return one per input, and a zero of a's shape costs a fill, not the product dy · bᵀ.
 */
const materializedRight = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [a, b, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
  save([a]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const [sa] = saved;
      return [tf.zerosLike(sa), tf.matMul(swapLast(sa), dy as tf.Tensor)];
    },
  };
});

export interface MatMulOptions {
  /** a is input data, not a function of any parameter: skip its gradient where that is cheaper. */
  constantA?: boolean;
  /** Force a form (tests, profiles); default: the entry in MATMUL_GRAD of the backend whose forms are asked for (forms.ts). */
  grad?: MatMulGrad;
}

/** The gradient form for a backend: its measured entry, else TF.js's own. */
export function matMulGradFor(backend: string): MatMulGrad {
  return MATMUL_GRAD[backend] ?? 'flags';
}

/** Set only while withMatMulGrad runs: profiles and benchmarks compare the two forms. */
const forced = scopedSetting<MatMulGrad>();

/** Run fn with every matMul in it taking its gradient in `form`, whatever the backend. */
export function withMatMulGrad<T>(form: MatMulGrad, fn: () => Promise<T>): Promise<T> {
  return forced.during(form, fn);
}

/** The form a matMul with these options takes its gradient in, here and now. */
export function matMulForm(o: MatMulOptions = {}): MatMulGrad {
  return o.grad ?? forced.get() ?? matMulGradFor(gradientBackend());
}

/** dL/db of a · b given dy, rank 2, in a form: what TF.js's gradient (flags) or ours computes. */
export function matMulGradB(form: MatMulGrad, a: tf.Tensor2D, dy: tf.Tensor2D): tf.Tensor2D {
  return form === 'flags' ? tf.matMul(a, dy, true, false) : tf.matMul(tf.transpose(a), dy);
}

/** dL/da of a · b given dy, rank 2, in a form. */
export function matMulGradA(form: MatMulGrad, b: tf.Tensor2D, dy: tf.Tensor2D): tf.Tensor2D {
  return form === 'flags' ? tf.matMul(dy, b, false, true) : tf.matMul(dy, tf.transpose(b));
}

/** a · b (rank 2, or batched with equal leading dimensions), with the backend's fast gradient. */
export function matMul<T extends tf.Tensor>(a: T, b: tf.Tensor, o: MatMulOptions = {}): T {
  const form = matMulForm(o);
  if (form === 'flags') return tf.matMul(a, b) as T;
  return (o.constantA ? materializedRight(a, b) : materializedBoth(a, b)) as T;
}
