/**
 * What a host agent makes of its workers' results for one shard of the coordinator's: the
 * gradient sums the coordinator asked the host for, as if one worker had computed them all.
 *
 * Virtual shards (`shards`: a count or auto): the host holds leaves [first, last) and owes the
 * largest complete subtrees covering them (coverNodes). Its workers each send the subtrees of
 * their own sub-range; a subtree of a sub-range lies inside one subtree the host owes (aligned
 * binary subtrees are nested or disjoint), so adding siblings and moving up, as TreeReducer
 * does, reaches exactly those nodes. Each addition is the one float32 addition nodeSum makes
 * (addInto; float addition commutes, so arrival order does not matter), so every node is the
 * bits one worker would have sent, and the coordinator's tree gets the unaggregated run's bits.
 *
 * Per-worker shards: the coordinator counts the host as one worker and gives it one leaf; the
 * host cuts the leaf's rows over its workers, folds their sums in float64 in row order
 * (ShardReducer, as the coordinator folds workers) and rounds once to float32. The step is then
 * a function of how the batch was cut over hosts and over each host's workers: it agrees with an
 * unaggregated run to float32 rounding, as per-worker runs of different worker counts do, not bit
 * for bit (docs/sharding.md).
 */
import type { Work } from '../../shared/wire/protocol.js';
import { ShardReducer } from '../../coordinator/reducer.js';
import { addInto, coverNodes, leafStart, MAX_LEAVES, nodeExists, type TreeNode } from '../../shared/job/shard-tree.js';

/** The node sums a host sends: one gradient per node, in payload order, with its loss sum. */
export interface HostSum {
  parts: Float32Array[];
  losses: number[];
}

/** The leaves the host's workers are given: `leaves` of a batch of `batch` rows, leaf i at row origin + leafStart(i). */
export interface LeafSpace {
  leaves: number;
  batch: number;
  origin: number;
  /** The leaves [first, last) the host's workers share. */
  first: number;
  last: number;
}

export interface HostReduction {
  /** Take one node of a worker's result (a view, copied if kept); false if it is not one the host can use. */
  add(node: TreeNode, grads: Float32Array, lossSum: number): boolean;
  readonly complete: boolean;
  /** The host's result, once complete. */
  result(): HostSum;
}

/** A coordinator's work message, the fields a host needs to cut it. */
export type UpstreamRange = Pick<Work, 'from' | 'to' | 'leaves' | 'first' | 'last' | 'batch'>;

/**
 * The leaf space the host cuts over its `workers`: the coordinator's own leaves for virtual
 * shards; for per-worker shards, the host's rows cut into one leaf per worker.
 */
export function leafSpace(w: UpstreamRange, perWorker: boolean, workers: number): LeafSpace {
  if (!perWorker) {
    const origin = w.from - leafStart(w.batch, w.leaves, w.first);
    return { leaves: w.leaves, batch: w.batch, origin, first: w.first, last: w.last };
  }
  const rows = w.to - w.from;
  const leaves = Math.min(rows, MAX_LEAVES, workers);
  return { leaves, batch: rows, origin: w.from, first: 0, last: leaves };
}

/** The stream row where leaf `i` of the space starts. */
export function rowOf(s: LeafSpace, i: number): number {
  return s.origin + leafStart(s.batch, s.leaves, i);
}

const key = (level: number, index: number) => `${level}:${index}`;

/** Virtual shards: completes the subtrees covering [first, last) from the subtrees of sub-ranges. */
export class SubtreeSum implements HostReduction {
  private readonly targets: TreeNode[];
  private readonly waiting = new Map<string, { grads: Float32Array; lossSum: number }>();
  private readonly done = new Map<string, { grads: Float32Array; lossSum: number }>();
  private readonly covered: Uint8Array;

  constructor(
    private readonly leaves: number,
    first: number,
    last: number,
    leavesOnly: boolean,
    /** Arrays kept across shards (no fresh memory per result). */
    private readonly spare: Float32Array[] = [],
  ) {
    this.targets = coverNodes(first, last, leaves, leavesOnly);
    this.covered = new Uint8Array(leaves);
  }

  add(node: TreeNode, grads: Float32Array, lossSum: number): boolean {
    const target = this.targets.find((t) => t.first <= node.first && node.end <= t.end);
    if (!target || node.first >= node.end || this.covered.subarray(node.first, node.end).some((c) => c)) return false;
    this.covered.fill(1, node.first, node.end);
    let { level, index } = node;
    let cur = { grads: this.copy(grads), lossSum };
    while (level < target.level) {
      const sib = index ^ 1;
      if (nodeExists(level, sib, this.leaves)) {
        const other = this.waiting.get(key(level, sib));
        if (!other) {
          this.waiting.set(key(level, index), cur);
          return true;
        }
        this.waiting.delete(key(level, sib));
        addInto(other.grads, cur.grads); // the one float32 addition nodeSum makes: left + right, either way round
        this.spare.push(cur.grads);
        cur = { grads: other.grads, lossSum: other.lossSum + cur.lossSum };
      }
      level++;
      index >>= 1;
    }
    this.done.set(key(level, index), cur);
    return true;
  }

  private copy(grads: Float32Array): Float32Array {
    let c = this.spare.pop();
    if (c?.length !== grads.length) c = new Float32Array(grads.length);
    c.set(grads);
    return c;
  }

  get complete(): boolean {
    return this.done.size === this.targets.length;
  }

  result(): HostSum {
    if (!this.complete) throw new Error('SubtreeSum.result before every subtree is complete');
    const nodes = this.targets.map((t) => this.done.get(key(t.level, t.index))!);
    return { parts: nodes.map((n) => n.grads), losses: nodes.map((n) => n.lossSum) };
  }

  /** Give the result's arrays back for the next shard (after they were sent). */
  release(sum: HostSum): void {
    this.spare.push(...sum.parts);
  }
}

/** Per-worker shards: the host's rows, one leaf per worker, folded in float64 in row order, rounded once. */
export class RowFold implements HostReduction {
  private readonly sum: Float64Array;
  private readonly fold: ShardReducer;

  constructor(leaves: number, totalParams: number) {
    this.sum = new Float64Array(totalParams);
    this.fold = new ShardReducer(leaves, this.sum);
  }

  add(node: TreeNode, grads: Float32Array, lossSum: number): boolean {
    // One leaf (the last may come as a higher node that covers it alone); the count is not needed here.
    return node.end - node.first === 1 && this.fold.add(node.first, grads, lossSum, 0);
  }

  get complete(): boolean {
    return this.fold.complete;
  }

  result(): HostSum {
    return { parts: [Float32Array.from(this.sum)], losses: [this.fold.totals().lossSum] };
  }
}
