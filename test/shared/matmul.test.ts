/**
 * The fast-gradient matMul: the same product and, to float32 rounding, the same gradients as
 * TF.js's own, on every backend this machine runs (cpu, wasm), in both forms.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { matMul, matMulGradFor, withMatMulGrad, type MatMulGrad } from '../../shared/ops/matmul.js';
import { withFormsOf } from '../../shared/ops/forms.js';

/** ‖a − b‖ / ‖b‖ over all elements. */
function relDiff(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

function seeded(shape: number[], seed: number): tf.Tensor {
  return tf.randomUniform(shape, -1, 1, 'float32', seed);
}

/** Value and gradients of sum(w ⊙ (a·b)) with respect to a and b, in one form. */
function valueAndGrads(form: MatMulGrad, a: tf.Tensor, b: tf.Tensor, w: tf.Tensor, constantA = false) {
  return tf.tidy(() => {
    const f = (x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(w, matMul(x, y, { grad: form, constantA }))) as tf.Scalar;
    const { value, grads } = tf.valueAndGrads(f)([a, b]);
    return {
      value: value.dataSync()[0],
      da: grads[0].dataSync() as Float32Array,
      db: grads[1].dataSync() as Float32Array,
    };
  });
}

const SHAPES: Array<{ name: string; a: number[]; b: number[] }> = [
  { name: 'rank 2', a: [37, 53], b: [53, 29] },
  { name: 'batched rank 3', a: [3, 17, 24], b: [3, 24, 11] },
];

describe.each(['cpu', 'wasm'])('matMul on %s', (backend) => {
  beforeAll(async () => {
    tf.enableProdMode();
    await tf.setBackend(backend);
  });
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  it.each(SHAPES)(
    "$name: materialized gradients equal TF.js's to float32 rounding, the product exactly",
    ({ a: sa, b: sb }) => {
      const [a, b] = [seeded(sa, 1), seeded(sb, 2)];
      const w = seeded([...sa.slice(0, -1), sb[sb.length - 1]], 3);
      const flags = valueAndGrads('flags', a, b, w);
      const fast = valueAndGrads('materialize', a, b, w);
      expect(fast.value).toBe(flags.value); // the forward product is the same call
      expect(relDiff(fast.da, flags.da)).toBeLessThan(1e-6);
      expect(relDiff(fast.db, flags.db)).toBeLessThan(1e-6);
      // and they are gradients at all: not zero, not the same array twice
      expect(relDiff(fast.da, new Float32Array(fast.da.length))).toBeGreaterThan(0);
      expect(fast.da.length).toBe(a.size);
      expect(fast.db.length).toBe(b.size);
      tf.dispose([a, b, w]);
    },
  );

  it('constantA: b gets the same gradient, a gets none', () => {
    const [a, b, w] = [seeded([20, 30], 4), seeded([30, 10], 5), seeded([20, 10], 6)];
    const both = valueAndGrads('materialize', a, b, w);
    const right = valueAndGrads('materialize', a, b, w, true);
    expect(right.db).toEqual(both.db);
    expect(right.da.every((x) => x === 0)).toBe(true);
    tf.dispose([a, b, w]);
  });

  it('withMatMulGrad forces a form for its duration only', async () => {
    const seen: string[] = [];
    const probe = () => {
      // the materialized form adds Transpose kernels to the gradient; the flag form does not
      const [a, b] = [seeded([8, 6], 7), seeded([6, 4], 8)];
      const before = tf.memory().numTensors;
      tf.dispose(tf.tidy(() => tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(matMul(x, y)))([a, b])));
      seen.push(String(tf.memory().numTensors - before));
      tf.dispose([a, b]);
    };
    const kernels = async (form: MatMulGrad) =>
      (await tf.profile(() => withMatMulGrad(form, async () => probe()))).kernelNames;
    expect(await kernels('materialize')).toContain('Transpose');
    expect(await kernels('flags')).not.toContain('Transpose');
    expect(seen).toEqual(['0', '0']); // nothing leaks in either form
  });
});

describe('the per-backend choice', () => {
  it('wasm materializes the transposes (its flagged matMul misses XNNPACK); cpu keeps the flags', () => {
    expect(matMulGradFor('wasm')).toBe('materialize');
    expect(matMulGradFor('cpu')).toBe('flags');
    expect(matMulGradFor('some-new-backend')).toBe('flags');
  });
});

describe("another backend's forms (the kernel check profiles on cpu as wasm would run)", () => {
  it('withFormsOf(wasm) makes matMul on cpu take the materialized gradient', async () => {
    await tf.setBackend('cpu');
    const probe = () => {
      const [a, b] = [seeded([8, 6], 9), seeded([6, 4], 10)];
      tf.dispose(tf.tidy(() => tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(matMul(x, y)))([a, b])));
      tf.dispose([a, b]);
    };
    expect((await tf.profile(probe)).kernelNames).not.toContain('Transpose');
    expect((await tf.profile(() => withFormsOf('wasm', async () => probe()))).kernelNames).toContain('Transpose');
  });
});
