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

export async function calibrate(backend: string, budgetMs = 250): Promise<Calibration> {
  // Big enough to leave the overhead regime, small enough for the slow JS backends.
  const n = backend === 'cpu' ? 128 : backend === 'wasm' ? 256 : 1024;
  const a = tf.randomUniform([n, n]);
  const b = tf.randomUniform([n, n]);
  const once = async () => {
    const c = tf.matMul(a, b);
    await c.data(); // data(), not dataSync(): GPU backends may not support synchronous reads
    c.dispose();
  };
  await once(); // warm-up: kernel compilation, first allocations
  let count = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < budgetMs || count < 2) {
    await once();
    count++;
  }
  const ms = performance.now() - t0;
  tf.dispose([a, b]);
  return { flopsPerSec: (count * 2 * n ** 3) / (ms / 1000), n, ms };
}
