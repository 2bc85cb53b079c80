/**
 * One small job per registered model kind and one config per registered dataset, for the
 * conformance suites. A kind or dataset without an entry here fails its suite: registering one
 * means giving it a fixture.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './cli.js';
import { EQUIV_CNN_JOB } from './equivalence-job.js';

export interface KindFixture {
  model: Record<string, unknown>;
  data: Record<string, unknown>;
}

export const MODEL_FIXTURES: Record<string, KindFixture> = {
  dense: {
    model: { layers: [{ units: 6, activation: 'tanh' }, { units: 2, activation: 'linear' }], loss: 'softmaxCrossEntropy' },
    data: { name: 'spirals', samples: 64 },
  },
  cnn: { model: EQUIV_CNN_JOB.model, data: EQUIV_CNN_JOB.data },
};

/** An unsigned-byte IDX file: magic 0x0000 08 nd, big-endian dims, then the data. */
export function idxBytes(dims: number[], data: ArrayLike<number>): Uint8Array {
  const b = new Uint8Array(4 + 4 * dims.length + data.length);
  const v = new DataView(b.buffer);
  v.setUint32(0, 0x00000800 | dims.length);
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d));
  b.set(data, 4 + 4 * dims.length);
  return b;
}

/** A directory of MNIST-shaped IDX files (28×28, 10 classes), a few images each. */
export function tinyIdxDir(): string {
  const dir = join(tempDir('idx-fixture'), 'set');
  mkdirSync(dir, { recursive: true });
  const images = (n: number) => idxBytes([n, 28, 28], Uint8Array.from({ length: n * 784 }, (_, i) => (i * 37) % 256));
  const labels = (n: number) => idxBytes([n], Uint8Array.from({ length: n }, (_, i) => i % 10));
  writeFileSync(join(dir, 'train-images-idx3-ubyte'), images(12));
  writeFileSync(join(dir, 'train-labels-idx1-ubyte'), labels(12));
  writeFileSync(join(dir, 't10k-images-idx3-ubyte'), images(5));
  writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), labels(5));
  return dir;
}

export const DATASET_FIXTURES: Record<string, () => Record<string, unknown>> = {
  xor: () => ({ name: 'xor' }),
  spirals: () => ({ name: 'spirals', samples: 50, noise: 0.1 }),
  mnist: () => ({ name: 'mnist' }),
  idx: () => ({ name: 'idx', path: tinyIdxDir() }),
};
