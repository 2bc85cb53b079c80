import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Adam, type AdamHyper } from '../../coordinator/optimizers/adam.js';
import { Rng } from '../../shared/util/rng.js';

const f = Math.fround;
const HYPER: AdamHyper = { beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: 0 };

beforeAll(async () => {
  tf.enableProdMode();
  await tf.setBackend('cpu');
});

describe('Adam, worked by hand', () => {
  it('one parameter, two steps', () => {
    const adam = new Adam(HYPER, 1);
    const p = new Float32Array([1]);

    // Step 1, g = 0.5:
    //   m  = 0.9·0 + 0.1·0.5        = 0.05
    //   v  = 0.999·0 + 0.001·0.25   = 0.00025
    //   m̂  = 0.05 / (1 − 0.9)       = 0.5
    //   v̂  = 0.00025 / (1 − 0.999)  = 0.25,  √v̂ = 0.5
    //   p  = 1 − 0.1·0.5/(0.5 + 1e-7) = 1 − 0.1·0.9999998 = 0.90000002
    adam.apply(p, new Float32Array([0.5]), 0.1);
    expect(adam.state.m[0]).toBeCloseTo(0.05, 7);
    expect(adam.state.v[0]).toBeCloseTo(0.00025, 9);
    // Float32 tolerance: like tf.train.adam, the bias correction divides by 1 − fround(0.999)
    // = 0.00099998713, not 0.001 (cancellation: fround(0.999) is off by 1.3e-8, i.e. 1.3e-5
    // relative to 0.001), so √v̂ is off by ~6e-6 relative and p by up to ~1e-6 (actual: 6.7e-7).
    // Tolerance 5e-6 covers that and still rejects any real arithmetic mistake (≥ 1e-4 here).
    expect(p[0]).toBeCloseTo(0.90000002, 5);

    // Step 2, g = −0.25:
    //   m  = 0.9·0.05 + 0.1·(−0.25)          = 0.045 − 0.025 = 0.02
    //   v  = 0.999·0.00025 + 0.001·0.0625    = 0.00024975 + 0.0000625 = 0.00031225
    //   m̂  = 0.02 / (1 − 0.81)               = 0.02 / 0.19 = 0.1052632
    //   v̂  = 0.00031225 / (1 − 0.998001)     = 0.00031225 / 0.001999 = 0.1562031
    //   √v̂ = 0.3952254
    //   p  = 0.90000002 − 0.1·0.1052632/0.3952254 = 0.90000002 − 0.0266337 = 0.8733663
    // Same float32 cancellation in 1 − β2² as above (actual deviation 9e-7).
    adam.apply(p, new Float32Array([-0.25]), 0.1);
    expect(adam.state.m[0]).toBeCloseTo(0.02, 7);
    expect(adam.state.v[0]).toBeCloseTo(0.00031225, 9);
    expect(p[0]).toBeCloseTo(0.8733663, 5);
    expect(adam.state.step).toBe(2);
  });
});

describe('Adam against tf.train.adam', () => {
  it('is bit-identical over 5 steps on a 37-element vector (cpu backend)', () => {
    const n = 37;
    const lr = 0.01;
    const rng = new Rng(12345);
    const init = Float32Array.from({ length: n }, () => rng.uniform(-1, 1));
    const gradSteps = Array.from({ length: 5 }, () => Float32Array.from({ length: n }, () => rng.normal() * 0.1));

    const ours = init.slice();
    const adam = new Adam(HYPER, n);
    for (const g of gradSteps) adam.apply(ours, g, lr);

    const v = tf.variable(tf.tensor1d(init), true, 'adam_equiv_p');
    const opt = tf.train.adam(lr, HYPER.beta1, HYPER.beta2, HYPER.epsilon);
    for (const g of gradSteps) {
      const gt = tf.tensor1d(g);
      opt.applyGradients([{ name: v.name, tensor: gt }]);
      gt.dispose();
    }
    const theirs = v.dataSync() as Float32Array;
    v.dispose();
    opt.dispose();

    expect(ours).not.toEqual(init); // the parameters did move
    for (let i = 0; i < n; i++) {
      expect(Object.is(ours[i], theirs[i]), `element ${i}: ${ours[i]} vs ${theirs[i]}`).toBe(true);
    }
  });
});

describe('AdamW', () => {
  it('with a zero gradient only shrinks by (1 − lr·wd) in float32', () => {
    const lr = 0.1;
    const wd = 0.1;
    const adam = new Adam({ ...HYPER, weightDecay: wd }, 3);
    const p = new Float32Array([1, -2.5, 0.3]);
    const before = p.slice();
    adam.apply(p, new Float32Array(3), lr);
    // m = v = 0, so m̂ = 0 and Adam's own update is 0 / (0 + ε) = 0; only the decay acts:
    // factor = 1 − 0.1·0.1 = 0.99 (as a float32), p ← fround(p·0.99).
    const factor = f(1 - f(lr * wd));
    expect(factor).toBe(f(0.99));
    for (let i = 0; i < p.length; i++) expect(p[i]).toBe(f(before[i] * factor));
    expect(Array.from(adam.state.m)).toEqual([0, 0, 0]);
    expect(Array.from(adam.state.v)).toEqual([0, 0, 0]);
  });

  it('weightDecay 0 leaves the parameters alone when the gradient is 0', () => {
    const adam = new Adam(HYPER, 2);
    const p = new Float32Array([1, -2.5]);
    adam.apply(p, new Float32Array(2), 0.1);
    expect(Array.from(p)).toEqual([1, -2.5]);
  });
});

