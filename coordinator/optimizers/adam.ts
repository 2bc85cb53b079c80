/**
 * Adam (Kingma & Ba 2015) on flat Float32Arrays, with optional decoupled weight decay (AdamW,
 * Loshchilov & Hutter 2019). The arithmetic follows tf.train.adam op for op in float32 —
 * including the accumulated beta powers kept as float32 scalars and epsilon added to sqrt(v̂)
 * — so a run matches a single-process TF.js reference to float32 rounding. Every intermediate
 * is rounded with Math.fround because TF.js stores each op's result as float32.
 *
 * The optimizer keeps its parameter, gradient and moment arrays in a WebAssembly memory (an
 * arena, ../kernels/arena.ts, which the coordinator shares with its reduce kernels), where a
 * SIMD kernel (adam-simd.ts) runs the same ops four lanes at a time, bit for bit; the
 * coordinator trains those arrays in place. Arrays from elsewhere are copied in and out.
 * Without WebAssembly SIMD the scalar loop below does the whole update.
 */
import { adamKernel, type AdamKernel } from '../kernels/adam-simd.js';
import { createArena, type Arena } from '../kernels/arena.js';

const f = Math.fround;

export interface AdamHyper {
  beta1: number;
  beta2: number;
  epsilon: number;
  weightDecay: number;
}

/** β1, β2, 1−β1, 1−β2, 1−β1^t, 1−β2^t, ε, −lr: float32 values, the kernels' argument order. */
export type AdamCoefficients = [number, number, number, number, number, number, number, number];

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
  /** Parameters and gradients to train in place (no copies); any other arrays work too. */
  readonly params: Float32Array;
  readonly grads: Float32Array;
  private readonly kernel: AdamKernel | null;

  /** opts.arena: train that arena's arrays (the coordinator's); opts.simd false: the scalar loop on plain arrays. */
  constructor(
    private readonly hyper: AdamHyper,
    size: number,
    state?: AdamState,
    opts: { simd?: boolean; arena?: Arena | null } = {},
  ) {
    if (opts.arena && opts.arena.size !== size)
      throw new Error(`Adam: an arena of ${opts.arena.size} parameters for an optimizer of ${size}`);
    const a = opts.simd === false ? null : (opts.arena ?? createArena(size));
    this.kernel = a && adamKernel(a);
    this.params = a?.params ?? new Float32Array(size);
    this.grads = a?.grads ?? new Float32Array(size);
    this.state = {
      m: a?.m ?? new Float32Array(size),
      v: a?.v ?? new Float32Array(size),
      accBeta1: f(hyper.beta1),
      accBeta2: f(hyper.beta2),
      step: 0,
    };
    if (state) this.load(state);
  }

  /** Take over a saved state (a checkpoint's); its arrays are copied, not kept. */
  load(s: AdamState): void {
    this.state.m.set(s.m);
    this.state.v.set(s.v);
    this.state.accBeta1 = s.accBeta1;
    this.state.accBeta2 = s.accBeta2;
    this.state.step = s.step;
  }

  /** Whether the SIMD kernel runs (false: WebAssembly SIMD unavailable, or turned off). */
  get simd(): boolean {
    return this.kernel !== null;
  }

  /** Apply one update in place: params ← params − lr·m̂/(√v̂ + ε) (− lr·wd·params for AdamW). */
  apply(params: Float32Array, grads: Float32Array, lr: number): void {
    if (params.length !== this.params.length || grads.length !== this.params.length) {
      throw new Error(
        `Adam.apply: ${params.length} params and ${grads.length} gradients for an optimizer of ${this.params.length}`,
      );
    }
    const own = params === this.params;
    if (!own) this.params.set(params);
    if (grads !== this.grads) this.grads.set(grads);
    this.update(lr);
    if (!own) params.set(this.params);
  }

  /** Adam's per-step scalars as float32, in the order the kernels take them (adam-simd.ts). */
  coefficients(lr: number): AdamCoefficients {
    const h = this.hyper;
    return [
      f(h.beta1),
      f(h.beta2),
      f(1 - h.beta1),
      f(1 - h.beta2),
      f(1 - this.state.accBeta1),
      f(1 - this.state.accBeta2),
      f(h.epsilon),
      f(-lr),
    ];
  }

  /** Decoupled decay multiplies the pre-update weights, as torch.optim.AdamW does (nothing without weight decay). */
  decay(lr: number): void {
    if (!(this.hyper.weightDecay > 0)) return;
    const params = this.params;
    const decay = f(1 - f(lr * this.hyper.weightDecay));
    for (let i = 0; i < params.length; i++) params[i] = params[i] * decay; // stored as float32
  }

  /**
   * Elements [from, to) of the update from `grads` (the scalar loop). Stores into Float32Arrays
   * round like TF.js's per-op float32 results; Math.fround does the same for intermediates.
   */
  updateRange(from: number, to: number, c: AdamCoefficients): void {
    const { m, v } = this.state;
    const params = this.params;
    const grads = this.grads;
    const [b1, b2, oneMinusB1, oneMinusB2, oneMinusAcc1, oneMinusAcc2, eps, negLr] = c;
    for (let i = from; i < to; i++) {
      const g = grads[i];
      const mi = f(f(m[i] * b1) + f(g * oneMinusB1));
      const vi = f(f(v[i] * b2) + f(f(g * g) * oneMinusB2));
      m[i] = mi;
      v[i] = vi;
      const update = f(f(mi / oneMinusAcc1) / f(f(Math.sqrt(f(vi / oneMinusAcc2))) + eps));
      params[i] = f(update * negLr) + params[i];
    }
  }

  /** After an update: the beta powers and the step count move on. */
  advance(): void {
    const [b1, b2] = this.coefficients(0);
    this.state.accBeta1 = f(this.state.accBeta1 * b1);
    this.state.accBeta2 = f(this.state.accBeta2 * b2);
    this.state.step += 1;
  }

  private update(lr: number): void {
    const c = this.coefficients(lr);
    this.decay(lr);
    let from = 0;
    if (this.kernel) {
      this.kernel.run(...c);
      from = this.kernel.simdLength;
    }
    this.updateRange(from, this.params.length, c); // the whole array, or the tail the kernel leaves
    this.advance();
  }
}
