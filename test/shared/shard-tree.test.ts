import { describe, expect, it } from 'vitest';
import { splitRange } from '../../coordinator/scheduler.js';
import { parseConfig } from '../../shared/job/config.js';
import { jobLayout, jobLeaves } from '../../shared/job/job-layout.js';
import {
  AUTO_BATCHED_LEAF_ITEMS,
  AUTO_LEAF_ITEMS,
  AUTO_MAX_LEAVES,
  batchedAutoLeaves,
  coverNodes,
  leafCount,
  leafStart,
  maxResultNodes,
  nodeSum,
  treeDepth,
  treeNode,
} from '../../shared/job/shard-tree.js';

describe('virtual shards: the cut', () => {
  it('leaves are the rows splitRange gives, the first batch % leaves one row longer', () => {
    for (const [batch, leaves] of [
      [48, 12],
      [50, 3],
      [7, 7],
      [130, 4],
    ]) {
      const ranges = splitRange(0, batch, leaves);
      expect(ranges.map((r) => r.from)).toEqual(ranges.map((_, i) => leafStart(batch, leaves, i)));
      expect(leafStart(batch, leaves, leaves)).toBe(batch);
    }
  });

  it('leafCount: a count (at most the batch), auto from 128 items, per-worker as null', () => {
    expect(leafCount(12, 48, 1)).toBe(12);
    expect(leafCount(12, 5, 1)).toBe(5);
    expect(leafCount('per-worker', 48, 1)).toBeNull();
    expect(leafCount('auto', 512, 1)).toBe(4);
    expect(leafCount('auto', 100, 1)).toBe(1);
    expect(leafCount('auto', 1 << 20, 1)).toBe(AUTO_MAX_LEAVES);
    expect(leafCount('auto', 64, 64)).toBe(32); // 64-token samples: two per leaf
    expect(leafCount('auto', 512, 1, AUTO_BATCHED_LEAF_ITEMS)).toBe(512 / AUTO_BATCHED_LEAF_ITEMS);
  });

  it('batched auto: leaves of 128 items, but two of 64 or more where the batch has room for only one', () => {
    expect(batchedAutoLeaves(512, 1)).toBe(512 / AUTO_LEAF_ITEMS);
    expect(batchedAutoLeaves(384, 1)).toBe(3);
    expect(batchedAutoLeaves(256, 1)).toBe(2);
    expect(batchedAutoLeaves(255, 1)).toBe(2); // one leaf of 128 would fit: two of 127 and 128
    expect(batchedAutoLeaves(2 * AUTO_BATCHED_LEAF_ITEMS, 1)).toBe(2);
    expect(batchedAutoLeaves(2 * AUTO_BATCHED_LEAF_ITEMS - 1, 1)).toBe(1);
    expect(batchedAutoLeaves(1 << 20, 1)).toBe(AUTO_MAX_LEAVES);
    expect(batchedAutoLeaves(4, 64)).toBe(2); // 64-token samples: two a leaf, then one
  });

  it('unset: auto where leaves share a pass (float32 wire, two leaves at least), else per-worker', () => {
    const leaves = (raw: Record<string, unknown>) => {
      const c = parseConfig({ batchSize: 512, ...raw });
      return jobLeaves(c, jobLayout(c));
    };
    expect(parseConfig({}).shards).toBeNull();
    expect(leaves({})).toBe(512 / AUTO_LEAF_ITEMS); // the default dense model on MNIST
    expect(leaves({ batchSize: 256 })).toBe(2);
    // A 16-bit wire carries each leaf: auto keeps them at 128 items there, and unset is per-worker.
    expect(leaves({ wireDtype: 'bfloat16' })).toBeNull();
    expect(leaves({ wireDtype: 'bfloat16', shards: 'auto' })).toBe(512 / AUTO_LEAF_ITEMS);
    expect(leaves({ shards: 'per-worker' })).toBeNull();
    expect(leaves({ batchSize: 2 * AUTO_BATCHED_LEAF_ITEMS })).toBe(2);
    expect(leaves({ batchSize: 2 * AUTO_BATCHED_LEAF_ITEMS - 1 })).toBeNull(); // one leaf: one busy worker
    expect(leaves({ batchSize: 100, shards: 'auto' })).toBe(1);
    expect(leaves({ shards: 'auto' })).toBe(512 / AUTO_LEAF_ITEMS);
    const cnn = {
      data: { name: 'mnist' },
      model: {
        kind: 'cnn',
        layers: [{ type: 'conv2d', filters: 2, kernel: 3 }, { type: 'flatten' }, { type: 'dense', units: 10 }],
        loss: 'softmaxCrossEntropy',
      },
    };
    expect(leaves(cnn)).toBeNull();
    expect(leaves({ ...cnn, shards: 'auto' })).toBe(512 / AUTO_LEAF_ITEMS);
  });

  it('the config takes a count, auto or per-worker, and names the field otherwise', () => {
    expect(parseConfig({ shards: 'auto' }).shards).toBe('auto');
    expect(parseConfig({ shards: 12 }).shards).toBe(12);
    expect(() => parseConfig({ shards: 'many' })).toThrow(/shards must be "auto", "per-worker" or an integer/);
    expect(() => parseConfig({ shards: 0 })).toThrow(/shards must be an integer ≥ 1 and ≤ 256/);
    expect(() => parseConfig({ shards: 2.5 })).toThrow(/shards must be an integer/);
  });
});

