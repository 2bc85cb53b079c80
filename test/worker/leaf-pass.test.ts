/**
 * Several leaves in one pass (shared/ops/leaf-pass.ts): each leaf's gradient and loss sums are
 * those of a pass over its rows alone, bit for bit, on cpu and wasm; and what a worker sends
 * for a range of leaves is the same bytes through one pass as through a pass per leaf.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDataset, type Dataset } from '../../shared/datasets/index.js';
import { addInto, coverNodes, leafStart, nodeSum } from '../../shared/job/shard-tree.js';
import { initParams, layoutModel, modelKind, parseModelSpec, type AnyLayout } from '../../shared/models/index.js';
import { joinParts } from '../../worker/tensor-memory.js';
import { shardSums, Trainer, type LeafRange } from '../../worker/trainer.js';
import { tempDir } from '../helpers/cli.js';

const SEED = 5;

/** The same bytes: −0 and 0 differ. */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  const bytes = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  return Buffer.compare(bytes(a), bytes(b)) === 0;
}

const spirals = loadDataset({ name: 'spirals', samples: 1200, noise: 0.05, testFraction: 0.1 }, SEED);
const xor = loadDataset({ name: 'xor' }, SEED);

/** A dense-only tfjs-layers model (no bias on its hidden layer) as `layers` kind reads it. */
function layersFile(): string {
  const m = tf.sequential();
  m.add(tf.layers.dense({ inputShape: [2], units: 24, activation: 'relu', useBias: false, name: 'h' }));
  m.add(tf.layers.dense({ units: 24, activation: 'tanh', name: 'g' }));
  m.add(tf.layers.dense({ units: 2, activation: 'softmax', name: 'out' }));
  const file = join(tempDir('leaf-pass'), 'model.json');
  writeFileSync(file, JSON.stringify({ format: 'layers-model', modelTopology: m.toJSON(undefined, false) }));
  return file;
}

interface Case {
  name: string;
  ds: Dataset;
  model: () => unknown;
}

const CASES: Case[] = [
  {
    name: 'dense relu, softmaxCrossEntropy',
    ds: spirals,
    model: () => ({
      layers: [
        { units: 48, activation: 'relu' },
        { units: 40, activation: 'gelu' },
        { units: 2, activation: 'linear' },
      ],
      loss: 'softmaxCrossEntropy',
    }),
  },
  {
    name: 'dense tanh, binaryCrossEntropy',
    ds: xor,
    model: () => ({ layers: [{ units: 16, activation: 'tanh' }, { units: 1 }], loss: 'binaryCrossEntropy' }),
  },
  {
    name: 'dense sigmoid, meanSquaredError',
    ds: xor,
    model: () => ({
      layers: [
        { units: 16, activation: 'sigmoid' },
        { units: 1, activation: 'sigmoid' },
      ],
      loss: 'meanSquaredError',
    }),
  },
  { name: 'layers, dense only', ds: spirals, model: () => ({ kind: 'layers', path: layersFile() }) },
];

/** Leaf bounds within a pass: `leaves` leaves of `rows` rows, the first `extra` one row longer. */
function bounds(leaves: number, rows: number, extra = 0): number[] {
  return Array.from({ length: leaves + 1 }, (_, i) => i * rows + Math.min(i, extra));
}

describe.each(['cpu', 'wasm'])('leaves in one pass on %s', (backend) => {
  beforeAll(async () => {
    tf.enableProdMode();
    await tf.setBackend(backend);
  });
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  describe.each(CASES)('$name', (c) => {
    let layout: AnyLayout;
    let trainer: Trainer;
    beforeAll(() => {
      layout = layoutModel(parseModelSpec(c.model()), c.ds);
      trainer = new Trainer(layout, c.ds, SEED);
      trainer.setParams(0, initParams(layout, SEED));
    });
    afterAll(() => trainer.dispose());

    it('the model says it batches leaves', () => {
      expect(modelKind(layout.spec).batchesLeaves(layout)).toBe(true);
    });

    // Rows per leaf as a worker meets them (16–128), leaf counts 1–8, uneven cuts, any offset.
    it.each([
      [1, 32, 0, 0],
      [2, 16, 0, 7],
      [3, 32, 0, 100],
      [4, 32, 0, 0],
      [5, 17, 3, 40],
      [8, 16, 0, 11],
      [2, 64, 0, 0],
      [2, 128, 0, 5],
      [7, 4, 2, 0],
    ])(
      '%i leaves of %i rows (+1 for the first %i), from %i: each leaf as its own pass',
      async (k, rows, extra, from) => {
        const b = bounds(k, rows, extra);
        const r = await trainer.leafGradients(from, b);
        expect(r).not.toBeNull();
        try {
          for (let i = 0; i < k; i++) {
            const alone = await trainer.gradients(from + b[i], from + b[i + 1]);
            const leaf = r!.grads.map((perSlot) => perSlot[i].dataSync() as Float32Array);
            expect(sameBits(joinParts(leaf), alone.grads), `leaf ${i} gradients`).toBe(true);
            expect(Math.fround(r!.losses[i])).toBe(Math.fround(alone.lossSum));
          }
        } finally {
          r!.dispose();
        }
      },
    );

    it('can tell: a pass over two leaves at once sums their rows otherwise', async () => {
      const r = await trainer.leafGradients(0, [0, 64]);
      const halves = [await trainer.gradients(0, 32), await trainer.gradients(32, 64)];
      addInto(halves[0].grads, halves[1].grads);
      const whole = joinParts(r!.grads.map((g) => g[0].dataSync() as Float32Array));
      r!.dispose();
      expect(sameBits(whole, halves[0].grads)).toBe(false);
    });

    // What the worker sends: node sums over the tree, one pass against one pass per leaf.
    it.each([
      [0, 4, 16, false],
      [4, 8, 16, false],
      [2, 7, 16, false],
      [3, 6, 12, true],
      [0, 12, 12, false],
    ])('leaves [%i, %i) of %i (16-bit wire: %s) send the same bytes', async (first, last, leaves, leavesOnly) => {
      const batch = 16 * leaves + 5;
      const w: LeafRange = { from: 300, leaves, first, last, batch };
      const r = await shardSums(trainer, w, leavesOnly);
      const got = joinParts(r.parts).slice();
      const losses = r.losses;
      r.release();
      const start = (i: number) => w.from + leafStart(batch, leaves, i) - leafStart(batch, leaves, first);
      const want: Float32Array[] = [];
      const wantLosses: number[] = [];
      for (const n of coverNodes(first, last, leaves, leavesOnly)) {
        const s = await nodeSum(n.level, n.index, leaves, async (i) => {
          const g = await trainer.gradients(start(i), start(i + 1));
          return { grads: g.grads, lossSum: g.lossSum };
        });
        want.push(s.grads);
        wantLosses.push(s.lossSum);
      }
      expect(got.length).toBe(want.length * layout.totalParams);
      expect(sameBits(got, joinParts(want))).toBe(true);
      expect(losses).toEqual(wantLosses);
    });
  });
});
