/**
 * The trainer and the shape of the model's output: every pass compares forward's output with
 * the kind's outputShape (a wrong width would broadcast in the loss and train on nonsense), and
 * evaluation passes are bounded by output values, not only by items (a large vocabulary's logits).
 */
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { dataset, type DataShape, type Split } from '../../shared/datasets/dataset.js';
import { loadDataset } from '../../shared/datasets/index.js';
import { dense } from '../../shared/models/dense.js';
import { gpt } from '../../shared/models/gpt.js';
import { initParams, layoutModel, modelKind, parseModelSpec } from '../../shared/models/index.js';
import { DptrainError } from '../../shared/util/errors.js';
import { EVAL_OUTPUT_FLOATS, evalChunkRows, Trainer } from '../../worker/trainer.js';

beforeAll(async () => {
  tf.enableProdMode();
  await tf.setBackend('cpu');
});

afterEach(() => {
  vi.restoreAllMocks();
});

async function failure(p: Promise<unknown>): Promise<DptrainError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(DptrainError);
  return e as DptrainError;
}

describe('a forward pass of the wrong shape is one MODEL_INVALID line', () => {
  const ds = loadDataset({ name: 'spirals', samples: 40, noise: 0.05, testFraction: 0.2 }, 1);
  const spec = parseModelSpec({ layers: [{ units: 4, activation: 'tanh' }, { units: 2 }] });
  const layout = layoutModel(spec, ds);
  const trainer = () => {
    const t = new Trainer(layout, ds, 1);
    t.setParams(0, initParams(layout, 1));
    return t;
  };
  const forward = dense.forward;
  /** forward's output cut to one column, or doubled to twice its width. */
  const wrong = (width: 'narrow' | 'wide') =>
    vi
      .spyOn(dense, 'forward')
      .mockImplementation((l, p, x) =>
        width === 'narrow'
          ? tf.slice(forward(l, p, x), [0, 0], [-1, 1])
          : tf.concat([forward(l, p, x), forward(l, p, x)], 1),
      );

  it('training, narrow (which would give loss 0) or wide', async () => {
    wrong('narrow');
    const t = trainer();
    const e = await failure(t.gradients(0, 8));
    expect([e.code, e.message]).toEqual([
      'MODEL_INVALID',
      'model kind dense: forward returned [8, 1]; expected [8, 2]',
    ]);
    vi.restoreAllMocks();
    wrong('wide');
    expect((await failure(t.gradients(0, 8))).message).toBe(
      'model kind dense: forward returned [8, 4]; expected [8, 2]',
    );
    t.dispose();
  });

  it('a pass over several leaves, and evaluation', async () => {
    wrong('narrow');
    const t = trainer();
    expect((await failure(t.leafGradients(0, [0, 3, 8]))).message).toBe(
      'model kind dense: forward returned [8, 1]; expected [8, 2]',
    );
    expect((await failure(t.evaluate(0, ds.test.n))).message).toBe(
      `model kind dense: forward returned [${ds.test.n}, 1]; expected [${ds.test.n}, 2]`,
    );
    t.dispose();
  });

  it('a forward of the right shape trains as before', async () => {
    const t = trainer();
    const r = await t.gradients(0, 8);
    expect(Number.isFinite(r.lossSum) && r.lossSum > 0).toBe(true);
    t.dispose();
  });
});

describe('evaluation passes are bounded by output values', () => {
  const SEQ = 16;
  const VOCAB = 20_000;
  const tokenSplit = (n: number, seed: number): Split => {
    const x = Float32Array.from({ length: n * SEQ }, (_, i) => (i * 7919 + seed) % VOCAB);
    const y = Float32Array.from({ length: n * SEQ }, (_, i) => (i * 104_729 + seed) % VOCAB);
    return { x, y, n };
  };
  const shape: DataShape = { inputShape: [SEQ], inputDtype: 'int32', outputSize: SEQ, targets: 'tokens', vocab: VOCAB };
  const ds = dataset('tokens', shape, tokenSplit(8, 1), tokenSplit(14, 2));
  const layout = layoutModel(parseModelSpec({ kind: 'gpt', layers: 1, dModel: 8, heads: 2, seq: SEQ }), shape);

  // 14 rows of 16 × 20,000 logits are just past the bound: one pass without it, two with it.
  it('a large vocabulary: no pass holds more than EVAL_OUTPUT_FLOATS logits; the sums are those of a row at a time', async () => {
    const spy = vi.spyOn(gpt, 'forward');
    const t = new Trainer(layout, ds, 1);
    t.setParams(0, initParams(layout, 1));
    const whole = await t.evaluate(0, ds.test.n);
    const rows = spy.mock.calls.map(([, , x]) => x.shape[0]);
    expect(rows.reduce((a, b) => a + b, 0)).toBe(ds.test.n);
    for (const r of rows) expect(r * SEQ * VOCAB).toBeLessThanOrEqual(EVAL_OUTPUT_FLOATS);
    let one = 0;
    for (let i = 0; i < ds.test.n; i++) one += (await t.evaluate(i, i + 1)).lossSum;
    expect(Math.abs(whole.lossSum - one)).toBeLessThanOrEqual(1e-5 * Math.abs(one));
    expect(whole.count).toBe(ds.test.n);
    t.dispose();
  });

  it('usual sizes keep their chunks: 2048 samples, or 2048 tokens of a small vocabulary', () => {
    const spirals = loadDataset({ name: 'spirals', samples: 40, noise: 0.05, testFraction: 0.2 }, 1);
    const d = layoutModel(parseModelSpec({ layers: [{ units: 2 }] }), spirals);
    expect(evalChunkRows(modelKind(d.spec), d)).toBe(2048);
    const small = layoutModel(parseModelSpec({ kind: 'gpt', layers: 1, dModel: 8, heads: 2, seq: 64 }), {
      ...shape,
      inputShape: [64],
      outputSize: 64,
      vocab: 256,
    });
    expect(evalChunkRows(gpt as never, small)).toBe(32);
    expect(evalChunkRows(modelKind(layout.spec), layout)).toBe(Math.floor(EVAL_OUTPUT_FLOATS / (SEQ * VOCAB)));
  });
});
