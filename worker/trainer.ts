/**
 * Gradients on a shard. Given the parameters of the current version and a range of the
 * sample stream, it returns the SUM of per-sample gradients and the loss sum; the coordinator
 * divides by the global batch. Summing (not averaging) makes shards of any size add up exactly
 * to the full-batch gradient.
 */
import * as tf from '@tensorflow/tfjs';
import { DptrainError } from '../shared/util/errors.js';
import { gatherRows, type Dataset } from '../shared/datasets/index.js';
import {
  checkOutput,
  modelKind,
  paramView,
  type AnyLayout,
  type ModelKind,
  type ModelSpec,
} from '../shared/models/index.js';
import { batchTensors } from './batch.js';
import { Sampler } from '../shared/job/sampler.js';
import { heapViews, joinParts } from './tensor-memory.js';
import { coverNodes, foldNode, leafStart, nodeSum } from '../shared/job/shard-tree.js';
import { duringLeafPass, LeafPass } from '../shared/ops/leaf-pass.js';

/** Items (samples, or tokens of sequence models) per forward pass during evaluation: bounds memory on large test splits. */
const EVAL_CHUNK = 2048;
/**
 * Output values per evaluation pass: with a large vocabulary the logits, not the items, fill
 * memory (2048 tokens × 60k ids is ~0.5 GB a tensor, past what wasm can hold with the loss's
 * copies). 2^22 floats is 16 MiB a tensor, never reached by the usual sizes, which keep their chunks.
 */
export const EVAL_OUTPUT_FLOATS = 1 << 22;

/** Test rows per evaluation pass: EVAL_CHUNK items, fewer where a row's output is large. */
export function evalChunkRows(model: ModelKind<ModelSpec>, layout: AnyLayout): number {
  const byItems = Math.floor(EVAL_CHUNK / model.flops(layout).itemsPerSample);
  const perRow = model.outputShape(layout, 1).reduce((a, b) => a * b, 1);
  return Math.max(1, Math.min(byItems, Math.floor(EVAL_OUTPUT_FLOATS / perRow)));
}

export interface GradResult {
  grads: Float32Array;
  lossSum: number;
  count: number;
}

/** A shard's gradient sum as consecutive parts of the flat vector, in layout order. */
export interface GradParts {
  /** Views into tensor memory (wasm) or one array read back (other backends): valid until release(). */
  parts: Float32Array[];
  lossSum: number;
  count: number;
  release(): void;
}

/** Each leaf's sums from one pass: grads[slot][leaf], tensors valid until dispose(). */
export interface LeafSums {
  grads: tf.Tensor[][];
  losses: number[];
  dispose(): void;
}

export interface EvalSums {
  lossSum: number;
  correct: number;
  count: number;
}

export class Trainer {
  private params: tf.Tensor[] = [];
  private paramsVersion = -1;
  private readonly sampler: Sampler;
  private readonly model: ModelKind<ModelSpec>;

  constructor(
    private readonly layout: AnyLayout,
    private readonly ds: Dataset,
    seed: number,
  ) {
    this.sampler = new Sampler(ds.train.n, seed);
    this.model = modelKind(layout.spec);
  }

  get version(): number {
    return this.paramsVersion;
  }

  setParams(version: number, flat: Float32Array): void {
    tf.dispose(this.params);
    this.params = this.layout.params.map((slot) => tf.tensor(paramView(flat, slot), slot.shape, 'float32'));
    this.paramsVersion = version;
  }

  private batch(split: 'train' | 'test', rows: ArrayLike<number>): { x: tf.Tensor; y: tf.Tensor } {
    const b = gatherRows(this.ds[split], this.layout.inputSize, this.layout.outputSize, rows);
    return batchTensors(this.layout, rows.length, b.x, b.y);
  }

  /**
   * Sum of gradients and of losses over stream positions [from, to). Async because GPU backends
   * (webgpu) can only read tensors back with data(), not dataSync().
   */
  async gradients(from: number, to: number): Promise<GradResult> {
    const r = await this.gradientParts(from, to);
    try {
      const grads = r.parts.length === 1 ? r.parts[0].slice() : joinParts(r.parts); // a copy: the parts go with release()
      return { grads, lossSum: r.lossSum, count: r.count };
    } finally {
      r.release();
    }
  }

