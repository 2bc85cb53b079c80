/**
 * Global-norm clipping (Pascanu et al. 2013; tf.clip_by_global_norm): if ‖g‖₂ over all
 * parameters exceeds maxNorm, scale g by maxNorm/‖g‖. Returns the norm before clipping, which
 * is worth logging whether or not clipping is on.
 */
export function globalNorm(grads: Float32Array): number {
  let sq = 0;
  for (let i = 0; i < grads.length; i++) sq += grads[i] * grads[i];
  return Math.sqrt(sq);
}

export function clipByGlobalNorm(grads: Float32Array, maxNorm: number, knownNorm?: number): number {
  const norm = knownNorm ?? globalNorm(grads);
  if (maxNorm > 0 && norm > maxNorm) {
    const scale = maxNorm / norm;
    for (let i = 0; i < grads.length; i++) grads[i] *= scale;
  }
  return norm;
}