describe('Adam state', () => {
  it('counts steps and keeps the beta powers as repeated float32 products', () => {
    const hyper = { ...HYPER, beta1: 0.8, beta2: 0.95 };
    const adam = new Adam(hyper, 4);
    expect(adam.state.step).toBe(0);
    expect(adam.state.accBeta1).toBe(f(0.8));
    const p = new Float32Array(4);
    let acc1 = f(hyper.beta1);
    let acc2 = f(hyper.beta2);
    for (let t = 1; t <= 7; t++) {
      adam.apply(p, new Float32Array([0.1, -0.2, 0.3, 0]), 0.01);
      acc1 = f(acc1 * f(hyper.beta1)); // fround(beta1^(t+1)) by repeated float32 multiplication
      acc2 = f(acc2 * f(hyper.beta2));
      expect(adam.state.step).toBe(t);
      expect(adam.state.accBeta1).toBe(acc1);
      expect(adam.state.accBeta2).toBe(acc2);
    }
    expect(adam.state.accBeta1).toBeCloseTo(0.8 ** 8, 6);
  });

  it('resumes from a given state exactly as if never interrupted', () => {
    const grads = [0.5, -0.25, 0.125, 1].map((g) => new Float32Array([g, -g]));
    const straight = new Adam(HYPER, 2);
    const p1 = new Float32Array([1, 2]);
    for (const g of grads) straight.apply(p1, g, 0.05);

    const first = new Adam(HYPER, 2);
    const p2 = new Float32Array([1, 2]);
    for (const g of grads.slice(0, 2)) first.apply(p2, g, 0.05);
    const s = first.state;
    const resumed = new Adam(HYPER, 2, { ...s, m: s.m.slice(), v: s.v.slice() });
    for (const g of grads.slice(2)) resumed.apply(p2, g, 0.05);
    expect(Array.from(p2)).toEqual(Array.from(p1));
  });
});

describe('Adam SIMD kernel (WebAssembly, adam-simd.ts)', () => {
  /** Gradients with zeros, float32 denormals, huge and tiny values mixed in. */
  function nasty(n: number, seed: number): Float32Array {
    const rng = new Rng(seed);
    return Float32Array.from({ length: n }, (_, i) => {
      if (i % 11 === 3) return 0;
      if (i % 13 === 5) return (rng.next() < 0.5 ? -1 : 1) * 1e-40; // a float32 denormal
      return rng.normal() * 10 ** Math.floor(rng.uniform(-8, 4));
    });
  }

  it('is available here, and bit-identical to the scalar loop over 20 steps (sizes with and without a tail)', () => {
    for (const n of [1, 3, 4, 37, 1024, 4099]) {
      for (const hyper of [HYPER, { ...HYPER, weightDecay: 0.01 }]) {
        const simd = new Adam(hyper, n);
        const scalar = new Adam(hyper, n, undefined, { simd: false });
        expect(simd.simd).toBe(true);
        expect(scalar.simd).toBe(false);
        const init = nasty(n, n);
        const p1 = init.slice();
        const p2 = init.slice();
        for (let t = 0; t < 20; t++) {
          const g = nasty(n, 1000 * n + t);
          simd.apply(p1, g, 0.001 * (1 + (t % 3)));
          scalar.apply(p2, g, 0.001 * (1 + (t % 3)));
        }
        // Compare bit patterns: toEqual on floats would also accept -0 for 0.
        expect(new Uint32Array(p1.buffer)).toEqual(new Uint32Array(p2.buffer));
        expect(new Uint32Array(simd.state.v.slice().buffer)).toEqual(new Uint32Array(scalar.state.v.slice().buffer));
        expect(new Uint32Array(simd.state.m.slice().buffer)).toEqual(new Uint32Array(scalar.state.m.slice().buffer));
      }
    }
  });

  it('trains its own arrays in place, with the same result as copying in and out', () => {
    const n = 1001;
    const init = nasty(n, 7);
    const inPlace = new Adam(HYPER, n);
    inPlace.params.set(init);
    const copied = new Adam(HYPER, n);
    const p = init.slice();
    for (let t = 0; t < 5; t++) {
      const g = nasty(n, 70 + t);
      inPlace.grads.set(g);
      inPlace.apply(inPlace.params, inPlace.grads, 0.01);
      copied.apply(p, g, 0.01);
    }
    expect(Array.from(inPlace.params)).toEqual(Array.from(p));
    expect(() => inPlace.apply(new Float32Array(3), new Float32Array(3), 0.01)).toThrow(
      /3 params and 3 gradients for an optimizer of 1001/,
    );
  });
});
