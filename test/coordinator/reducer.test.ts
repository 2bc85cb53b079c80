import { describe, expect, it } from 'vitest';
import { LeafFold, TreeReducer } from '../../coordinator/reducer.js';
import { splitRange } from '../../coordinator/scheduler.js';
import { coverNodes, nodeSum, treeNode, type TreeNode } from '../../shared/job/shard-tree.js';
import { Rng } from '../../shared/util/rng.js';

const SIZE = 16;

/** Float32 leaves whose sums depend on the order: 1e20 swallows 1 unless −1e20 came first. */
function makeLeaves(n: number, seed = 7): Float32Array[] {
  const rng = new Rng(seed);
  const mags = [1e20, 1, -1e20, 1e8, -1e8, 3.5, 1e-3];
  return Array.from({ length: n }, () =>
    Float32Array.from({ length: SIZE }, () => mags[rng.int(mags.length)] * (1 + rng.next())),
  );
}

function permutations(xs: number[]): number[][] {
  if (xs.length <= 1) return [xs];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}

const bits = (a: Float64Array) => Array.from(new BigUint64Array(a.buffer.slice(0)), String);
const leafLoss = (i: number) => 0.1 * (i + 1);

/** What workers holding these leaf ranges send: each range's cover nodes, summed as a worker sums them. */
async function sent(
  leaves: Float32Array[],
  ranges: { from: number; to: number }[],
): Promise<{ node: TreeNode; grads: Float32Array; loss: number }[]> {
  const leaf = async (i: number) => ({ grads: leaves[i].slice(), lossSum: leafLoss(i) });
  const out = [];
  for (const r of ranges) {
    for (const node of coverNodes(r.from, r.to, leaves.length, false)) {
      const s = await nodeSum(node.level, node.index, leaves.length, leaf);
      out.push({ node, grads: s.grads, loss: s.lossSum });
    }
  }
  return out;
}

function reduce(n: number, items: { node: TreeNode; grads: Float32Array; loss: number }[], order: number[]) {
  const sum = new Float64Array(SIZE);
  const r = new TreeReducer(n, sum);
  for (const k of order) {
    expect(r.complete).toBe(false);
    expect(r.add(items[k].node, items[k].grads, items[k].loss, items[k].node.end - items[k].node.first)).toBe(true);
  }
  expect(r.complete).toBe(true);
  return { sum, ...r.totals() };
}

