/**
 * A sliced update (coordinator/slices/) gives the same bits as the whole-model update the
 * Coordinator runs, for any slice count: parameters, Adam moments and the reported norm, with
 * clipping active, weight decay, micro-steps, results arriving out of order (leaves of the
 * virtual-shard tree), a skipped step, and a checkpoint written with one slice count and resumed with another.
 */
import { describe, expect, it } from 'vitest';
import type { AdamHyper, AdamState } from '../../coordinator/optimizers/adam.js';
import { NORM_BLOCK, sliceBounds } from '../../coordinator/slices/blocks.js';
import { SlicedUpdate } from '../../coordinator/slices/sliced-update.js';
import { Rng } from '../../shared/util/rng.js';
import { treeNode } from '../../shared/job/shard-tree.js';
import { WholeUpdate } from '../helpers/whole-update.js';

const HYPER: AdamHyper = { beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: 0.01 };
const SHARDS = 3;
const MICRO = 2;
const CLIP = 4;

/** The step's data: per micro-step, per data shard, a gradient sum (the step `bad` has a NaN). */
function gradients(n: number, step: number, bad: number): Float32Array[][] {
  const rng = new Rng(1000 + step);
  const scale = step % 2 ? 0.05 : 3; // alternate steps clip (norm above CLIP) and do not
  return Array.from({ length: MICRO }, () =>
    Array.from({ length: SHARDS }, () => {
      const g = new Float32Array(n);
      for (let i = 0; i < n; i++) g[i] = rng.normal() * scale * (1 + (i % 7));
      if (step === bad) g[n >> 1] = NaN;
      return g;
    }),
  );
}

/** Shards in an order of their own each micro-step (arrival order must not matter). */
const order = (step: number, micro: number) =>
  [
    [2, 0, 1],
    [1, 2, 0],
    [0, 1, 2],
  ][(step + micro) % 3];

function init(n: number): Float32Array {
  const rng = new Rng(7);
  return Float32Array.from({ length: n }, () => rng.normal() * 0.1);
}

interface Run {
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
  norms: number[];
}

/** The whole-model update as the Coordinator runs it. */
function whole(n: number, steps: number, bad: number, simd: boolean, clip = CLIP): Run {
  const u = new WholeUpdate(n, HYPER, simd);
  u.params.set(init(n));
  const norms: number[] = [];
  for (let s = 0; s < steps; s++) {
    const g = gradients(n, s, bad);
    let lossSum = 0;
    let count = 0;
    for (let micro = 0; micro < MICRO; micro++) {
      const f = u.fold(SHARDS);
      for (const k of order(s, micro)) f.add(treeNode(0, k, SHARDS), g[micro][k], 1, 10);
      lossSum += f.r.totals().lossSum;
      count += f.r.totals().count;
    }
    norms.push(u.update(count, lossSum, clip, 0.01).gradNorm);
  }
  return { params: u.params.slice(), m: u.adam.state.m.slice(), v: u.adam.state.v.slice(), norms };
}

function sliced(u: SlicedUpdate, from: number, steps: number, bad: number, norms: number[], clip = CLIP): void {
  for (let s = from; s < steps; s++) {
    const g = gradients(u.totalParams, s, bad);
    let lossSum = 0;
    let count = 0;
    for (let micro = 0; micro < MICRO; micro++) {
      const f = u.fold(SHARDS);
      for (const k of order(s, micro)) expect(f.add(treeNode(0, k, SHARDS), g[micro][k], 1, 10)).toBe(true);
      expect(f.complete).toBe(true);
      lossSum += f.totals().lossSum;
      count += f.totals().count;
    }
    norms.push(u.update(count, lossSum, clip, 0.01).gradNorm);
  }
}

/** Adam's state before its first step. */
const freshAdam = (n: number): AdamState => ({
  m: new Float32Array(n),
  v: new Float32Array(n),
  accBeta1: Math.fround(HYPER.beta1),
  accBeta2: Math.fround(HYPER.beta2),
  step: 0,
});

function slicedRun(n: number, k: number, steps: number, bad: number, simd: boolean, clip = CLIP): Run {
  const u = new SlicedUpdate(n, k, HYPER, { simd });
  u.load(init(n), freshAdam(n));
  const norms: number[] = [];
  sliced(u, 0, steps, bad, norms, clip);
  const { params, adam } = u.gather();
  return { params, m: adam.m, v: adam.v, norms };
}

