/**
 * `cnn`: conv2d and pooling layers over images [height, width, channels], then flatten and
 * dense layers. Convolutions go through shared/ops/conv2d.ts, whose filter gradient every
 * backend can compute (wasm has no Conv2DBackpropFilter kernel).
 */
import * as tf from '@tensorflow/tfjs';
import { convNetFlopsPerSample, type ConvNetPart } from '../accounting/flops.js';
import { fail } from '../util/errors.js';
import { checkKeys, isObj, type Json } from '../job/fields.js';
import { conv2d, convPads, type Padding } from '../ops/conv2d.js';
import { packSlots, type ModelKind, type ModelLayout } from './contract.js';
import {
  addDenseLayers,
  checkOutputs,
  denseSlots,
  denseStack,
  parseDenseLayers,
  type DenseLayerSpec,
} from './dense.js';
import {
  activate,
  checkHead,
  headCorrectCount,
  headLossSum,
  parseActivation,
  parseLoss,
  type Activation,
  type Loss,
} from './heads.js';
import { glorotUniform, kernelFans } from './init.js';

export interface Conv2dSpec {
  type: 'conv2d';
  filters: number;
  kernel: number;
  stride: number;
  padding: Padding;
  activation: Activation;
}

export interface PoolSpec {
  type: 'maxPool' | 'avgPool';
  size: number;
  stride: number;
}

export type CnnLayerSpec = Conv2dSpec | PoolSpec | { type: 'flatten' } | ({ type: 'dense' } & DenseLayerSpec);

/** Feature layers, then `flatten`, then dense layers (the last one gives the outputs). */
export interface CnnSpec {
  kind: 'cnn';
  layers: CnnLayerSpec[];
  loss: Loss;
}

/** The layers before flatten, and the dense ones after it. */
export function cnnParts(spec: CnnSpec): { features: Array<Conv2dSpec | PoolSpec>; dense: DenseLayerSpec[] } {
  const flat = spec.layers.findIndex((l) => l.type === 'flatten');
  return {
    features: spec.layers.slice(0, flat) as Array<Conv2dSpec | PoolSpec>,
    dense: (spec.layers.slice(flat + 1) as Array<{ type: 'dense' } & DenseLayerSpec>).map(({ units, activation }) => ({
      units,
      activation,
    })),
  };
}

export type CnnLayout = ModelLayout<CnnSpec>;

const LAYER_TYPES = ['conv2d', 'maxPool', 'avgPool', 'flatten', 'dense'];

function int(v: unknown, field: string, dflt: number | undefined, max: number): number {
  const x = v ?? dflt;
  if (typeof x !== 'number' || !Number.isInteger(x) || x < 1 || x > max)
    fail('MODEL_INVALID', `${field} must be an integer in 1..${max}, got ${JSON.stringify(v)}`);
  return x;
}

function parseFeature(l: Json, at: string): Conv2dSpec | PoolSpec {
  if (l.type === 'conv2d') {
    checkKeys(l, ['type', 'filters', 'kernel', 'stride', 'padding', 'activation'], `${at}.`, 'MODEL_INVALID');
    const padding = l.padding ?? 'valid';
    if (padding !== 'same' && padding !== 'valid')
      fail('MODEL_INVALID', `${at}.padding must be "same" or "valid", got ${JSON.stringify(padding)}`);
    return {
      type: 'conv2d',
      filters: int(l.filters, `${at}.filters`, undefined, 4096),
      kernel: int(l.kernel, `${at}.kernel`, undefined, 64),
      stride: int(l.stride, `${at}.stride`, 1, 64),
      padding,
      activation: parseActivation(l.activation, `${at}.activation`),
    };
  }
  checkKeys(l, ['type', 'size', 'stride'], `${at}.`, 'MODEL_INVALID');
  const size = int(l.size, `${at}.size`, 2, 64);
  return { type: l.type as PoolSpec['type'], size, stride: int(l.stride, `${at}.stride`, size, 64) };
}