describe('TreeReducer', () => {
  it('the test data is order-sensitive under naive float addition', () => {
    const leaves = makeLeaves(5);
    const naive = (order: number[]) => {
      const acc = new Float32Array(SIZE);
      for (const s of order) for (let i = 0; i < SIZE; i++) acc[i] += leaves[s][i];
      return Array.from(acc);
    };
    expect(new Set(permutations([0, 1, 2, 3, 4]).map((o) => naive(o).join(','))).size).toBeGreaterThan(1);
  });

  it('gives a bit-identical sum for all 120 arrival orders of 5 leaves', async () => {
    const items = await sent(makeLeaves(5), splitRange(0, 5, 5));
    const ref = reduce(5, items, [0, 1, 2, 3, 4]);
    for (const order of permutations([0, 1, 2, 3, 4])) {
      const got = reduce(5, items, order);
      expect(bits(got.sum), `order ${order.join('')}`).toEqual(bits(ref.sum));
      expect(Object.is(got.lossSum, ref.lossSum)).toBe(true);
      expect(got.count).toBe(5);
    }
  });

  it('gives the same bits whatever the split into worker ranges, for 1 to 12 leaves', async () => {
    for (let n = 1; n <= 12; n++) {
      const leaves = makeLeaves(n, n);
      const one = await sent(leaves, splitRange(0, n, n));
      const ref = reduce(
        n,
        one,
        one.map((_, i) => i),
      );
      for (let workers = 1; workers <= n; workers++) {
        const items = await sent(leaves, splitRange(0, n, workers));
        const backwards = items.map((_, i) => items.length - 1 - i);
        const got = reduce(n, items, backwards);
        expect(bits(got.sum), `${n} leaves over ${workers} workers`).toEqual(bits(ref.sum));
        expect(Object.is(got.lossSum, ref.lossSum)).toBe(true);
      }
    }
  });

  it('adds along the fixed tree: ((l0 + l1) + (l2 + l3)) + l4 in float32', async () => {
    const leaves = makeLeaves(5);
    const got = reduce(5, await sent(leaves, [{ from: 0, to: 5 }]), [0]);
    const f = Math.fround;
    const want = Array.from({ length: SIZE }, (_, i) => {
      const [a, b, c, d, e] = leaves.map((l) => l[i]);
      return f(f(f(a + b) + f(c + d)) + e);
    });
    expect(Array.from(got.sum)).toEqual(want);
  });

  it('refuses a node covering a leaf already in, without changing the sum', async () => {
    const leaves = makeLeaves(4);
    const got = new Float64Array(SIZE);
    const r = new TreeReducer(4, got);
    expect(r.add(treeNode(0, 3, 4), leaves[3], 1, 1)).toBe(true); // waits for leaf 2
    expect(r.add(treeNode(0, 3, 4), leaves[0], 5, 5)).toBe(false);
    expect(r.add(treeNode(1, 1, 4), leaves[0], 5, 5)).toBe(false); // covers leaf 3 again
    expect(r.add(treeNode(2, 0, 4), leaves[0], 5, 5)).toBe(false);
    expect(r.add(treeNode(0, 4, 4), leaves[0], 5, 5)).toBe(false); // outside the tree
    for (const i of [2, 0, 1]) expect(r.add(treeNode(0, i, 4), leaves[i], 1, 1)).toBe(true);
    expect(r.totals()).toEqual({ lossSum: 4, count: 4 });
    const items = await sent(leaves, [{ from: 0, to: 4 }]);
    expect(bits(got)).toEqual(bits(reduce(4, items, [0]).sum));
  });

  it('totals before every leaf is in throws', () => {
    const r = new TreeReducer(3, new Float64Array(SIZE));
    r.add(treeNode(0, 2, 3), new Float32Array(SIZE), 0, 1);
    expect(() => r.totals()).toThrow();
  });

  it('copies a waiting payload, so a reused buffer does not change the sum', () => {
    const acc = new Float64Array(2);
    const r = new TreeReducer(2, acc);
    const buf = new Float32Array([1, 2]);
    r.add(treeNode(0, 1, 2), buf, 0, 1); // waits for leaf 0
    buf.set([100, 200]);
    r.add(treeNode(0, 0, 2), new Float32Array([10, 20]), 0, 1);
    expect(Array.from(acc)).toEqual([11, 22]);
  });

  it('adds to what the accumulator already holds (earlier micro-steps)', () => {
    const acc = new Float64Array([10, 10]);
    const r = new TreeReducer(1, acc);
    r.add(treeNode(0, 0, 1), new Float32Array([1.5, -2]), 3, 4);
    expect(r.totals()).toEqual({ lossSum: 3, count: 4 });
    expect(Array.from(acc)).toEqual([11.5, 8]);
  });

  it('offers the root to lastFold once, with the totals, and folds it only if lastFold declines', () => {
    for (const takes of [true, false]) {
      const acc = new Float64Array(2);
      const offered: { grads: number[]; lossSum: number; count: number }[] = [];
      const r = new TreeReducer(3, acc, undefined, [], (grads, t) => {
        offered.push({ grads: Array.from(grads), ...t });
        return takes;
      });
      r.add(treeNode(0, 2, 3), new Float32Array([4, 5]), 0.5, 2);
      r.add(treeNode(0, 0, 3), new Float32Array([1, 2]), 0.25, 3);
      expect(offered).toEqual([]);
      r.add(treeNode(0, 1, 3), new Float32Array([10, 20]), 1, 3);
      expect(offered).toEqual([{ grads: [15, 27], lossSum: 1.75, count: 8 }]);
      expect(Array.from(acc), `lastFold ${takes ? 'took' : 'declined'} the root`).toEqual(takes ? [0, 0] : [15, 27]);
      expect(r.totals()).toEqual({ lossSum: 1.75, count: 8 });
    }
  });

  it('offers a root that arrived whole, but never a pair sum that overflowed', () => {
    let offers = 0;
    const count = () => {
      offers++;
      return false;
    };
    const whole = new TreeReducer(2, new Float64Array(1), undefined, [], count);
    whole.add(treeNode(1, 0, 2), new Float32Array([7]), 0, 2);
    expect(offers).toBe(1);
    const acc = new Float64Array(1);
    const over = new TreeReducer(2, acc, undefined, [], count);
    over.add(treeNode(0, 0, 2), new Float32Array([3e38]), 0, 1);
    over.add(treeNode(0, 1, 2), new Float32Array([3e38]), 0, 1);
    expect(offers, 'the infinite root was folded, not offered').toBe(1);
    expect(acc[0]).toBe(Infinity);
  });
});

