/**
 * A step's last fold, its mean and its Adam update in one pass over the arena (arena.ts), for
 * the step whose last result has just landed: what ReduceOps.fold, meanInBlocks
 * (../slices/blocks.ts) and Adam.apply do one after another, with the same bits, reading each
 * array once instead of three times, and without storing the mean gradient.
 *
 * Why the bits are the same: per element the kernel runs the fold kernel's float64 add, the
 * mean kernel's float64 divide and float32 rounding, and the Adam kernel's float32 ops, in the
 * same order (reduce-simd.ts and adam-simd.ts say why each matches the scalar loops). The
 * squared norm is summed as the mean kernel sums it: per norm block, even elements in one
 * float64 lane and odd ones in the other, the lanes added at the block's end, the blocks added
 * in order; the few elements past a block's last whole vector are finished here in JavaScript
 * the same way (test/coordinator/fused-step.test.ts compares every array bit for bit).
 *
 * Only for a step that needs nothing from the whole mean before Adam: no clipping (the scale
 * depends on the norm) and no skip (a non-finite mean skips the step, and the pass has already
 * updated the parameters when it finds one). The caller checks both before (coordinator.ts).
 *
 *   fused(stride, g, from, end, count, β1, β2, 1−β1, 1−β2, 1−β1^t, 1−β2^t, ε, −lr) → (f64, f64)
 * over elements [from/4, end/4) (byte offsets, multiples of 16): g (a byte address) is folded
 * into the sum at 4·stride, the mean goes through Adam on params at 0, m at 2·stride and v at
 * 3·stride; returns the two lanes of the squared norm. fusedPow2 takes 1/count for a
 * power-of-two count and multiplies, as the mean kernel does (reduce-simd.ts).
 */
import { NORM_BLOCK } from '../slices/blocks.js';
import type { Adam } from '../optimizers/adam.js';
import { adamOps } from './adam-simd.js';
import { inArena, type Arena } from './arena.js';
import { isPowerOfTwo } from './reduce-simd.js';
import {
  compile,
  F32,
  F32X4_DEMOTE_F64X2_ZERO,
  F32X4_SPLAT,
  F64,
  F64X2_ADD,
  F64X2_DIV,
  F64X2_EXTRACT_LANE,
  F64X2_MUL,
  F64X2_PROMOTE_LOW_F32X4,
  F64X2_SPLAT,
  get,
  i32,
  I32,
  I32_ADD,
  I32_MUL,
  I32_SHL,
  I8X16_SHUFFLE,
  LOCAL_TEE,
  loop,
  set,
  V128,
  V128_LOAD,
  V128_LOAD64_ZERO,
  V128_STORE,
  type Func,
} from './asm.js';

// Parameters: 0 stride, 1 g, 2 i (byte offset of the element, also its params address), 3 end,
// 4 count, 5..12 the Adam scalars. Locals: 13 m base, 14 v base, 15 sum base, 16 sum address;
// 17 count splat, 18..25 the scalars splatted, 26 squares, 27 low pair, 28 high pair, 29 g,
// 30 new m, 31 new v, 32 scratch, 33 zero.
const [STRIDE, G_AT, I, END_AT, COUNT] = [0, 1, 2, 3, 4];
const [M_BASE, V_BASE, S_BASE, S_AT] = [13, 14, 15, 16];
const COUNTV = 17;
const B1 = 18; // the first of the eight splatted scalars
const [SQ, LO, HI, G, M, V, TMP, ZERO] = [26, 27, 28, 29, 30, 31, 32, 33];

const tee = (l: number) => [LOCAL_TEE, l];
const at = (base: number) => [...get(base), ...get(I), I32_ADD];

/** The mean of one pair: float32(float64(sum pair + g pair) / count), left in the low lanes. */
const pairMean = (scale: number[], sumAddr: number[], gAddr: number[]) => [
  ...sumAddr,
  ...V128_LOAD,
  ...gAddr,
  ...V128_LOAD64_ZERO,
  ...F64X2_PROMOTE_LOW_F32X4,
  ...F64X2_ADD,
  ...get(COUNTV),
  ...scale,
  ...F32X4_DEMOTE_F64X2_ZERO,
];

/** squares ← mean² + squares, as the mean kernel adds them. */
const square = (pair: number) => [
  ...get(pair),
  ...F64X2_PROMOTE_LOW_F32X4,
  ...tee(TMP),
  ...get(TMP),
  ...F64X2_MUL,
  ...get(SQ),
  ...F64X2_ADD,
  ...set(SQ),
];

