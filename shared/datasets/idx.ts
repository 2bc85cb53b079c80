import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { fail } from '../util/errors.js';
import { checkKeys, str } from '../job/fields.js';
import { dataset, oneHot, whereRelative, type Dataset, type DatasetModule, type Split } from './dataset.js';
import { DIGIT_IMAGES } from './mnist.js';

export interface IdxSpec {
  name: 'idx';
  path: string;
}

/**
 * IDX sets are taken to be 28×28 images in 10 classes (MNIST, Fashion-MNIST) until loaded; a
 * worker whose files differ says so and leaves.
 */
export const idx: DatasetModule<IdxSpec> = {
  name: 'idx',
  parse(raw) {
    checkKeys(raw, ['name', 'path'], 'data.');
    return {
      name: 'idx',
      path: str(raw.path, 'data.path', 'a directory of IDX files (e.g. /usr/share/datasets/fashion-mnist)'),
    };
  },
  shape: () => DIGIT_IMAGES,
  load: (spec) => loadIdx(spec),
};

// IDX format (LeCun's MNIST page): big-endian magic 0x0000 0x08 (ubyte) + number of dims,
// then one uint32 BE size per dimension, then the data.
const UBYTE = 0x08;

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/** An IDX array and the file it was read from (for messages). */
interface IdxFile extends IdxArray {
  file: string;
}

/** Parse one IDX buffer (already gunzipped). Pure: exported for tests that feed bytes. */
export function parseIdx(buf: Uint8Array, what: string): IdxArray {
  if (buf.length < 4) fail('DATASET_UNAVAILABLE', `${what}: too short to be an IDX file`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.getUint16(0) !== 0 || buf[2] !== UBYTE) {
    fail('DATASET_UNAVAILABLE', `${what}: not an unsigned-byte IDX file (bad magic)`);
  }
  const nd = buf[3];
  const header = 4 + 4 * nd;
  if (nd < 1 || buf.length < header) fail('DATASET_UNAVAILABLE', `${what}: truncated IDX header`);
  const dims: number[] = [];
  for (let i = 0; i < nd; i++) dims.push(view.getUint32(4 + 4 * i));
  const count = dims.reduce((a, b) => a * b, 1);
  if (buf.length - header !== count) {
    fail('DATASET_UNAVAILABLE', `${what}: holds ${buf.length - header} bytes of data but its header says ${count}`);
  }
  return { dims, data: buf.subarray(header) };
}

function readIdx(dir: string, stem: string): IdxFile {
  for (const name of [stem, `${stem}.gz`]) {
    const file = join(dir, name);
    if (!existsSync(file)) continue;
    let buf: Uint8Array = readFileSync(file);
    if (buf[0] === 0x1f && buf[1] === 0x8b) buf = gunzipSync(buf); // gzip magic, whatever the name
    return { ...parseIdx(buf, file), file };
  }
  return fail('DATASET_UNAVAILABLE', `data.path: no ${stem} or ${stem}.gz in ${dir}`);
}

function toSplit(images: IdxArray, labels: IdxFile, what: string): { split: Split; dims: number[] } {
  const n = images.dims[0];
  if (labels.dims.length !== 1 || labels.dims[0] !== n) {
    fail('DATASET_UNAVAILABLE', `${what}: ${n} images but ${labels.dims[0]} labels`);
  }
  // oneHot would write a label past 9 into the next row's targets.
  const bad = labels.data.findIndex((l) => l > 9);
  if (bad >= 0)
    fail(
      'DATASET_UNAVAILABLE',
      `${labels.file}: label ${labels.data[bad]} at row ${bad} (0-based); IDX sets here have 10 classes, labels 0 to 9`,
    );
  const width = images.dims.slice(1).reduce((a, b) => a * b, 1);
  const x = new Float32Array(n * width);
  for (let i = 0; i < x.length; i++) x[i] = images.data[i] / 255;
  return { split: { x, y: oneHot(labels.data, 10), n }, dims: images.dims.slice(1) };
}

/**
 * MNIST-format IDX files in one directory (train-images-idx3-ubyte, train-labels-idx1-ubyte,
 * t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; each may be .gz). Pixels /255, flattened;
 * labels one-hot over 10 classes. Debian's dataset-fashion-mnist installs such a directory at
 * /usr/share/datasets/fashion-mnist.
 */
function loadIdx(opts: { path: string }): Dataset {
  if (!existsSync(opts.path))
    fail('DATASET_UNAVAILABLE', `data.path: ${opts.path} does not exist${whereRelative(opts.path)}`);
  const train = toSplit(
    readIdx(opts.path, 'train-images-idx3-ubyte'),
    readIdx(opts.path, 'train-labels-idx1-ubyte'),
    'train',
  );
  const test = toSplit(
    readIdx(opts.path, 't10k-images-idx3-ubyte'),
    readIdx(opts.path, 't10k-labels-idx1-ubyte'),
    'test',
  );
  const inputSize = train.split.x.length / Math.max(train.split.n, 1);
  if (test.split.x.length !== test.split.n * inputSize) {
    fail('DATASET_UNAVAILABLE', 'data.path: train and test images have different sizes');
  }
  // Images of rank 2 get one channel (as MNIST's 28×28); others keep the files' dimensions.
  const inputShape = train.dims.length === 2 ? [...train.dims, 1] : train.dims;
  return dataset('idx', { ...DIGIT_IMAGES, inputShape }, train.split, test.split);
}
