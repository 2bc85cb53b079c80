/**
 * What every dataset provides. Each worker loads the dataset itself (the same files on every
 * host, as with PyTorch's DistributedSampler); the coordinator only ever sends index ranges.
 */
export type TargetKind = 'onehot' | 'binary' | 'real';

export interface Split {
  /** Row-major [n, inputSize]. */
  x: Float32Array;
  /** Row-major [n, outputSize]: one-hot rows, 0/1 values, or real targets. */
  y: Float32Array;
  n: number;
}

export interface Dataset {
  name: string;
  inputSize: number;
  outputSize: number;
  targets: TargetKind;
  train: Split;
  test: Split;
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
  const mix = (a: Float32Array) => {
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
  const hex = (h >>> 0).toString(16).padStart(8, '0');
  return `${ds.name}:${ds.train.n}+${ds.test.n}:${ds.inputSize}->${ds.outputSize}:${hex}`;
}

export function oneHot(labels: ArrayLike<number>, classes: number): Float32Array {
  const y = new Float32Array(labels.length * classes);
  for (let i = 0; i < labels.length; i++) y[i * classes + labels[i]] = 1;
  return y;
}
