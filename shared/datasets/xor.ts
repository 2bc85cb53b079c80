import type { Dataset } from './dataset.js';

/**
 * The four XOR points. There is nothing to hold out: the test split is the same four points,
 * and "test accuracy" says whether the network has learned the function.
 */
export function loadXor(): Dataset {
  const x = new Float32Array([0, 0, 0, 1, 1, 0, 1, 1]);
  const y = new Float32Array([0, 1, 1, 0]);
  const split = { x, y, n: 4 };
  return { name: 'xor', inputSize: 2, outputSize: 1, targets: 'binary', train: split, test: split };
}
