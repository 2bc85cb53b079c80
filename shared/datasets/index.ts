import type { DataSpec } from '../config.js';
import type { Dataset, TargetKind } from './dataset.js';
import { loadIdx } from './idx.js';
import { loadMnist } from './mnist.js';
import { loadSpirals } from './spirals.js';
import { loadXor } from './xor.js';

export type { Dataset, Split, TargetKind } from './dataset.js';
export { fingerprint, gatherRows } from './dataset.js';

/** Load the dataset a job names. Synthetic sets derive from the job seed. */
export function loadDataset(spec: DataSpec, seed: number): Dataset {
  switch (spec.name) {
    case 'xor':
      return loadXor();
    case 'spirals':
      return loadSpirals(spec, seed);
    case 'mnist':
      return loadMnist(spec);
    case 'idx':
      return loadIdx(spec);
  }
}

export interface DatasetShape {
  inputSize: number;
  outputSize: number;
  targets: TargetKind;
}

/**
 * Widths and target kind without loading the data: the coordinator needs only these, and
 * need not have the files. IDX sets are taken to be 28×28 images in 10 classes (MNIST,
 * Fashion-MNIST); a worker whose files differ says so and leaves.
 */
export function datasetShape(spec: DataSpec): DatasetShape {
  switch (spec.name) {
    case 'xor':
      return { inputSize: 2, outputSize: 1, targets: 'binary' };
    case 'spirals':
      return { inputSize: 2, outputSize: 2, targets: 'onehot' };
    case 'mnist':
    case 'idx':
      return { inputSize: 784, outputSize: 10, targets: 'onehot' };
  }
}
