/** Dense layouts for a given feature and output width, as the unit tests build them. */
import type { TargetKind } from '../../shared/datasets/index.js';
import { denseLayout, type DenseLayout, type DenseSpec } from '../../shared/models/dense.js';

export function denseFor(spec: DenseSpec, inputSize: number, outputSize: number, targets: TargetKind = outputSize === 1 ? 'binary' : 'onehot'): DenseLayout {
  return denseLayout(spec, { inputShape: [inputSize], inputDtype: 'float32', outputSize, targets });
}
