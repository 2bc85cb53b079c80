/**
 * Virtual shards: each micro-batch is cut into a number of leaves that depends on the job
 * alone, each leaf's gradient sum is computed on its own (one forward and backward pass over
 * its rows, never batched with another leaf: a matmul over more rows sums in another order),
 * and the leaves are added along one fixed binary tree. A worker given a contiguous range of
 * leaves sends the sums of the largest complete subtrees its range covers; the coordinator
 * completes the tree. Every node is the same float32 sum whoever computed it, so a step's
 * result does not depend on how many workers there were, which failed, or who joined.
 *
 * The tree over L leaves: node (level l, index i) covers leaves [i·2^l, min((i+1)·2^l, L)) and
 * exists while i·2^l < L. Its value is its left child plus its right child (float32, rounded
 * once), or its left child alone when the right one covers no leaf. Loss sums follow the same
 * tree in float64.
 */

/** Leaves per micro-batch at most, whatever the setting: bounds messages and the coordinator's copies. */
export const MAX_LEAVES = 256;
/**
 * `shards: "auto"` makes leaves of at least this many items (samples, or tokens of sequence
 * models) where each leaf takes a pass of its own: below it a pass's fixed cost shows.
 */
export const AUTO_LEAF_ITEMS = 128;
/**
 * ... and no fewer than this many where a worker's leaves share one pass
 * (ModelKind.batchesLeaves) and the wire carries float32 (see batchedAutoLeaves). Two leaves
 * in one pass cost their own parameter-gradient products, which run slower per row on fewer
 * rows, and one more tree addition. scripts/bench-leaves.ts and bench-shards.ts measure both.
 */
export const AUTO_BATCHED_LEAF_ITEMS = 64;
/** ... and no more than this many leaves. */
export const AUTO_MAX_LEAVES = 64;

/** The job's `shards` setting: a leaf count, one chosen from the batch, or one leaf per worker. */
export type ShardsSetting = 'auto' | 'per-worker' | number;

/**
 * Leaves per micro-batch of `batchSize` samples of `itemsPerSample` items each; null for
 * "per-worker" (one leaf per worker ready when the micro-step starts). `auto` makes leaves of
 * `leafItems` items.
 */
export function leafCount(
  shards: ShardsSetting,
  batchSize: number,
  itemsPerSample: number,
  leafItems = AUTO_LEAF_ITEMS,
): number | null {
  if (shards === 'per-worker') return null;
  if (typeof shards === 'number') return Math.min(shards, batchSize);
  const rows = Math.max(1, Math.ceil(leafItems / itemsPerSample));
  return Math.max(1, Math.min(AUTO_MAX_LEAVES, Math.floor(batchSize / rows)));
}

/**
 * `auto` where a worker's leaves share one pass: leaves of AUTO_LEAF_ITEMS items, so that a
 * worker holding one leaf runs the very pass a per-worker cut would give it (bench-shards.ts:
 * 64-sample leaves, two a worker, cost far more at two workers than one 128-sample leaf a
 * worker); a batch too small for two of those still makes two leaves, of AUTO_BATCHED_LEAF_ITEMS
 * items at least, so that two workers share it.
 */
export function batchedAutoLeaves(batchSize: number, itemsPerSample: number): number {
  const wide = leafCount('auto', batchSize, itemsPerSample, AUTO_LEAF_ITEMS) ?? 1;
  if (wide >= 2) return wide;
  return Math.min(2, leafCount('auto', batchSize, itemsPerSample, AUTO_BATCHED_LEAF_ITEMS) ?? 1);
}

/** First row of leaf `i` of a batch of `batch` rows cut into `leaves` (the first batch % leaves have one row more). */
export function leafStart(batch: number, leaves: number, i: number): number {
  return i * Math.floor(batch / leaves) + Math.min(i, batch % leaves);
}

export interface TreeNode {
  level: number;
  index: number;
  /** Leaves [first, end) it covers. */
  first: number;
  end: number;
}

/** Levels above the leaves: the root is at this level. */
export function treeDepth(leaves: number): number {
  let l = 0;
  while (2 ** l < leaves) l++;
  return l;
}

export function treeNode(level: number, index: number, leaves: number): TreeNode {
  const first = index * 2 ** level;
  return { level, index, first, end: Math.min(leaves, first + 2 ** level) };
}

/** Does node (level, index) cover any leaf? */
export function nodeExists(level: number, index: number, leaves: number): boolean {
  return index * 2 ** level < leaves;
}

/**
 * What a worker holding leaves [first, last) sends: the largest complete subtrees covering the
 * range, left to right; with `leavesOnly`, each leaf (a 16-bit wire rounds what it carries, so a
 * rounded partial sum would depend on the split).
 */
export function coverNodes(first: number, last: number, leaves: number, leavesOnly: boolean): TreeNode[] {
  const out: TreeNode[] = [];
  const top = treeDepth(leaves);
  for (let a = first; a < last; ) {
    let l = 0;
    if (!leavesOnly) while (l < top && a % 2 ** (l + 1) === 0 && Math.min(a + 2 ** (l + 1), leaves) <= last) l++;
    const n = treeNode(l, a / 2 ** l, leaves);
    out.push(n);
    a = n.end;
  }
  return out;
}

/** The most nodes one result can carry for a job cutting batches into `leaves` (null: per worker). */
export function maxResultNodes(leaves: number | null, leavesOnly: boolean): number {
  if (leaves === null) return 1;
  if (leavesOnly) return leaves;
  let most = 1;
  for (let a = 0; a < leaves; a++)
    for (let b = a + 1; b <= leaves; b++) most = Math.max(most, coverNodes(a, b, leaves, false).length);
  return most;
}

/** a[i] += b[i] in float32: the one way two nodes are added, on either side of the wire. */
export function addInto(a: Float32Array, b: Float32Array): void {
  for (let i = 0; i < a.length; i++) a[i] += b[i];
}

export interface NodeSum {
  grads: Float32Array;
  lossSum: number;
}

/**
 * The value of node (level, index) from its leaves, left to right, `add` at each inner node
 * (the same tree as nodeSum, over any values: tensors, numbers).
 */
export function foldNode<T>(
  level: number,
  index: number,
  leaves: number,
  leaf: (i: number) => T,
  add: (a: T, b: T) => T,
): T {
  if (level === 0) return leaf(index);
  const left = foldNode(level - 1, 2 * index, leaves, leaf, add);
  if (!nodeExists(level - 1, 2 * index + 1, leaves)) return left;
  return add(left, foldNode(level - 1, 2 * index + 1, leaves, leaf, add));
}

/**
 * The value of one node from its leaves, computed left to right (the left child's array is
 * reused for the sum: at most one array per level is alive). `leaf(i)` returns a fresh array.
 */
export async function nodeSum(
  level: number,
  index: number,
  leaves: number,
  leaf: (i: number) => Promise<NodeSum>,
): Promise<NodeSum> {
  if (level === 0) return leaf(index);
  const left = await nodeSum(level - 1, 2 * index, leaves, leaf);
  if (!nodeExists(level - 1, 2 * index + 1, leaves)) return left;
  const right = await nodeSum(level - 1, 2 * index + 1, leaves, leaf);
  addInto(left.grads, right.grads);
  return { grads: left.grads, lossSum: left.lossSum + right.lossSum };
}