/** `scale` divides by the count, or (fusedPow2) multiplies by 1/count, as the mean kernels do (reduce-simd.ts). */
const fusedFunc = (name: string, scale: number[]): Func => ({
  name,
  params: [I32, I32, I32, I32, F64, F32, F32, F32, F32, F32, F32, F32, F32],
  results: [F64, F64],
  locals: [
    [4, I32],
    [17, V128],
  ],
  code: [
    ...[
      [M_BASE, 2],
      [V_BASE, 3],
      [S_BASE, 4],
    ].flatMap(([l, k]) => [...get(STRIDE), ...i32(k), I32_MUL, ...set(l)]),
    ...get(COUNT),
    ...F64X2_SPLAT,
    ...set(COUNTV),
    ...Array.from({ length: 8 }, (_, s) => [...get(5 + s), ...F32X4_SPLAT, ...set(B1 + s)]).flat(),
    ...loop(I, END_AT, 16, [
      // The sum's address: sum base + 2·i (float64 elements).
      ...get(I),
      ...i32(1),
      I32_SHL,
      ...get(S_BASE),
      I32_ADD,
      ...set(S_AT),
      ...pairMean(scale, get(S_AT), at(G_AT)),
      ...set(LO),
      ...pairMean(scale, [...get(S_AT), ...i32(16), I32_ADD], [...at(G_AT), ...i32(8), I32_ADD]),
      ...set(HI),
      // The sum is consumed: zero for the next step.
      ...get(S_AT),
      ...get(ZERO),
      ...V128_STORE,
      ...get(S_AT),
      ...i32(16),
      I32_ADD,
      ...get(ZERO),
      ...V128_STORE,
      ...square(LO),
      ...square(HI),
      // The four means as one float32 vector: bytes 0–7 of each pair.
      ...get(LO),
      ...get(HI),
      ...I8X16_SHUFFLE([0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]),
      ...set(G),
      ...adamOps((k) => (k === 0 ? get(I) : at([0, 0, M_BASE, V_BASE][k])), G, M, V, B1),
    ]),
    ...get(SQ),
    ...F64X2_EXTRACT_LANE(0),
    ...get(SQ),
    ...F64X2_EXTRACT_LANE(1),
  ],
});

type FusedFn = (
  stride: number,
  g: number,
  from: number,
  end: number,
  count: number,
  ...c: number[]
) => [number, number];

let compiled: WebAssembly.Module | null | undefined;

/** The fused pass over an arena that `adam` trains in place. */
export class FusedStep {
  private constructor(
    private readonly arena: Arena,
    private readonly adam: Adam,
    private readonly kernel: FusedFn,
    private readonly kernelPow2: FusedFn,
  ) {}

  /** Null where WebAssembly SIMD is unavailable, or `adam` does not train this arena's arrays. */
  static over(arena: Arena | null, adam: Adam): FusedStep | null {
    if (!arena || adam.params !== arena.params || adam.grads !== arena.grads || adam.state.m !== arena.m) return null;
    if (compiled === undefined) compiled = compile([fusedFunc('fused', F64X2_DIV), fusedFunc('fusedPow2', F64X2_MUL)]);
    if (!compiled) return null;
    const k = new WebAssembly.Instance(compiled, { env: { mem: arena.memory } }).exports;
    return new FusedStep(arena, adam, k.fused as FusedFn, k.fusedPow2 as FusedFn);
  }

  /**
   * Fold `g` (the step's last result, in the arena) into the sum, take the mean over `count`
   * samples with its squared norm by blocks, and apply Adam at `lr`: the same parameters, Adam
   * state, zeroed sum, finite flag and norm as fold, meanInBlocks and Adam.apply. The arena's
   * `grads` (the mean) is left stale except past the last whole vector.
   */
  run(g: Float32Array, count: number, lr: number): { finite: boolean; sqNorm: number } {
    const { arena, adam } = this;
    const n = arena.size;
    if (!inArena(arena, g) || g.length !== n)
      throw new Error('FusedStep.run: the gradient must be a whole model in the arena');
    const { sum, grads } = arena;
    const c = adam.coefficients(lr);
    adam.decay(lr);
    const pow2 = isPowerOfTwo(count);
    const kernel = pow2 ? this.kernelPow2 : this.kernel;
    const scale = pow2 ? 1 / count : count;
    let sqNorm = 0;
    let finite = true;
    for (let from = 0; from < n; from += NORM_BLOCK) {
      const end = Math.min(n, from + NORM_BLOCK);
      const whole = end - ((end - from) % 4);
      let [even, odd] = kernel(arena.stride, g.byteOffset, 4 * from, 4 * whole, scale, ...c);
      // Past the last whole vector: the mean kernel's pairs (lanes by parity), then its scalar tail.
      const pairs = end - ((end - from) % 2);
      let last = 0;
      for (let j = whole; j < end; j++) {
        grads[j] = (sum[j] + g[j]) / count;
        sum[j] = 0;
        const r = grads[j];
        if (j >= pairs) last = r * r;
        else if ((j - from) % 2 === 0) even = r * r + even;
        else odd = r * r + odd;
      }
      const sq = even + odd + last;
      finite &&= Number.isFinite(sq); // a squared float32 cannot overflow a float64 sum
      sqNorm += sq;
      adam.updateRange(whole, end, c);
    }
    adam.advance();
    return { finite, sqNorm };
  }
}
