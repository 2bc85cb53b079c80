/**
 * One small job per registered model kind and one config per registered dataset, for the
 * conformance suites. A kind or dataset without an entry here fails its suite: registering one
 * means giving it a fixture.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tempDir } from './cli.js';
import { EQUIV_CNN_JOB } from './equivalence-job.js';

export interface KindFixture {
  model: Record<string, unknown>;
  data: Record<string, unknown>;
}

export const MODEL_FIXTURES: Record<string, KindFixture> = {
  dense: {
    model: {
      layers: [
        { units: 6, activation: 'tanh' },
        { units: 2, activation: 'linear' },
      ],
      loss: 'softmaxCrossEntropy',
    },
    data: { name: 'spirals', samples: 64 },
  },
  cnn: { model: EQUIV_CNN_JOB.model, data: EQUIV_CNN_JOB.data },
  gpt: { model: { layers: 2, dModel: 16, heads: 2, seq: 8 }, data: { name: 'text', path: tinyTextFile() } },
  layers: { model: { path: layersModelFile(false), loss: 'softmaxCrossEntropy' }, data: barsData(64, 16) },
};

/**
 * The example's Layers model (examples/custom/model.json), in a temporary folder: with its
 * weights, or its topology alone (then dptrain initializes it from the seed).
 */
export function layersModelFile(withWeights: boolean, name = 'model.json'): string {
  const dir = tempDir('layers-fixture');
  const json = JSON.parse(readFileSync(resolve('examples/custom/model.json'), 'utf8')) as Record<string, unknown>;
  if (withWeights) writeFileSync(join(dir, 'weights.bin'), readFileSync(resolve('examples/custom/weights.bin')));
  else delete json.weightsManifest;
  writeFileSync(join(dir, name), JSON.stringify(json));
  return join(dir, name);
}

/** The example dataset module (examples/custom/bars.mjs): 12×12 images of bars, 4 classes. */
export function barsData(train: number, test: number): Record<string, unknown> {
  return { name: 'module', path: resolve('examples/custom/bars.mjs'), options: { train, test } };
}

/** A small UTF-8 text (with a character outside ASCII) in a temporary file. */
export function tinyTextFile(): string {
  const file = join(tempDir('text-fixture'), 'tiny.txt');
  const verse = 'In the beginning God created the heaven and the earth. And the earth was without form, and void — ';
  writeFileSync(file, verse.repeat(6));
  return file;
}

/** A small CSV: two numeric features and a class label, with a header. */
export function tinyCsvFile(): string {
  const file = join(tempDir('csv-fixture'), 'tiny.csv');
  const rows = Array.from({ length: 20 }, (_, i) => `${(i * 0.37) % 3},${(i * 1.3) % 5},${i % 3 === 0 ? 'a' : 'b'}`);
  writeFileSync(file, ['x,y,class', ...rows].join('\n') + '\n');
  return file;
}

/** An unsigned-byte IDX file: magic 0x0000 08 nd, big-endian dims, then the data. */
export function idxBytes(dims: number[], data: ArrayLike<number>): Uint8Array {
  const b = new Uint8Array(4 + 4 * dims.length + data.length);
  const v = new DataView(b.buffer);
  v.setUint32(0, 0x00000800 | dims.length);
  dims.forEach((d, i) => {
    v.setUint32(4 + 4 * i, d);
  });
  b.set(data, 4 + 4 * dims.length);
  return b;
}

/** A directory of MNIST-shaped IDX files (28×28, 10 classes), a few images each. */
export function tinyIdxDir(): string {
  const dir = join(tempDir('idx-fixture'), 'set');
  mkdirSync(dir, { recursive: true });
  const images = (n: number) =>
    idxBytes(
      [n, 28, 28],
      Uint8Array.from({ length: n * 784 }, (_, i) => (i * 37) % 256),
    );
  const labels = (n: number) =>
    idxBytes(
      [n],
      Uint8Array.from({ length: n }, (_, i) => i % 10),
    );
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
  text: () => ({ name: 'text', path: tinyTextFile() }),
  csv: () => ({ name: 'csv', path: tinyCsvFile(), label: 'class' }),
  module: () => barsData(40, 10),
};

/**
 * An example config, its text file replaced by the small fixture text when absent here (the
 * kernels a model needs do not depend on the text; examples/gpt-text.json says how to get it).
 */
export function exampleConfig(file: string): Record<string, unknown> {
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const data = raw.data as { name?: string; path?: string } | undefined;
  if (data?.name === 'text' && data.path && !existsSync(data.path))
    return { ...raw, data: { ...data, path: tinyTextFile() } };
  return raw;
}