const same = (a: Run, b: Run) => {
  expect(Buffer.from(a.params.buffer).equals(Buffer.from(b.params.buffer))).toBe(true);
  expect(Buffer.from(a.m.buffer).equals(Buffer.from(b.m.buffer))).toBe(true);
  expect(Buffer.from(a.v.buffer).equals(Buffer.from(b.v.buffer))).toBe(true);
  expect(a.norms).toEqual(b.norms); // toEqual compares numbers with Object.is: bit for bit
};

describe('sliceBounds', () => {
  it('cuts on block boundaries, covers every element once, block counts within one', () => {
    const n = 7 * NORM_BLOCK + 123;
    for (let k = 1; k <= 8; k++) {
      const r = sliceBounds(n, k);
      expect(r[0].from).toBe(0);
      expect(r[k - 1].to).toBe(n);
      for (let i = 1; i < k; i++) expect(r[i].from).toBe(r[i - 1].to);
      for (const s of r) expect(s.from % NORM_BLOCK).toBe(0);
      const blocks = r.map((s) => Math.ceil((s.to - s.from) / NORM_BLOCK)); // the last may be partial
      expect(Math.max(...blocks) - Math.min(...blocks)).toBeLessThanOrEqual(1);
      expect(Math.min(...blocks)).toBeGreaterThan(0);
    }
  });

  it('refuses more slices than blocks, and a count that is not a whole number', () => {
    expect(() => sliceBounds(2 * NORM_BLOCK, 3)).toThrow(/at most 2/);
    expect(() => sliceBounds(100, 0)).toThrow(/whole number/);
    expect(() => sliceBounds(100, 1.5)).toThrow(/whole number/);
  });
});

describe.each([
  ['SIMD kernels', true],
  ['scalar loops', false],
])('sliced update, %s: the same bits as the whole-model update', (_, simd) => {
  const n = 5 * NORM_BLOCK + 1001; // an odd size: every kernel leaves a tail
  const steps = 6;
  const bad = 3; // step 3 has a NaN gradient: skipped everywhere
  const ref = whole(n, steps, bad, simd);

  it('the reference trains, clips and skips (so the comparison is not vacuous)', () => {
    expect(ref.params).not.toEqual(init(n));
    expect(ref.norms.filter((x) => x > CLIP).length).toBeGreaterThanOrEqual(2);
    expect(ref.norms.filter((x) => Number.isFinite(x) && x <= CLIP).length).toBeGreaterThanOrEqual(2);
    expect(Number.isNaN(ref.norms[bad])).toBe(true);
  });

  it.each([1, 2, 3, 6])('K = %i', (k) => {
    same(slicedRun(n, k, steps, bad, simd), ref);
  });

  // No clipping: each slice applies Adam as soon as it is reduced; the NaN (mid-model) step
  // reverts the slices before it.
  const unclipped = whole(n, steps, bad, simd, 0);
  it.each([1, 2, 3, 6])('K = %i, no clipping (early Adam, a reverted step)', (k) => {
    expect(Number.isNaN(unclipped.norms[bad])).toBe(true);
    expect(unclipped.params).not.toEqual(ref.params);
    same(slicedRun(n, k, steps, bad, simd, 0), unclipped);
  });

  it('a checkpoint of 3 slices resumed with 2: the same bits as an unbroken run', () => {
    const a = new SlicedUpdate(n, 3, HYPER, { simd });
    a.load(init(n), freshAdam(n));
    const norms: number[] = [];
    sliced(a, 0, 2, bad, norms);
    const saved = a.gather();
    const b = new SlicedUpdate(n, 2, HYPER, { simd });
    b.load(saved.params, saved.adam);
    sliced(b, 2, steps, bad, norms);
    const { params, adam } = b.gather();
    expect(adam.step).toBe(steps - 1); // the NaN step took none
    same({ params, m: adam.m, v: adam.v, norms }, ref);
  });
});

it('a model smaller than one block is one slice', () => {
  same(slicedRun(999, 1, 3, -1, true), whole(999, 3, -1, true));
});