function parseCnn(raw: Json, where: string): CnnSpec {
  checkKeys(raw, ['kind', 'layers', 'loss'], `${where}.`, 'MODEL_INVALID');
  const layers = raw.layers;
  if (!Array.isArray(layers) || layers.length === 0)
    fail(
      'MODEL_INVALID',
      `${where}.layers must be a non-empty array of {type: conv2d | maxPool | avgPool | flatten | dense, ...}`,
    );
  const flat = layers.findIndex((l) => isObj(l) && l.type === 'flatten');
  const features: Array<Conv2dSpec | PoolSpec> = [];
  layers.forEach((l, i) => {
    const at = `${where}.layers[${i}]`;
    if (!isObj(l)) fail('MODEL_INVALID', `${at} must be an object with a "type"`);
    if (!LAYER_TYPES.includes(l.type as string))
      fail('MODEL_INVALID', `${at}.type must be one of ${LAYER_TYPES.join(', ')}, got ${JSON.stringify(l.type)}`);
    if (flat < 0 || i < flat) {
      if (l.type === 'dense')
        fail(
          'MODEL_INVALID',
          `${at} is dense before any flatten: put {"type": "flatten"} between the feature layers and the dense ones`,
        );
      features.push(parseFeature(l, at));
    } else if (i > flat && l.type !== 'dense')
      fail('MODEL_INVALID', `${at}.type is ${l.type} after flatten: only dense layers may follow it`);
    else if (i === flat) checkKeys(l, ['type'], `${at}.`, 'MODEL_INVALID');
  });
  if (flat < 0 || flat === layers.length - 1)
    fail('MODEL_INVALID', `${where}.layers must end with {"type": "flatten"} and at least one dense layer`);
  const denseRaw = (layers.slice(flat + 1) as Json[]).map(({ type: _type, ...rest }) => rest);
  const dense = parseDenseLayers(denseRaw, `${where}.layers`, flat + 1);
  const loss = parseLoss(raw.loss, `${where}.loss`);
  checkHead(loss, dense[dense.length - 1].activation, `${where}.layers[${layers.length - 1}]`);
  return {
    kind: 'cnn',
    layers: [...features, { type: 'flatten' }, ...dense.map((d) => ({ type: 'dense' as const, ...d }))],
    loss,
  };
}

interface Geometry {
  parts: ConvNetPart[];
  slots: Array<{ name: string; shape: number[] }>;
  flatSize: number;
}

/** Shapes through the feature layers; refuses a layer whose output would be empty. */
function geometry(spec: CnnSpec, input: number[]): Geometry {
  const { features, dense } = cnnParts(spec);
  let [h, w, c] = input;
  const parts: ConvNetPart[] = [];
  const slots: Geometry['slots'] = [];
  let convs = 0;
  features.forEach((f, i) => {
    const at = `model.layers[${i}]`;
    if (f.type === 'conv2d') {
      const ph = convPads(h, f.kernel, f.stride, f.padding);
      const pw = convPads(w, f.kernel, f.stride, f.padding);
      if (ph.out < 1 || pw.out < 1)
        fail('MODEL_INVALID', `${at}: a ${f.kernel}×${f.kernel} "valid" convolution does not fit its ${h}×${w} input`);
      slots.push(
        { name: `conv2d_${convs}/kernel`, shape: [f.kernel, f.kernel, c, f.filters] },
        { name: `conv2d_${convs}/bias`, shape: [f.filters] },
      );
      convs++;
      parts.push({
        type: 'conv2d',
        kh: f.kernel,
        kw: f.kernel,
        cin: c,
        cout: f.filters,
        outH: ph.out,
        outW: pw.out,
        activation: f.activation !== 'linear',
      });
      [h, w, c] = [ph.out, pw.out, f.filters];
    } else {
      const oh = Math.floor((h - f.size) / f.stride) + 1;
      const ow = Math.floor((w - f.size) / f.stride) + 1;
      if (oh < 1 || ow < 1) fail('MODEL_INVALID', `${at}: a ${f.size}×${f.size} pool does not fit its ${h}×${w} input`);
      parts.push({ type: 'pool', window: f.size * f.size, outH: oh, outW: ow, channels: c });
      [h, w] = [oh, ow];
    }
  });
  const flatSize = h * w * c;
  let fanIn = flatSize;
  for (const d of dense) {
    parts.push({ type: 'dense', fanIn, units: d.units, activation: d.activation !== 'linear' });
    fanIn = d.units;
  }
  slots.push(...denseSlots(dense, flatSize));
  return { parts, slots, flatSize };
}

