/**
 * `dense`: a stack of fully connected layers and a loss — the default kind, and the one configs
 * without `model.kind` get. Image inputs are flattened.
 */
import * as tf from '@tensorflow/tfjs';
import { denseFlopsPerSample } from '../accounting/flops.js';
import type { DataShape } from '../datasets/dataset.js';
import { fail } from '../util/errors.js';
import { checkKeys, isObj } from '../job/fields.js';
import { affine } from '../ops/leaf-pass.js';
import { packSlots, type ModelKind, type ModelLayout } from './contract.js';
import {
  activate,
  checkHead,
  checkTargets,
  headCorrectCount,
  headLossSum,
  LINK,
  parseActivation,
  parseLoss,
  type Activation,
  type Loss,
} from './heads.js';
import { glorotUniform, kernelFans } from './init.js';

export interface DenseLayerSpec {
  units: number;
  activation: Activation;
}

/** No `kind` field: a dense spec parses to what it did before kinds existed (same job hash). */
export interface DenseSpec {
  kind?: 'dense';
  layers: DenseLayerSpec[];
  loss: Loss;
}

export type DenseLayout = ModelLayout<DenseSpec>;

/** Dense layer specs; `first` is the index of the first one in the config's layer list. */
/** What `model.layers` is when a dense model leaves it out (docs/config.md): MNIST's classifier. */
export const DEFAULT_DENSE_LAYERS: readonly DenseLayerSpec[] = [
  { units: 256, activation: 'relu' },
  { units: 128, activation: 'relu' },
  { units: 10, activation: 'linear' },
];

export function parseDenseLayers(layers: unknown, where: string, first = 0): DenseLayerSpec[] {
  if (!Array.isArray(layers) || layers.length === 0)
    fail('MODEL_INVALID', `${where} must be a non-empty array of {units, activation}`);
  return layers.map((l, i): DenseLayerSpec => {
    const at = `${where}[${first + i}]`;
    if (!isObj(l)) fail('MODEL_INVALID', `${at} must be an object {units, activation}`);
    for (const k of Object.keys(l)) {
      if (k !== 'units' && k !== 'activation')
        fail('MODEL_INVALID', `${at}.${k} is not a known field (units, activation)`);
    }
    const units = l.units;
    if (typeof units !== 'number' || !Number.isInteger(units) || units < 1 || units > 1 << 16) {
      fail('MODEL_INVALID', `${at}.units must be an integer in 1..65536, got ${JSON.stringify(units)}`);
    }
    return { units, activation: parseActivation(l.activation, `${at}.activation`) };
  });
}

/** Kernel [in, out] then bias [out] per layer, from `fanIn` inputs; names dense_<first + i>. */
export function denseSlots(
  layers: DenseLayerSpec[],
  fanIn: number,
  first = 0,
): Array<{ name: string; shape: number[] }> {
  return layers.flatMap((l, i) => {
    const slots = [
      { name: `dense_${first + i}/kernel`, shape: [fanIn, l.units] },
      { name: `dense_${first + i}/bias`, shape: [l.units] },
    ];
    fanIn = l.units;
    return slots;
  });
}

/** Last layer (its config path `lastField`) against the data's outputs and target kind. */
export function checkOutputs(
  layers: DenseLayerSpec[],
  loss: Loss,
  data: DataShape,
  lastField: string,
  kind: string,
): void {
  checkTargets(loss, data.targets, data.outputSize, kind);
  const last = layers[layers.length - 1];
  if (last.units !== data.outputSize)
    fail('MODEL_INVALID', `${lastField}.units is ${last.units} but the dataset has ${data.outputSize} outputs`);
}

/** Dense layers over a [n, features] tensor; params hold kernel, bias per layer. */
export function denseStack(
  layers: DenseLayerSpec[],
  params: tf.Tensor[],
  x: tf.Tensor2D,
  inputIsData: boolean,
): tf.Tensor2D {
  let h = x;
  layers.forEach((l, i) => {
    // The first layer's input is data: its gradient is never needed.
    const z = affine(h, params[2 * i], params[2 * i + 1], { constantA: inputIsData && i === 0 });
    h = activate(z, l.activation);
  });
  return h;
}

/** The stack as tfjs-layers dense layers; the last applies the loss's link. */
export function addDenseLayers(
  model: tf.Sequential,
  layers: DenseLayerSpec[],
  loss: Loss,
  first: number,
  inputShape?: number[],
): void {
  layers.forEach((l, i) => {
    const last = i === layers.length - 1;
    const activation = last && LINK[loss] ? LINK[loss] : l.activation;
    model.add(
      tf.layers.dense({
        name: `dense_${first + i}`,
        units: l.units,
        activation: activation as 'linear',
        ...(i === 0 && inputShape ? { inputShape } : {}),
      }),
    );
  });
}

export function denseLayout(spec: DenseSpec, data: DataShape): DenseLayout {
  checkOutputs(spec.layers, spec.loss, data, `model.layers[${spec.layers.length - 1}]`, 'dense');
  if (data.inputDtype !== 'float32')
    fail('MODEL_INVALID', 'model.kind dense needs float32 features; this dataset gives int32 token ids');
  const inputSize = data.inputShape.reduce((a, b) => a * b, 1);
  return {
    spec,
    data,
    inputShape: [inputSize],
    inputSize,
    outputSize: data.outputSize,
    ...packSlots(denseSlots(spec.layers, inputSize)),
  };
}

export const dense: ModelKind<DenseSpec> = {
  kind: 'dense',
  parse(raw, where) {
    checkKeys(raw, ['kind', 'layers', 'loss'], `${where}.`, 'MODEL_INVALID');
    const layers = parseDenseLayers(raw.layers ?? DEFAULT_DENSE_LAYERS, `${where}.layers`);
    const loss = parseLoss(raw.loss, `${where}.loss`);
    checkHead(loss, layers[layers.length - 1].activation, `${where}.layers[${layers.length - 1}]`);
    return { layers, loss };
  },
  layout: denseLayout,
  init: (layout, seed) => glorotUniform(layout.params, layout.totalParams, seed, (s) => kernelFans(s.shape)),
  forward: (layout, params, x) => denseStack(layout.spec.layers, params, x as tf.Tensor2D, true),
  outputShape: (layout, rows) => [rows, layout.outputSize],
  lossSum: (layout, out, y) => headLossSum(layout.spec.loss, layout.outputSize, out, y),
  correctCount: (layout, out, y) => headCorrectCount(layout.spec.loss, layout.data.targets, out, y),
  flops(layout) {
    const f = denseFlopsPerSample(layout);
    return {
      unit: 'sample',
      itemsPerSample: 1,
      forward: f.forward,
      training: f.training,
      describe: `dense model: ${layout.totalParams.toLocaleString('en-US')} parameters`,
    };
  },
  batchesLeaves: () => true,
  toLayers(layout) {
    const model = tf.sequential();
    addDenseLayers(model, layout.spec.layers, layout.spec.loss, 0, [layout.inputSize]);
    return model;
  },
};