  /**
   * The same sums, left where they are: on wasm, views of the gradient tensors in the heap (no
   * concat, no read-back into fresh memory; see tensor-memory.ts), which the caller writes out
   * and then releases. Other backends read one flat array back with data().
   */
  async gradientParts(from: number, to: number): Promise<GradParts> {
    const rows = this.sampler.rows(from, to);
    const [loss, ...grads] = tf.tidy(() => {
      const { x, y } = this.batch('train', rows);
      const m = this.model;
      const f = (...ps: tf.Tensor[]) => {
        const out = m.forward(this.layout, ps, x);
        checkOutput(m, this.layout, out, rows.length);
        return m.lossSum(this.layout, out, y);
      };
      const { value, grads } = tf.valueAndGrads(f)(this.params);
      return [value, ...grads];
    });
    const release = () => tf.dispose([loss, ...grads]);
    try {
      const lossSum = (await loss.data())[0];
      return { ...(await handOver(grads, release)), lossSum, count: rows.length };
    } catch (e) {
      release();
      throw e;
    }
  }

  /**
   * The gradient and loss sums of each leaf of stream positions [from, from + bounds[k]) (leaf i
   * is rows [bounds[i], bounds[i + 1]) of it), in one forward and backward pass, each leaf's
   * bit-identical to gradients() over its rows alone (shared/ops/leaf-pass.ts). Null where the
   * model takes one pass per leaf.
   */
  async leafGradients(from: number, bounds: number[]): Promise<LeafSums | null> {
    if (!this.model.batchesLeaves(this.layout)) return null;
    const rows = this.sampler.rows(from, from + bounds[bounds.length - 1]);
    const pass = new LeafPass(bounds);
    let losses: tf.Tensor[] = [];
    const dispose = () => {
      pass.dispose();
      tf.dispose(losses);
    };
    try {
      tf.tidy(() =>
        duringLeafPass(pass, () => {
          const { x, y } = this.batch('train', rows);
          const m = this.model;
          const f = (...ps: tf.Tensor[]) => {
            const out = m.forward(this.layout, ps, x);
            checkOutput(m, this.layout, out, rows.length);
            // Each leaf's loss sum as its own pass gives it (not on the gradient's path).
            losses = bounds
              .slice(1)
              .map((_, i) => tf.keep(m.lossSum(this.layout, pass.rowsOf(out, i), pass.rowsOf(y, i))));
            // A row's loss gradient is the row's alone, whatever the rows beside it.
            return m.lossSum(this.layout, out, y);
          };
          // What reaches the parameters themselves is a placeholder, dropped with the scope.
          tf.valueAndGrads(f)(this.params);
        }),
      );
      const grads = pass.take(this.params);
      if (!grads)
        throw new Error(
          `model kind ${this.layout.spec.kind ?? 'dense'} claims leaf passes, but a parameter missed one`,
        );
      const values = await Promise.all(losses.map((l) => l.data()));
      return { grads, losses: values.map((v) => v[0]), dispose };
    } catch (e) {
      dispose();
      throw e;
    }
  }

  /** Loss sum and correct count over test rows [from, to). */
  async evaluate(from: number, to: number): Promise<EvalSums> {
    if (to > this.ds.test.n)
      throw new DptrainError(
        'MESSAGE_INVALID',
        `evaluate asks for test rows up to ${to}, the split has ${this.ds.test.n}`,
      );
    let lossTotal = 0;
    let correct = 0;
    const chunk = evalChunkRows(this.model, this.layout);
    for (let start = from; start < to; start += chunk) {
      const end = Math.min(to, start + chunk);
      const rows = Uint32Array.from({ length: end - start }, (_, i) => start + i);
      const [l, c] = tf.tidy(() => {
        const { x, y } = this.batch('test', rows);
        const out = this.model.forward(this.layout, this.params, x);
        checkOutput(this.model, this.layout, out, rows.length);
        return [
          this.model.lossSum(this.layout, out, y),
          this.model.correctCount(this.layout, out, y) ?? tf.scalar(0, 'int32'),
        ];
      });
      try {
        const [ld, cd] = await Promise.all([l.data(), c.data()]);
        lossTotal += ld[0];
        correct += cd[0];
      } finally {
        tf.dispose([l, c]);
      }
    }
    return { lossSum: lossTotal, correct, count: to - from };
  }