export const cnn: ModelKind<CnnSpec> = {
  kind: 'cnn',
  parse: parseCnn,
  layout(spec, data) {
    if (data.inputShape.length !== 3 || data.inputDtype !== 'float32') {
      fail(
        'MODEL_INVALID',
        `model.kind cnn needs images [height, width, channels] of float32; this dataset gives ${data.inputDtype} inputs of ` +
          `shape [${data.inputShape.join(', ')}]`,
      );
    }
    checkOutputs(cnnParts(spec).dense, spec.loss, data, `model.layers[${spec.layers.length - 1}]`, 'cnn');
    const { slots } = geometry(spec, data.inputShape);
    return {
      spec,
      data,
      inputShape: data.inputShape,
      inputSize: data.inputShape.reduce((a, b) => a * b, 1),
      outputSize: data.outputSize,
      ...packSlots(slots),
    };
  },
  init: (layout, seed) => glorotUniform(layout.params, layout.totalParams, seed, (s) => kernelFans(s.shape)),
  forward(layout, params, x) {
    const { features, dense } = cnnParts(layout.spec);
    let h = x as tf.Tensor4D;
    let p = 0;
    features.forEach((f, i) => {
      if (f.type === 'conv2d') {
        const z = tf.add(
          conv2d(h, params[p] as tf.Tensor4D, f.stride, f.padding, { constantX: i === 0 }),
          params[p + 1],
        ) as tf.Tensor4D;
        h = activate(z, f.activation);
        p += 2;
      } else
        h = f.type === 'maxPool' ? tf.maxPool(h, f.size, f.stride, 'valid') : tf.avgPool(h, f.size, f.stride, 'valid');
    });
    const flat = tf.reshape(h, [h.shape[0], -1]) as tf.Tensor2D;
    return denseStack(dense, params.slice(p), flat, p === 0);
  },
  outputShape: (layout, rows) => [rows, layout.outputSize],
  lossSum: (layout, out, y) => headLossSum(layout.spec.loss, layout.outputSize, out, y),
  correctCount: (layout, out, y) => headCorrectCount(layout.spec.loss, layout.data.targets, out, y),
  flops(layout) {
    const f = convNetFlopsPerSample(geometry(layout.spec, layout.inputShape).parts, layout.outputSize);
    return {
      unit: 'sample',
      itemsPerSample: 1,
      forward: f.forward,
      training: f.training,
      describe: `cnn model: ${layout.totalParams.toLocaleString('en-US')} parameters`,
    };
  },
  // The convolutions' filter gradients are taken over the whole pass: one pass per leaf.
  batchesLeaves: () => false,
  toLayers(layout) {
    const { features, dense } = cnnParts(layout.spec);
    const model = tf.sequential();
    let convs = 0;
    features.forEach((f, i) => {
      const first = i === 0 ? { inputShape: layout.inputShape } : {};
      if (f.type === 'conv2d') {
        model.add(
          tf.layers.conv2d({
            name: `conv2d_${convs++}`,
            filters: f.filters,
            kernelSize: f.kernel,
            strides: f.stride,
            padding: f.padding,
            activation: f.activation as 'linear',
            ...first,
          }),
        );
      } else {
        const pool = { poolSize: f.size, strides: f.stride, padding: 'valid' as const, ...first };
        model.add(f.type === 'maxPool' ? tf.layers.maxPooling2d(pool) : tf.layers.averagePooling2d(pool));
      }
    });
    model.add(tf.layers.flatten(features.length === 0 ? { inputShape: layout.inputShape } : {}));
    addDenseLayers(model, dense, layout.spec.loss, 0);
    return model;
  },
};
