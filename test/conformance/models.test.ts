/**
 * Every registered model kind against the model-kind contract (shared/models/contract.ts), on a
 * small job of its own (test/helpers/fixtures.ts), on the cpu backend. What data parallelism
 * relies on is checked here for every kind: loss sums and gradients of two shards add up to
 * those of the whole batch, and every parameter slot gets a gradient of its own shape.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../shared/job/config.js';
import { gatherRows } from '../../shared/datasets/index.js';
import { jobLayout, loadJobData, prepareJob } from '../../shared/job/job-layout.js';
import { parseDataSpec } from '../../shared/datasets/index.js';
import { initParams, MODEL_KINDS, modelKind, paramView, parseModelSpec } from '../../shared/models/index.js';
import { batchTensors } from '../../worker/batch.js';
import { joinParts } from '../../worker/tensor-memory.js';
import { Trainer } from '../../worker/trainer.js';
import { assertKernels } from '../../worker/kernel-check.js';
import { expectCode } from '../helpers/expect-code.js';
import { MODEL_FIXTURES } from '../helpers/fixtures.js';

beforeAll(async () => {
  tf.enableProdMode();
  await tf.setBackend('cpu');
});

// What a job imports (a dataset module) is imported before the suites below read it.
for (const kind of MODEL_KINDS)
  if (MODEL_FIXTURES[kind]) await prepareJob({ data: parseDataSpec(MODEL_FIXTURES[kind].data) });

const relClose = (a: number, b: number, tol: number) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

describe.each(MODEL_KINDS.map((k) => [k]))('model kind %s', (kind) => {
  const fixture = MODEL_FIXTURES[kind];

  it('has a conformance fixture', () => {
    expect(fixture, `add ${kind} to MODEL_FIXTURES in test/helpers/fixtures.ts`).toBeDefined();
  });
  if (!fixture) return;
  const raw = { ...fixture.model, ...(kind === 'dense' ? {} : { kind }) };
  const cfg = parseConfig({ seed: 3, data: fixture.data, model: raw });
  const m = modelKind(cfg.model);
  const layout = jobLayout(cfg);
  const ds = loadJobData(cfg);
  const params = initParams(layout, cfg.seed);
  const n = 8;
  const batch = (from: number, to: number) => {
    const rows = Array.from({ length: to - from }, (_, i) => from + i);
    const b = gatherRows(ds.train, ds.inputSize, ds.outputSize, rows);
    return batchTensors(layout, rows.length, b.x, b.y);
  };
  const tensors = () => layout.params.map((s) => tf.tensor(paramView(params, s), s.shape));

  it('is registered under its own name', () => {
    expect(m.kind).toBe(kind);
  });

  it('parses its own parsed spec to the same spec', () => {
    expect(parseModelSpec(JSON.parse(JSON.stringify(cfg.model)))).toEqual(cfg.model);
  });

  it('refuses an unknown field, naming it', () => {
    expect(expectCode(() => parseModelSpec({ ...raw, colour: 1 }), 'MODEL_INVALID')).toContain('model.colour');
  });

  it('lays its slots out back to back with unique names', () => {
    let offset = 0;
    for (const s of layout.params) {
      expect(s.offset).toBe(offset);
      expect(s.size).toBe(s.shape.reduce((a, b) => a * b, 1));
      offset += s.size;
    }
    expect(layout.totalParams).toBe(offset);
    expect(new Set(layout.params.map((s) => s.name)).size).toBe(layout.params.length);
    expect(layout.inputShape.reduce((a, b) => a * b, 1)).toBe(layout.inputSize);
    expect(layout.outputSize).toBe(layout.data.outputSize);
  });

  it('initializes from the seed: finite, deterministic, seed-dependent', () => {
    expect(params.length).toBe(layout.totalParams);
    expect(params.every(Number.isFinite)).toBe(true);
    expect(initParams(layout, cfg.seed)).toEqual(params);
    expect(initParams(layout, cfg.seed + 1)).not.toEqual(params);
    expect(params.some((v) => v !== 0)).toBe(true);
  });

  it('loss sums and gradients of two shards add up to the whole batch', () => {
    const sums = (from: number, to: number) =>
      tf.tidy(() => {
        const { x, y } = batch(from, to);
        const { value, grads } = tf.valueAndGrads((...ps: tf.Tensor[]) =>
          m.lossSum(layout, m.forward(layout, ps, x), y),
        )(tensors());
        layout.params.forEach((s, i) => {
          expect(grads[i].shape).toEqual(s.shape);
        });
        return { loss: value.dataSync()[0], grads: grads.map((g) => g.dataSync() as Float32Array) };
      });
    const whole = sums(0, n);
    const a = sums(0, 3);
    const b = sums(3, n);
    expect(Number.isFinite(whole.loss) && whole.loss > 0).toBe(true);
    expect(relClose(a.loss + b.loss, whole.loss, 1e-5)).toBe(true);
    layout.params.forEach((s, i) => {
      const g = whole.grads[i];
      expect(g.every(Number.isFinite), s.name).toBe(true);
      expect(
        g.some((v) => v !== 0),
        `${s.name} gets a gradient`,
      ).toBe(true);
      const scale = Math.max(...g.map(Math.abs));
      for (let j = 0; j < g.length; j++)
        expect(Math.abs(a.grads[i][j] + b.grads[i][j] - g[j])).toBeLessThanOrEqual(1e-5 * scale);
    });
  });

  it('batches leaves only where each leaf of a pass gets its own gradients, bit for bit', async () => {
    const trainer = new Trainer(layout, ds, cfg.seed);
    trainer.setParams(0, params);
    try {
      const r = await trainer.leafGradients(0, [0, 3, 4, n]);
      expect(r !== null).toBe(m.batchesLeaves(layout));
      if (!r) return;
      const leaves = [0, 3, 4, n];
      for (let i = 0; i < 3; i++) {
        const alone = await trainer.gradients(leaves[i], leaves[i + 1]);
        const got = joinParts(r.grads.map((g) => g[i].dataSync() as Float32Array));
        expect(Buffer.from(got.buffer).equals(Buffer.from(alone.grads.buffer)), `leaf ${i}`).toBe(true);
        expect(r.losses[i]).toBe(alone.lossSum);
      }
      r.dispose();
    } finally {
      trainer.dispose();
    }
  });

  it('states the shape its forward pass returns (what the worker checks every pass against)', () => {
    const shape = tf.tidy(() => m.forward(layout, tensors(), batch(0, 3).x).shape);
    expect(shape).toEqual(m.outputShape(layout, 3));
  });

  it('counts correct answers within the batch, or none for real-valued and next-token targets', () => {
    const r = tf.tidy(() => {
      const { x, y } = batch(0, n);
      return m.correctCount(layout, m.forward(layout, tensors(), x), y) ?? tf.scalar(-1);
    });
    const v = r.dataSync()[0];
    r.dispose();
    const c = v === -1 ? null : v;
    if (layout.data.targets === 'real' || layout.data.targets === 'tokens') expect(c).toBeNull();
    else {
      expect(Number.isInteger(c)).toBe(true);
      expect(c).toBeGreaterThanOrEqual(0);
      expect(c).toBeLessThanOrEqual(n * m.flops(layout).itemsPerSample);
    }
  });

  it('states its FLOPs', () => {
    const f = m.flops(layout);
    expect(f.forward).toBeGreaterThan(0);
    expect(f.training).toBeGreaterThan(f.forward);
    expect(f.itemsPerSample).toBeGreaterThanOrEqual(1);
    if (f.unit === 'sample') expect(f.itemsPerSample).toBe(1);
    expect(f.describe).toMatch(/parameters/);
  });

  it('exports as tfjs-layers with weights in slot order and the same predictions (after the link)', () => {
    const model = m.toLayers(layout);
    if (!model) return; // saved as raw slots instead (coordinator/model-export.ts)
    const ws = tensors();
    expect(model.getWeights().map((w) => w.shape)).toEqual(layout.params.map((s) => s.shape));
    model.setWeights(ws);
    const [ours, theirs] = tf.tidy(() => {
      const { x } = batch(0, n);
      const logits = m.forward(layout, ws, x);
      const loss = (cfg.model as { loss?: string }).loss;
      const linked =
        loss === 'softmaxCrossEntropy'
          ? tf.softmax(logits)
          : loss === 'binaryCrossEntropy'
            ? tf.sigmoid(logits)
            : logits;
      return [linked.dataSync(), (model.predict(x) as tf.Tensor).dataSync()];
    });
    expect(theirs.length).toBe(ours.length);
    for (let i = 0; i < ours.length; i++) expect(Math.abs(theirs[i] - ours[i])).toBeLessThanOrEqual(1e-5);
    model.dispose();
    tf.dispose(ws);
  });

  it('passes the kernel check on cpu', async () => {
    await expect(assertKernels(layout, 'cpu')).resolves.toBeUndefined();
  });
});

it('an unknown model.kind lists the known ones', () => {
  const msg = expectCode(() => parseModelSpec({ kind: 'rnn', layers: [] }), 'MODEL_INVALID');
  for (const k of MODEL_KINDS) expect(msg).toContain(k);
});
