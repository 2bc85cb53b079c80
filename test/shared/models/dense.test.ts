import { describe, expect, it } from 'vitest';
import { initParams, paramView, parseModelSpec, type ModelSpec } from '../../../shared/models/index.js';
import { expectCode } from '../../helpers/expect-code.js';
import { denseFor as layoutModel } from '../../helpers/layouts.js';

const SPEC: ModelSpec = parseModelSpec({
  layers: [
    { units: 256, activation: 'relu' },
    { units: 128, activation: 'relu' },
    { units: 10, activation: 'linear' },
  ],
  loss: 'softmaxCrossEntropy',
});

describe('layoutModel', () => {
  const layout = layoutModel(SPEC, 784, 10);

  it('lays out kernel [in, out] then bias [out] per layer, back to back', () => {
    expect(layout.totalParams).toBe(784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
    expect(layout.totalParams).toBe(235146);
    expect(layout.params.map((p) => [p.name, p.shape, p.offset, p.size])).toEqual([
      ['dense_0/kernel', [784, 256], 0, 200704],
      ['dense_0/bias', [256], 200704, 256],
      ['dense_1/kernel', [256, 128], 200960, 32768],
      ['dense_1/bias', [128], 233728, 128],
      ['dense_2/kernel', [128, 10], 233856, 1280],
      ['dense_2/bias', [10], 235136, 10],
    ]);
    expect([layout.inputSize, layout.outputSize]).toEqual([784, 10]);
  });

  it('rejects a last layer whose units differ from the dataset outputs', () => {
    expect(expectCode(() => layoutModel(SPEC, 784, 2), 'MODEL_INVALID')).toContain('model.layers[2].units');
  });

  it('rejects softmaxCrossEntropy with a single output', () => {
    const one = parseModelSpec({ layers: [{ units: 1, activation: 'linear' }], loss: 'softmaxCrossEntropy' });
    expectCode(() => layoutModel(one, 2, 1), 'MODEL_INVALID');
  });
});

describe('initParams', () => {
  const layout = layoutModel(SPEC, 784, 10);
  const a = initParams(layout, 42);

  it('is deterministic for a seed and different for another seed', () => {
    expect(a.length).toBe(layout.totalParams);
    expect(initParams(layout, 42)).toEqual(a);
    const b = initParams(layout, 43);
    let same = 0;
    for (let i = 0; i < a.length; i++) if (a[i] === b[i] && a[i] !== 0) same++;
    expect(same).toBeLessThan(10);
  });

  it('biases are exactly zero', () => {
    for (const p of layout.params.filter((s) => s.shape.length === 1)) {
      expect(paramView(a, p).every((v) => Object.is(v, 0))).toBe(true);
    }
  });

  it('kernels are Glorot uniform: within ±sqrt(6/(fanIn+fanOut)), variance ≈ limit²/3', () => {
    for (const p of layout.params.filter((s) => s.shape.length === 2)) {
      const v = paramView(a, p);
      const limit = Math.sqrt(6 / (p.shape[0] + p.shape[1]));
      let min = Infinity;
      let max = -Infinity;
      let sum = 0;
      let sumSq = 0;
      for (const x of v) {
        min = Math.min(min, x);
        max = Math.max(max, x);
        sum += x;
        sumSq += x * x;
      }
      expect(min).toBeGreaterThanOrEqual(-limit);
      expect(max).toBeLessThanOrEqual(limit);
      // Both ends of the range are actually reached (not e.g. [0, limit)).
      expect(min).toBeLessThan(-0.95 * limit);
      expect(max).toBeGreaterThan(0.95 * limit);
      const mean = sum / v.length;
      const variance = sumSq / v.length - mean * mean;
      // Relative standard error of the variance estimate is ≈ 0.9/sqrt(n): 5% is > 10 SE for the
      // two big kernels; the 1280-value last kernel gets a tolerance of 4 SE (10%).
      const tol = v.length >= 10_000 ? 0.05 : 0.1;
      expect(Math.abs(variance / ((limit * limit) / 3) - 1)).toBeLessThan(tol);
      expect(Math.abs(mean)).toBeLessThan(limit * 0.05);
    }
  });
});

describe('parseModelSpec', () => {
  const ok = { units: 4, activation: 'linear' };

  it('defaults a missing activation to linear', () => {
    expect(parseModelSpec({ layers: [{ units: 3 }], loss: 'meanSquaredError' })).toEqual({
      layers: [{ units: 3, activation: 'linear' }],
      loss: 'meanSquaredError',
    });
  });

  it('allows a non-linear last layer with meanSquaredError only', () => {
    expect(parseModelSpec({ layers: [{ units: 1, activation: 'sigmoid' }], loss: 'meanSquaredError' })).toMatchObject({
      layers: [{ activation: 'sigmoid' }],
    });
    expect(
      expectCode(
        () => parseModelSpec({ layers: [{ units: 1, activation: 'sigmoid' }], loss: 'binaryCrossEntropy' }),
        'MODEL_INVALID',
      ),
    ).toContain('model.layers[0].activation');
  });

  const bad: Array<[string, unknown, string]> = [
    ['not an object', [1], 'model'],
    ['empty layers', { layers: [], loss: 'meanSquaredError' }, 'model.layers'],
    ['units 0', { layers: [{ units: 0, activation: 'relu' }, ok], loss: 'meanSquaredError' }, 'model.layers[0].units'],
    [
      'units 1.5',
      { layers: [ok, { units: 1.5, activation: 'relu' }], loss: 'meanSquaredError' },
      'model.layers[1].units',
    ],
    ['units "4"', { layers: [{ units: '4' }], loss: 'meanSquaredError' }, 'model.layers[0].units'],
    [
      'unknown layer field',
      { layers: [ok, { units: 4, activation: 'relu', dropout: 0.5 }], loss: 'meanSquaredError' },
      'model.layers[1].dropout',
    ],
    [
      'unknown activation',
      { layers: [{ units: 4, activation: 'swish' }], loss: 'meanSquaredError' },
      'model.layers[0].activation',
    ],
    ['unknown loss', { layers: [ok], loss: 'hinge' }, 'model.loss'],
  ];

  it.each(bad)('rejects %s with MODEL_INVALID naming the field', (_name, raw, field) => {
    expect(expectCode(() => parseModelSpec(raw), 'MODEL_INVALID')).toContain(field);
  });
});
