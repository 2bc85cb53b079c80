import { checkKeys } from '../job/fields.js';
import { dataset, type DataShape, type DatasetModule } from './dataset.js';

export interface XorSpec {
  name: 'xor';
}

const SHAPE: DataShape = { inputShape: [2], inputDtype: 'float32', outputSize: 1, targets: 'binary' };

/**
 * The four XOR points. There is nothing to hold out: the test split is the same four points,
 * and "test accuracy" says whether the network has learned the function.
 */
export const xor: DatasetModule<XorSpec> = {
  name: 'xor',
  parse(raw) {
    checkKeys(raw, ['name'], 'data.');
    return { name: 'xor' };
  },
  shape: () => SHAPE,
  load() {
    const x = new Float32Array([0, 0, 0, 1, 1, 0, 1, 1]);
    const y = new Float32Array([0, 1, 1, 0]);
    const split = { x, y, n: 4 };
    return dataset('xor', SHAPE, split, split);
  },
};
