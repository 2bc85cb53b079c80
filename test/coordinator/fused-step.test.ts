/**
 * The fused last fold + mean + Adam (kernels/fused-simd.ts) against the passes it replaces —
 * fold, meanInBlocks and Adam.apply, as Coordinator.step runs them — bit for bit: parameters,
 * both moments, the zeroed sum, the norm and the finite flag, over sizes that leave every tail
 * (within a vector, within a pair, within a norm block), with and without weight decay.
 */
import { describe, expect, it } from 'vitest';
import { createArena, type Arena } from '../../coordinator/kernels/arena.js';
import { FusedStep } from '../../coordinator/kernels/fused-simd.js';
import { simdReduceOps } from '../../coordinator/kernels/reduce-simd.js';
import { Adam, type AdamHyper } from '../../coordinator/optimizers/adam.js';
import { jsReduceOps, type ReduceOps } from '../../coordinator/reducer.js';
import { meanInBlocks, NORM_BLOCK } from '../../coordinator/slices/blocks.js';
import { Rng } from '../../shared/util/rng.js';

const u32 = (a: Float32Array | Float64Array) =>
  Array.from(new Uint32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength)));

interface Side {
  arena: Arena;
  adam: Adam;
  ops: ReduceOps;
}

function side(n: number, hyper: AdamHyper, init: Float32Array): Side {
  const arena = createArena(n, 1) as Arena;
  const adam = new Adam(hyper, n, undefined, { arena });
  adam.params.set(init);
  const ops = simdReduceOps(arena);
  if (!ops) throw new Error('WebAssembly SIMD is unavailable on this Node.js');
  return { arena, adam, ops };
}

/** Results for one step: `k` gradient sums with a spread of magnitudes (some steps far larger). */
function results(n: number, k: number, rng: Rng, scale: number): Float32Array[] {
  return Array.from({ length: k }, () =>
    Float32Array.from({ length: n }, (_, i) => rng.normal() * scale * (1 + (i % 5))),
  );
}

const SIZES = [1, 2, 3, 4, 5, 6, 7, 9, 30, NORM_BLOCK - 1, NORM_BLOCK + 2, NORM_BLOCK + 3, 2 * NORM_BLOCK + 1, 10_007];

describe('FusedStep: the last fold, the mean and Adam in one pass', () => {
  it.each([
    ['Adam', 0],
    ['AdamW', 0.01],
  ])('gives the bits of fold + meanInBlocks + Adam.apply (%s), every size', (_, weightDecay) => {
    const hyper: AdamHyper = { beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay };
    for (const n of SIZES) {
      const rng = new Rng(n);
      const init = Float32Array.from({ length: n }, () => rng.normal() * 0.1);
      const a = side(n, hyper, init); // the passes one after another
      const b = side(n, hyper, init); // fused
      const fused = FusedStep.over(b.arena, b.adam);
      expect(fused).not.toBeNull();
      for (let step = 0; step < 4; step++) {
        const rs = results(n, 3, rng, step === 2 ? 1e3 : 0.05);
        // Powers of two take the multiplying kernel (reduce-simd.ts meanFunc), others the dividing one.
        const count = [3 * 64, 256, 1, 1000][step];
        const lr = 0.001 * (1 + step);
        for (const r of rs) a.ops.fold(r, a.arena.sum);
        const ref = meanInBlocks(a.ops, a.arena.sum, count, a.adam.grads);
        a.adam.apply(a.adam.params, a.adam.grads, lr);
        for (const r of rs.slice(0, -1)) b.ops.fold(r, b.arena.sum);
        const got = fused!.run(b.ops.land(rs[2]), count, lr);
        const at = `n ${n} step ${step}`;
        expect(Object.is(got.sqNorm, ref.sqNorm), `${at}: norm ${got.sqNorm} vs ${ref.sqNorm}`).toBe(true);
        expect(got.finite, at).toBe(ref.finite);
        expect(u32(b.adam.params), `${at} params`).toEqual(u32(a.adam.params));
        expect(u32(b.adam.state.m), `${at} m`).toEqual(u32(a.adam.state.m));
        expect(u32(b.adam.state.v), `${at} v`).toEqual(u32(a.adam.state.v));
        expect(u32(b.arena.sum), `${at} sum`).toEqual(u32(a.arena.sum)); // both zero again
        expect(b.adam.state).toMatchObject({ accBeta1: a.adam.state.accBeta1, step: a.adam.state.step });
      }
    }
  });

  it('moves the parameters as the scalar reference does (no SIMD anywhere)', () => {
    const hyper: AdamHyper = { beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: 0 };
    const n = NORM_BLOCK + 7;
    const rng = new Rng(3);
    const init = Float32Array.from({ length: n }, () => rng.normal());
    const scalar = new Adam(hyper, n, undefined, { simd: false });
    scalar.params.set(init);
    const sum = new Float64Array(n);
    const b = side(n, hyper, init);
    const fused = FusedStep.over(b.arena, b.adam)!;
    for (let step = 0; step < 3; step++) {
      const [r0, r1] = results(n, 2, rng, 0.5);
      jsReduceOps.fold(r0, sum);
      jsReduceOps.fold(r1, sum);
      jsReduceOps.mean(sum, 100, scalar.grads);
      scalar.apply(scalar.params, scalar.grads, 0.01);
      b.ops.fold(r0, b.arena.sum);
      fused.run(b.ops.land(r1), 100, 0.01);
    }
    expect(u32(b.adam.params)).toEqual(u32(scalar.params));
    expect(u32(b.adam.state.v)).toEqual(u32(scalar.state.v));
  });

  it('refuses a gradient outside the arena, and an optimizer on other arrays', () => {
    const hyper: AdamHyper = { beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: 0 };
    const b = side(8, hyper, new Float32Array(8));
    expect(() => FusedStep.over(b.arena, b.adam)!.run(new Float32Array(8), 1, 0.1)).toThrow(/in the arena/);
    expect(FusedStep.over(b.arena, new Adam(hyper, 8))).toBeNull();
    expect(FusedStep.over(null, b.adam)).toBeNull();
  });
});