describe('virtual shards: the tree', () => {
  it('covers every range exactly, with nodes that are real subtrees, left to right', () => {
    for (let n = 1; n <= 20; n++) {
      const most = maxResultNodes(n, false);
      for (let a = 0; a < n; a++) {
        for (let b = a + 1; b <= n; b++) {
          const nodes = coverNodes(a, b, n, false);
          let at = a;
          for (const t of nodes) {
            expect(t).toEqual(treeNode(t.level, t.index, n));
            expect(t.first).toBe(at);
            expect(t.level).toBeLessThanOrEqual(treeDepth(n));
            at = t.end;
          }
          expect(at).toBe(b);
          expect(nodes.length).toBeLessThanOrEqual(most);
          expect(coverNodes(a, b, n, true).map((t) => t.first)).toEqual(Array.from({ length: b - a }, (_, i) => a + i));
        }
      }
    }
  });

  it('an aligned range is one node; an unaligned one a few', () => {
    expect(coverNodes(0, 8, 8, false)).toEqual([treeNode(3, 0, 8)]);
    expect(coverNodes(4, 8, 8, false)).toEqual([treeNode(2, 1, 8)]);
    expect(coverNodes(1, 7, 8, false).map((t) => [t.level, t.index])).toEqual([
      [0, 1],
      [1, 1],
      [1, 2],
      [0, 6],
    ]);
    expect(coverNodes(8, 12, 12, false)).toEqual([treeNode(3, 1, 12)]); // clipped at the end: leaves 8–11
    expect(maxResultNodes(null, false)).toBe(1);
    expect(maxResultNodes(12, true)).toBe(12);
  });

  it('a node is its children added in float32, a missing right child leaving the left alone', async () => {
    const vals = [1e8, 1, 3, -1e8, 0.5].map((v) => Float32Array.of(v));
    const leaf = async (i: number) => ({ grads: vals[i].slice(), lossSum: i });
    const f = Math.fround;
    const root = await nodeSum(3, 0, 5, leaf);
    expect(root.grads[0]).toBe(f(f(f(1e8 + 1) + f(3 - 1e8)) + 0.5));
    expect(root.lossSum).toBe(0 + 1 + 2 + 3 + 4);
    expect((await nodeSum(2, 1, 5, leaf)).grads[0]).toBe(0.5);
  });
});
