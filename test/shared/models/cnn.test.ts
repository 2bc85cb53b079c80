import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseConfig } from '../../../shared/job/config.js';
import { jobLayout } from '../../../shared/job/job-layout.js';
import { modelKind, parseModelSpec } from '../../../shared/models/index.js';
import { expectCode } from '../../helpers/expect-code.js';

const CONV = { type: 'conv2d', filters: 4, kernel: 3, padding: 'same', activation: 'relu' };
const HEAD = [{ type: 'flatten' }, { type: 'dense', units: 10 }];
const cnn = (layers: unknown[]) => ({ kind: 'cnn', layers, loss: 'softmaxCrossEntropy' });
const refused = (model: unknown) => expectCode(() => parseModelSpec(model), 'MODEL_INVALID');
const job = (model: unknown, data: unknown = { name: 'mnist' }) => jobLayout(parseConfig({ data, model }));

describe('cnn config: one line naming the field', () => {
  it('an unknown layer type', () => {
    expect(refused(cnn([{ type: 'conv3d' }, ...HEAD]))).toContain(
      'model.layers[0].type must be one of conv2d, maxPool, avgPool, flatten, dense',
    );
  });
  it('a dense layer before flatten', () => {
    expect(refused(cnn([CONV, { type: 'dense', units: 10 }]))).toContain('model.layers[1] is dense before any flatten');
  });
  it('no dense layer after flatten, or none at all', () => {
    expect(refused(cnn([CONV, { type: 'flatten' }]))).toContain(
      'must end with {"type": "flatten"} and at least one dense layer',
    );
  });
  it('a conv after flatten', () => {
    expect(refused(cnn([{ type: 'flatten' }, CONV, { type: 'dense', units: 10 }]))).toContain(
      'model.layers[1].type is conv2d after flatten',
    );
  });
  it('a bad field of a conv layer, and an unknown one', () => {
    expect(refused(cnn([{ ...CONV, padding: 'full' }, ...HEAD]))).toContain(
      'model.layers[0].padding must be "same" or "valid"',
    );
    expect(refused(cnn([{ ...CONV, filters: 0 }, ...HEAD]))).toContain('model.layers[0].filters');
    expect(refused(cnn([{ ...CONV, dilation: 2 }, ...HEAD]))).toContain(
      'model.layers[0].dilation is not a config field',
    );
  });
  it('a dense layer after flatten is named by its place in the list', () => {
    expect(refused(cnn([CONV, { type: 'flatten' }, { type: 'dense', units: 0 }]))).toContain('model.layers[2].units');
  });
  it('a non-linear last layer with a cross-entropy loss', () => {
    expect(refused(cnn([CONV, { type: 'flatten' }, { type: 'dense', units: 10, activation: 'relu' }]))).toContain(
      'model.layers[2].activation must be "linear"',
    );
  });
  it('a convolution that does not fit the image', () => {
    const msg = expectCode(() => job(cnn([{ ...CONV, kernel: 29, padding: 'valid' }, ...HEAD])), 'MODEL_INVALID');
    expect(msg).toContain('model.layers[0]');
  });
  it('a cnn on data that is not images', () => {
    const msg = expectCode(
      () => job(cnn([CONV, { type: 'flatten' }, { type: 'dense', units: 2 }]), { name: 'spirals' }),
      'MODEL_INVALID',
    );
    expect(msg).toContain('model.kind cnn needs images [height, width, channels]');
  });
  it('a last layer whose units differ from the classes', () => {
    expect(
      expectCode(() => job(cnn([CONV, { type: 'flatten' }, { type: 'dense', units: 7 }])), 'MODEL_INVALID'),
    ).toContain('model.layers[2].units is 7 but the dataset has 10 outputs');
  });
});

describe('cnn layout and FLOPs', () => {
  const example = JSON.parse(readFileSync(resolve(__dirname, '../../../examples/cnn-mnist.json'), 'utf8'));
  const layout = job(example.model);

  it('names slots as Keras does and takes 28×28×1 images', () => {
    expect(layout.inputShape).toEqual([28, 28, 1]);
    expect(layout.params.map((p) => [p.name, p.shape])).toEqual([
      ['conv2d_0/kernel', [3, 3, 1, 16]],
      ['conv2d_0/bias', [16]],
      ['conv2d_1/kernel', [3, 3, 16, 32]],
      ['conv2d_1/bias', [32]],
      ['dense_0/kernel', [7 * 7 * 32, 64]],
      ['dense_0/bias', [64]],
      ['dense_1/kernel', [64, 10]],
      ['dense_1/bias', [10]],
    ]);
  });

  it('counts FLOPs layer by layer', () => {
    const conv1 = 28 * 28 * (2 * 9 * 1 * 16 + 16 * 2);
    const pool1 = 4 * 14 * 14 * 16;
    const conv2 = 14 * 14 * (2 * 9 * 16 * 32 + 32 * 2);
    const pool2 = 4 * 7 * 7 * 32;
    const dense = 2 * 1568 * 64 + 64 * 2 + 2 * 64 * 10 + 10;
    const f = modelKind(layout.spec).flops(layout);
    expect(f.forward).toBe(conv1 + pool1 + conv2 + pool2 + dense + 10);
    expect(f.training).toBe(3 * f.forward);
    expect(f.unit).toBe('sample');
  });
});
