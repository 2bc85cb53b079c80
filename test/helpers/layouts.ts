/** Dense layouts for a given feature and output width, as the unit tests build them. */
import type { TargetKind } from '../../shared/datasets/index.js';
import { denseLayout, type DenseLayout } from '../../shared/models/dense.js';
import type { ModelSpec } from '../../shared/models/index.js';

export function denseFor(
  spec: ModelSpec,
  inputSize: number,
  outputSize: number,
  targets: TargetKind = outputSize === 1 ? 'binary' : 'onehot',
): DenseLayout {
  if (spec.kind !== undefined && spec.kind !== 'dense') throw new Error(`denseFor: a ${spec.kind} spec`);
  return denseLayout(spec, { inputShape: [inputSize], inputDtype: 'float32', outputSize, targets });
}