describe('LeafFold (per-worker shards)', () => {
  it('takes the last of 3 leaves as the level-1 node that covers it alone (as a worker sends it)', () => {
    const r = new LeafFold(3, new Float64Array(SIZE));
    expect(coverNodes(2, 3, 3, false)).toEqual([treeNode(1, 1, 3)]);
    for (const k of [0, 1]) expect(r.add(treeNode(0, k, 3), new Float32Array(SIZE), 0, 1)).toBe(true);
    expect(r.add(treeNode(1, 1, 3), new Float32Array(SIZE), 0, 1)).toBe(true);
    expect(r.complete).toBe(true);
  });

  it('folds leaves in leaf order in float64 whatever the arrival order, and takes leaves only', () => {
    const leaves = makeLeaves(4);
    const want = new Float64Array(SIZE);
    for (const l of leaves) for (let i = 0; i < SIZE; i++) want[i] += l[i];
    for (const order of permutations([0, 1, 2, 3])) {
      const sum = new Float64Array(SIZE);
      const r = new LeafFold(4, sum);
      expect(r.add(treeNode(1, 0, 4), leaves[0], 0, 2)).toBe(false); // not a leaf
      for (const k of order) expect(r.add(treeNode(0, k, 4), leaves[k], leafLoss(k), 1)).toBe(true);
      expect(r.add(treeNode(0, order[0], 4), leaves[0], 0, 1)).toBe(false); // a duplicate
      expect(r.complete).toBe(true);
      expect(bits(sum), `order ${order.join('')}`).toEqual(bits(want));
      expect(r.totals().count).toBe(4);
    }
  });
});

describe('ShardReducer into an empty sum (a step first micro-step)', () => {
  it('folds shard 1 before shard 0 without a copy, to the same bits, every order of 2–4 shards', () => {
    const leaves = makeLeaves(4, 3);
    leaves[0][0] = -0; // −0 + −0 and the sign of zero in either order
    leaves[1][0] = -0;
    for (const k of [2, 3, 4]) {
      const ref = new Float64Array(SIZE);
      for (let s = 0; s < k; s++) for (let i = 0; i < SIZE; i++) ref[i] += leaves[s][i];
      for (const order of permutations(Array.from({ length: k }, (_, i) => i))) {
        const sum = new Float64Array(SIZE);
        const spare: Float32Array[] = [];
        const lastAt: number[] = [];
        const fold = new LeafFold(k, sum, undefined, spare, () => !lastAt.push(1), true);
        for (const s of order) {
          expect(fold.add(treeNode(0, s, k), leaves[s], leafLoss(s), 1), `${order}`).toBe(true);
          expect(fold.add(treeNode(0, s, k), leaves[s], leafLoss(s), 1), `${order}: twice`).toBe(false);
        }
        expect(fold.complete).toBe(true);
        expect(bits(sum), `k ${k}, order ${order}`).toEqual(bits(ref));
        expect(lastAt, 'the completing fold is offered once').toEqual([1]);
        // Two shards, shard 1 first: nothing waited (no spare array was made).
        if (k === 2) expect(spare).toHaveLength(0);
      }
    }
  });

  it('without `fresh` (a later micro-step: the sum holds earlier ones) shard 1 waits for shard 0', () => {
    const leaves = makeLeaves(2, 5);
    const spare: Float32Array[] = [];
    const fold = new LeafFold(2, new Float64Array(SIZE).fill(1e20), undefined, spare);
    fold.add(treeNode(0, 1, 2), leaves[1], 0, 1);
    expect(fold.complete).toBe(false);
    fold.add(treeNode(0, 0, 2), leaves[0], 0, 1);
    expect(fold.complete).toBe(true);
    expect(spare).toHaveLength(1); // its copy, returned for the next one
  });
});
