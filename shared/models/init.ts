import { Rng, deriveSeed } from '../util/rng.js';
import type { ParamSlot } from './contract.js';

/**
 * Keras defaults: Glorot (Xavier) uniform kernels, limit = sqrt(6 / (fan_in + fan_out))
 * (Glorot & Bengio 2010), zero biases. `fans` gives a slot's fans, or null to leave it zero;
 * slots are drawn in order from one stream derived from the job seed.
 */
export function glorotUniform(
  params: ParamSlot[],
  total: number,
  seed: number,
  fans: (s: ParamSlot) => [number, number] | null,
): Float32Array {
  const out = new Float32Array(total);
  const rng = new Rng(deriveSeed(seed, 'init'));
  for (const p of params) {
    const f = fans(p);
    if (!f) continue;
    const limit = Math.sqrt(6 / (f[0] + f[1]));
    for (let i = 0; i < p.size; i++) out[p.offset + i] = rng.uniform(-limit, limit);
  }
  return out;
}

/** Keras fans of a dense kernel [in, out] or a conv kernel [kh, kw, in, out]: receptive field × channels. */
export function kernelFans(shape: number[]): [number, number] | null {
  if (shape.length < 2) return null;
  const field = shape.slice(0, -2).reduce((a, b) => a * b, 1);
  return [field * shape[shape.length - 2], field * shape[shape.length - 1]];
}
