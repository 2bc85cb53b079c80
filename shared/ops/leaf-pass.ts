/**
 * Several virtual shards (leaves, shared/job/shard-tree.ts) in one forward and backward pass,
 * each leaf's parameter gradients bit-identical to a pass over that leaf alone.
 *
 * A pass has a large fixed cost per layer on wasm, so one pass over all of a worker's rows is
 * much cheaper than one per leaf. What a row's forward and backward values are does not depend
 * on the other rows in the pass (matMul, elementwise ops and softmax work row by row; checked
 * bit for bit in test/shared/ops/leaf-pass.test.ts); only the sums over rows do — the parameter
 * gradients. So `affine` computes those per leaf, over the leaf's rows, with the very ops a pass
 * over that leaf alone runs on tensors of the same shape: hᵀ·dy in the backend's gradient form
 * and the bias gradient sum(dy, 0).
 *
 * TF.js gives back one gradient per input, of the input's shape, so the per-leaf gradients
 * leave the backward pass through the LeafPass active while it runs (`duringLeafPass`); what
 * flows back to the parameter itself is a placeholder the trainer drops. A model kind whose
 * every parameter goes through such ops says so (ModelKind.batchesLeaves); the trainer checks
 * that every parameter was recorded.
 */
import * as tf from '@tensorflow/tfjs';
import { matMul, matMulForm, matMulGradA, matMulGradB, type MatMulOptions } from './matmul.js';

/** The leaves of one pass, and the gradients its ops record for each. */
export class LeafPass {
  /** Per-leaf gradients by parameter tensor id, leaf order; kept out of tidy scopes. */
  private readonly grads = new Map<number, tf.Tensor[]>();

  /** `bounds`: the first row of each leaf within the pass, then the row count (k + 1 numbers). */
  constructor(readonly bounds: readonly number[]) {
    if (bounds.length < 2 || bounds[0] !== 0 || bounds.some((b, i) => i > 0 && b <= bounds[i - 1]))
      throw new Error(`leaf bounds must start at 0 and rise: ${bounds.join(',')}`);
  }

  get leaves(): number {
    return this.bounds.length - 1;
  }

  /** Rows of leaf i of a tensor whose first axis is the pass's rows. */
  rowsOf<T extends tf.Tensor>(t: T, i: number): T {
    const first = this.bounds[i];
    const rows = this.bounds[i + 1] - first;
    if (first === 0 && rows === t.shape[0]) return t;
    return tf.slice(t, [first, ...t.shape.slice(1).map(() => 0)], [rows, ...t.shape.slice(1)]) as T;
  }

  /** Per-leaf gradients of `param` (a second use of it adds, leaf by leaf). */
  record(param: tf.Tensor, perLeaf: tf.Tensor[]): void {
    const had = this.grads.get(param.id);
    const now = had ? had.map((g, i) => tf.add(g, perLeaf[i])) : perLeaf;
    for (const t of now) tf.keep(t);
    if (had) tf.dispose(had);
    this.grads.set(param.id, now);
  }

  /** Each parameter's per-leaf gradients, in the order given; null where one was never recorded. */
  take(params: tf.Tensor[]): tf.Tensor[][] | null {
    const out = params.map((p) => this.grads.get(p.id));
    return out.every((g) => g !== undefined) ? (out as tf.Tensor[][]) : null;
  }

  dispose(): void {
    for (const g of this.grads.values()) tf.dispose(g);
    this.grads.clear();
  }
}

let active: LeafPass | null = null;

/** Run fn (a forward and backward pass, synchronous as TF.js's are) recording into `pass`. */
export function duringLeafPass<T>(pass: LeafPass, fn: () => T): T {
  const before = active;
  active = pass;
  try {
    return fn();
  } finally {
    active = before;
  }
}

/** h · w + b for rank-2 h (rows × in); during a leaf pass, w's and b's gradients are taken per leaf. */
export function affine(h: tf.Tensor2D, w: tf.Tensor, b: tf.Tensor | null, o: MatMulOptions = {}): tf.Tensor2D {
  const pass = active;
  if (!pass) {
    const z = matMul(h, w, o);
    return b ? tf.add(z, b) : z;
  }
  const form = matMulForm(o);
  const leafGrads = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [x, kernel, bias, save] = (b ? args : [args[0], args[1], null, args[2]]) as [
      tf.Tensor2D,
      tf.Tensor2D,
      tf.Tensor | null,
      tf.GradSaveFunc,
    ];
    save([x, kernel]);
    const z = tf.matMul(x, kernel);
    return {
      value: bias ? tf.add(z, bias) : z,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const g = dy as tf.Tensor2D;
        const [sx, sk] = saved as tf.Tensor2D[];
        const dx = o.constantA ? tf.zerosLike(sx) : matMulGradA(form, sk, g);
        const dk = [];
        const db = [];
        for (let i = 0; i < pass.leaves; i++) {
          const gi = pass.rowsOf(g, i);
          dk.push(matMulGradB(form, pass.rowsOf(sx, i), gi));
          // As TF.js's add gradient reduces a broadcast operand.
          if (bias) db.push(tf.reshape(tf.sum(gi, [0]), bias.shape));
        }
        pass.record(w, dk);
        if (b) pass.record(b, db);
        // Placeholders of the parameters' shapes (no copy): the gradients proper are per leaf.
        return b ? [dx, tf.clone(dk[0]), tf.clone(db[0])] : [dx, tf.clone(dk[0])];
      },
    };
  });
  return (b ? leafGrads(h, w, b) : leafGrads(h, w)) as tf.Tensor2D;
}
