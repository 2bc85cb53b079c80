/**
 * Adam (Kingma & Ba 2015) on flat Float32Arrays, with optional decoupled weight decay (AdamW,
 * Loshchilov & Hutter 2019). The arithmetic follows tf.train.adam op for op in float32 —
 * including the accumulated beta powers kept as float32 scalars and epsilon added to sqrt(v̂)
 * — so a run matches a single-process TF.js reference to float32 rounding. Every intermediate
 * is rounded with Math.fround because TF.js stores each op's result as float32.
 */
const f = Math.fround;

export interface AdamHyper {
  beta1: number;
  beta2: number;
  epsilon: number;
  weightDecay: number;
}

export interface AdamState {
  m: Float32Array;
  v: Float32Array;
  /** beta1^t and beta2^t for the next step t, as float32 (tf.train.adam's accBeta1/2). */
  accBeta1: number;
  accBeta2: number;
  step: number;
}

export class Adam {
  readonly state: AdamState;

  constructor(
    private readonly hyper: AdamHyper,
    size: number,
    state?: AdamState,
  ) {
    this.state = state ?? { m: new Float32Array(size), v: new Float32Array(size), accBeta1: f(hyper.beta1), accBeta2: f(hyper.beta2), step: 0 };
  }

  /** Apply one update in place: params ← params − lr·m̂/(√v̂ + ε) (− lr·wd·params for AdamW). */
  apply(params: Float32Array, grads: Float32Array, lr: number): void {
    const { m, v } = this.state;
    const b1 = f(this.hyper.beta1);
    const b2 = f(this.hyper.beta2);
    const oneMinusB1 = f(1 - this.hyper.beta1);
    const oneMinusB2 = f(1 - this.hyper.beta2);
    const eps = f(this.hyper.epsilon);
    const oneMinusAcc1 = f(1 - this.state.accBeta1);
    const oneMinusAcc2 = f(1 - this.state.accBeta2);
    const negLr = f(-lr);
    // Decoupled decay multiplies the pre-update weights, as torch.optim.AdamW does.
    if (this.hyper.weightDecay > 0) {
      const decay = f(1 - f(lr * this.hyper.weightDecay));
      for (let i = 0; i < params.length; i++) params[i] = params[i] * decay; // stored as float32
    }
    // One fused pass. Stores into Float32Arrays round like TF.js's per-op float32 results;
    // Math.fround does the same for intermediates that are not stored.
    for (let i = 0; i < params.length; i++) {
      const g = grads[i];
      const mi = (m[i] = f(f(m[i] * b1) + f(g * oneMinusB1)));
      const vi = (v[i] = f(f(v[i] * b2) + f(f(g * g) * oneMinusB2)));
      const update = f(f(mi / oneMinusAcc1) / f(f(Math.sqrt(f(vi / oneMinusAcc2))) + eps));
      params[i] = f(update * negLr) + params[i];
    }
    this.state.accBeta1 = f(this.state.accBeta1 * b1);
    this.state.accBeta2 = f(this.state.accBeta2 * b2);
    this.state.step += 1;
  }
}
