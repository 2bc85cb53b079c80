/**
 * What this worker's backend can actually do: square float32 matmuls for a fixed time, counted
 * at 2·n³ FLOPs each. Reported at join beside any declared peak, so the accounting can show
 * both and compute MFU even where no datasheet peak is declared.
 */
import * as tf from '@tensorflow/tfjs';

export interface Calibration {
  flopsPerSec: number;
  /** Matrix size used (n × n · n × n). */
  n: number;
  ms: number;
}

/** webgpu: grow n from here while one matmul takes under GROW_BELOW_MS, up to GPU_MAX_N. */
const GPU_MIN_N = 256;
const GPU_MAX_N = 4096;
const GROW_BELOW_MS = 20;

/** a·b, summed to a scalar and read back: reading back n² values would time the transfer, not the matmul. */
async function matmulOnce(a: tf.Tensor, b: tf.Tensor): Promise<void> {
  const s = tf.tidy(() => tf.matMul(a, b).sum());
  await s.data(); // data(), not dataSync(): GPU backends may not support synchronous reads
  s.dispose();
}

/** Milliseconds of one n×n matmul, after a warm-up one. */
async function matmulMs(n: number): Promise<number> {
  const [a, b] = [tf.randomUniform([n, n]), tf.randomUniform([n, n])];
  try {
    await matmulOnce(a, b); // warm-up: shader compilation, first allocations
    const t0 = performance.now();
    await matmulOnce(a, b);
    return performance.now() - t0;
  } finally {
    tf.dispose([a, b]);
  }
}

/**
 * A GPU is far from its peak on a 1024² matmul and a software adapter (SwiftShader) takes
 * seconds on one, so no fixed n suits webgpu: start small and grow while a matmul stays fast.
 */
async function gpuSize(): Promise<number> {
  let n = GPU_MIN_N;
  while (n < GPU_MAX_N && (await matmulMs(n)) < GROW_BELOW_MS) n *= 2;
  return n;
}

export async function calibrate(backend: string, budgetMs = 250): Promise<Calibration> {
  // Big enough to leave the overhead regime, small enough for the slow JS backends.
  const n = backend === 'cpu' ? 128 : backend === 'wasm' ? 256 : backend === 'webgpu' ? await gpuSize() : 1024;
  const a = tf.randomUniform([n, n]);
  const b = tf.randomUniform([n, n]);
  await matmulOnce(a, b); // warm-up: kernel compilation, first allocations
  let count = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < budgetMs || count < 2) {
    await matmulOnce(a, b);
    count++;
  }
  const ms = performance.now() - t0;
  tf.dispose([a, b]);
  return { flopsPerSec: (count * 2 * n ** 3) / (ms / 1000), n, ms };
}
