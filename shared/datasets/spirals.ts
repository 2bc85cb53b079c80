import { checkKeys, num } from '../job/fields.js';
import { Rng, deriveSeed } from '../util/rng.js';
import { dataset, type DataShape, type Dataset, type DatasetModule, type Split } from './dataset.js';

export interface SpiralsSpec {
  name: 'spirals';
  samples: number;
  noise: number;
  testFraction: number;
}

const SHAPE: DataShape = { inputShape: [2], inputDtype: 'float32', outputSize: 2, targets: 'onehot' };

export const spirals: DatasetModule<SpiralsSpec> = {
  name: 'spirals',
  parse(raw) {
    checkKeys(raw, ['name', 'samples', 'noise', 'testFraction'], 'data.');
    return {
      name: 'spirals',
      samples: num(raw.samples ?? 2000, 'data.samples', { int: true, min: 4, max: 10_000_000 }),
      noise: num(raw.noise ?? 0.05, 'data.noise', { min: 0, max: 10 }),
      testFraction: num(raw.testFraction ?? 0.2, 'data.testFraction', { min: 0, max: 0.9 }),
    };
  },
  shape: () => SHAPE,
  load: (spec, seed) => loadSpirals(spec, seed),
};

/**
 * Two interleaved spirals (class 0 and class 1), a classic problem a linear model cannot
 * solve. Generated from the job seed, so every worker builds the identical set.
 */
function loadSpirals(opts: SpiralsSpec, seed: number): Dataset {
  const rng = new Rng(deriveSeed(seed, 'spirals'));
  const total = opts.samples;
  const x = new Float32Array(total * 2);
  const y = new Float32Array(total * 2);
  for (let i = 0; i < total; i++) {
    const cls = i % 2;
    const t = (Math.floor(i / 2) / Math.ceil(total / 2)) * 3 * Math.PI + 0.3;
    const r = t / (3 * Math.PI);
    const a = t + cls * Math.PI;
    x[2 * i] = r * Math.cos(a) + opts.noise * rng.normal();
    x[2 * i + 1] = r * Math.sin(a) + opts.noise * rng.normal();
    y[2 * i + cls] = 1;
  }
  // Stratified, evenly spaced hold-out: each class gives every k-th of its own points, so both
  // splits hold both classes along the whole length of each arm.
  const nTest = Math.round(total * opts.testFraction);
  const isTest = new Uint8Array(total);
  for (let cls = 0; cls < 2; cls++) {
    const members: number[] = [];
    for (let i = cls; i < total; i += 2) members.push(i);
    const want = Math.floor(nTest / 2) + (cls < nTest % 2 ? 1 : 0);
    for (let j = 0; j < want; j++) isTest[members[Math.floor((j * members.length) / want)]] = 1;
  }
  const take = (want: number): Split => {
    const idx: number[] = [];
    for (let i = 0; i < total; i++) if (isTest[i] === want) idx.push(i);
    const sx = new Float32Array(idx.length * 2);
    const sy = new Float32Array(idx.length * 2);
    idx.forEach((i, r) => {
      sx.set(x.subarray(2 * i, 2 * i + 2), 2 * r);
      sy.set(y.subarray(2 * i, 2 * i + 2), 2 * r);
    });
    return { x: sx, y: sy, n: idx.length };
  };
  return dataset('spirals', SHAPE, take(0), take(1));
}
