/**
 * The dataset contract. Each worker loads the dataset itself (the same files on every host, as
 * with PyTorch's DistributedSampler); the coordinator only ever sends index ranges, and knows a
 * dataset by its shape alone, which a module states from the config without loading anything.
 */
import { isAbsolute, resolve } from 'node:path';
import type { Json } from '../job/fields.js';

/** onehot / binary / real: float targets; tokens: the next token id at each input position. */
export type TargetKind = 'onehot' | 'binary' | 'real' | 'tokens';
export type InputDtype = 'float32' | 'int32';

/** What a model needs to know about the data: known from the config, before any file is read. */
export interface DataShape {
  /** One sample's input: [features], [height, width, channels] for images, [positions] for tokens. */
  inputShape: number[];
  /** float32 features, or int32 token ids. */
  inputDtype: InputDtype;
  /** Target values per sample (classes, outputs, or positions for tokens). */
  outputSize: number;
  targets: TargetKind;
  /** Distinct token ids (targets 'tokens' only): every id is below it. */
  vocab?: number;
  /** Character tokenization: the characters, id = index (stored with the run to decode samples). */
  alphabet?: string;
  /** Named classes (csv classification), in output order: saved with the model, to read its predictions. */
  classes?: string[];
}

/** What the model asks of each sample: sequence models set the window length. */
export interface SampleRequest {
  seq?: number;
}

export interface Split {
  /** Row-major [n, inputSize]. */
  x: Float32Array;
  /** Row-major [n, outputSize]: one-hot rows, 0/1 values, or real targets. */
  y: Float32Array;
  n: number;
}

export interface Dataset extends DataShape {
  name: string;
  /** Elements of one sample's input (the product of inputShape). */
  inputSize: number;
  train: Split;
  test: Split;
  /** What the data was made by, beyond its values (a user's module: its file's hash): in the fingerprint. */
  source?: string;
}

/**
 * One dataset kind: `parse` validates its config section (naming each bad field), `shape`
 * states the data's shape without loading it, `load` builds the splits (synthetic sets derive
 * from the job seed); both get what the model asks of a sample (a sequence length). Registered
 * by name in datasets/index.ts.
 */
export interface DatasetModule<S extends { name: string }> {
  readonly name: string;
  parse(raw: Json): S;
  /** Asynchronous work `shape` and `load` rely on (importing a user's module); done once per process. */
  prepare?(spec: S): Promise<void>;
  shape(spec: S, want: SampleRequest): DataShape;
  load(spec: S, seed: number, want: SampleRequest): Dataset;
}

export const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** A loaded dataset from its shape and splits. */
export function dataset(name: string, shape: DataShape, train: Split, test: Split): Dataset {
  return { name, ...shape, inputSize: sizeOf(shape.inputShape), train, test };
}

/** Copy rows of a split, in the order given, into contiguous batch buffers. */
export function gatherRows(
  split: Split,
  inputSize: number,
  outputSize: number,
  indices: ArrayLike<number>,
): { x: Float32Array; y: Float32Array } {
  const n = indices.length;
  const x = new Float32Array(n * inputSize);
  const y = new Float32Array(n * outputSize);
  for (let r = 0; r < n; r++) {
    const i = indices[r];
    x.set(split.x.subarray(i * inputSize, (i + 1) * inputSize), r * inputSize);
    y.set(split.y.subarray(i * outputSize, (i + 1) * outputSize), r * outputSize);
  }
  return { x, y };
}

/**
 * A content hash (FNV-1a over the float bytes) the coordinator compares across workers, so a
 * host with different files is refused instead of silently training on other data.
 */
export function fingerprint(ds: Dataset): string {
  let h = 0x811c9dc5;
  const mix = (a: ArrayBufferView) => {
    const b = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    for (let i = 0; i < b.length; i++) {
      h ^= b[i];
      h = Math.imul(h, 0x01000193);
    }
  };
  mix(ds.train.x);
  mix(ds.train.y);
  mix(ds.test.x);
  mix(ds.test.y);
  if (ds.source !== undefined) mix(new TextEncoder().encode(ds.source));
  const hex = (h >>> 0).toString(16).padStart(8, '0');
  return `${ds.name}:${ds.train.n}+${ds.test.n}:${ds.inputSize}->${ds.outputSize}:${hex}`;
}

export function oneHot(labels: ArrayLike<number>, classes: number): Float32Array {
  const y = new Float32Array(labels.length * classes);
  for (let i = 0; i < labels.length; i++) y[i * classes + labels[i]] = 1;
  return y;
}

/**
 * For a data file that is not there: where a relative path was looked for. csv, idx and text
 * paths are read where each process runs (the working directory), not beside the config file.
 */
export function whereRelative(path: string): string {
  return isAbsolute(path) ? '' : ` (looked for ${resolve(path)}: relative paths start at the working directory)`;
}