  dispose(): void {
    tf.dispose(this.params);
    this.params = [];
  }
}

/** A work message's range: leaves [first, last) of a micro-batch, and where its rows are. */
export interface LeafRange {
  from: number;
  leaves: number;
  first: number;
  last: number;
  batch: number;
}

/**
 * The sums a worker sends for leaves [first, last): one per tree node covering the range
 * (shared/job/shard-tree.ts), each leaf's sums as a pass over that leaf alone gives them. A
 * range that is one leaf keeps the gradients where they lie (no copy). Several leaves go
 * through one pass where the model allows (Trainer.leafGradients; nodes summed as tensors,
 * on wasm handed over as heap views), else one pass each, nodes built in arrays of their own.
 * `onePass` false takes a pass per leaf whatever the model (benchmarks compare the two).
 */
export async function shardSums(
  trainer: Trainer,
  w: LeafRange,
  leavesOnly: boolean,
  onePass = true,
): Promise<GradParts & { losses: number[] }> {
  const start = (leaf: number) => w.from + leafStart(w.batch, w.leaves, leaf) - leafStart(w.batch, w.leaves, w.first);
  if (w.last - w.first === 1) {
    const r = await trainer.gradientParts(start(w.first), start(w.last));
    return { ...r, losses: [r.lossSum] };
  }
  const bounds = Array.from({ length: w.last - w.first + 1 }, (_, i) => start(w.first + i) - start(w.first));
  const batched = onePass ? await trainer.leafGradients(start(w.first), bounds) : null;
  if (batched) return nodeTensors(batched, w, leavesOnly);
  const leaf = async (i: number) => {
    const g = await trainer.gradients(start(i), start(i + 1));
    return { grads: g.grads, lossSum: g.lossSum };
  };
  const parts: Float32Array[] = [];
  const losses: number[] = [];
  for (const n of coverNodes(w.first, w.last, w.leaves, leavesOnly)) {
    const s = await nodeSum(n.level, n.index, w.leaves, leaf);
    parts.push(s.grads);
    losses.push(s.lossSum);
  }
  // The total for logs and checks; the coordinator sums the tree from `losses`.
  const lossSum = losses.reduce((a, b) => a + b, 0);
  return { parts, losses, lossSum, count: start(w.last) - start(w.first), release: () => {} };
}

/** The cover nodes of a leaf range from its leaves' tensors: node by node, slot by slot. */
async function nodeTensors(b: LeafSums, w: LeafRange, leavesOnly: boolean): Promise<GradParts & { losses: number[] }> {
  const nodes = coverNodes(w.first, w.last, w.leaves, leavesOnly);
  const losses = nodes.map((n) =>
    foldNode(
      n.level,
      n.index,
      w.leaves,
      (i) => b.losses[i - w.first],
      (x, y) => x + y,
    ),
  );
  let sums: tf.Tensor[] = [];
  const release = () => {
    tf.dispose(sums);
    b.dispose();
  };
  try {
    sums = tf.tidy(() =>
      nodes.flatMap((n) =>
        b.grads.map((perLeaf) => foldNode(n.level, n.index, w.leaves, (i) => perLeaf[i - w.first], tf.add)),
      ),
    );
    const lossSum = losses.reduce((x, y) => x + y, 0);
    const count = leafStart(w.batch, w.leaves, w.last) - leafStart(w.batch, w.leaves, w.first);
    return { ...(await handOver(sums, release)), losses, lossSum, count };
  } catch (e) {
    release();
    throw e;
  }
}

/**
 * Tensors handed over where they lie: on wasm, views of the heap (taken after the last await:
 * nothing allocates before the caller uses them), freed by release(); elsewhere one array read
 * back with data(), the tensors released at once.
 */
async function handOver(
  tensors: tf.Tensor[],
  release: () => void,
): Promise<{ parts: Float32Array[]; release: () => void }> {
  const views = heapViews(tensors);
  if (views) return { parts: views, release };
  const flat = tf.tidy(() => tf.concat(tensors.map((g) => g.reshape([-1]))));
  try {
    return { parts: [(await flat.data()) as Float32Array], release: () => {} };
  } finally {
    flat.dispose();
    release();
  }
}
