/**
 * `layers`: the user's own TF.js Layers model, a model.json saved by tfjs-layers `model.save()`
 * (or converted from Keras 2). Its chain of layers (layers-topology.ts) is run here with the
 * same ops as the built-in kinds (matmuls through shared/ops/matmul.ts, convolutions through
 * shared/ops/conv2d.ts), so it trains through the central Adam like any kind: each trainable
 * weight is a named slot (`<layer name>/kernel`, `<layer name>/bias`). Weights in the file are
 * the initialization; without them, seeded Glorot kernels and zero biases. The loss is
 * model.loss, else the file's compiled loss, else the one the last activation implies (softmax:
 * softmaxCrossEntropy, sigmoid: binaryCrossEntropy, else meanSquaredError). Cross-entropy
 * is computed on the logits: the last softmax / sigmoid is left out of the forward pass and kept
 * in the export, which predicts what the user's model predicts.
 */
import * as tf from '@tensorflow/tfjs';
import { convNetFlopsPerSample, type ConvNetPart } from '../accounting/flops.js';
import { fail } from '../util/errors.js';
import { checkKeys, str } from '../job/fields.js';
import { conv2d, convPads } from '../ops/conv2d.js';
import { affine } from '../ops/leaf-pass.js';
import { packSlots, type ModelKind, type ModelLayout } from './contract.js';
import { activate, checkTargets, headCorrectCount, headLossSum, LINK, parseLoss, type Loss } from './heads.js';
import { glorotUniform, kernelFans } from './init.js';
import { fileSha256, readTopology, type LayerActivation, type LayerOp, type Topology } from './layers-topology.js';

export interface LayersSpec {
  kind: 'layers';
  /** model.json; a relative path in a config file is resolved against the file's folder. */
  path: string;
  /** Overrides the file's compiled loss and the one its last activation implies. */
  loss?: Loss;
  /**
   * SHA-256 of model.json, pinned by the first process that parses the job (the coordinator) and
   * sent with it: a worker, or a resumed run, whose file differs is refused instead of training
   * another model under the same slot names.
   */
  sha256?: string;
}

export type LayersLayout = ModelLayout<LayersSpec>;

interface Plan {
  topo: Topology;
  loss: Loss;
  /** The op whose activation is the loss's link (left out of the forward pass), or -1. */
  linkAt: number;
  slots: Array<{ name: string; shape: number[] }>;
  parts: ConvNetPart[];
  outShape: number[];
}

/** The op that sets the model's final activation (trailing flatten and dropout pass it through). */
function finalActivation(ops: LayerOp[]): { at: number; activation: LayerActivation } {
  for (let i = ops.length - 1; i >= 0; i--) {
    const op = ops[i];
    if (op.type === 'dense' || op.type === 'conv2d' || op.type === 'activation')
      return { at: i, activation: op.activation };
    if (op.type === 'maxPool' || op.type === 'avgPool') break;
  }
  return { at: -1, activation: 'linear' };
}

function lossOf(spec: LayersSpec, topo: Topology, last: LayerActivation): Loss {
  if (spec.loss) return spec.loss;
  if (topo.loss) return topo.loss;
  return last === 'softmax' ? 'softmaxCrossEntropy' : last === 'sigmoid' ? 'binaryCrossEntropy' : 'meanSquaredError';
}

/** Shapes through the chain: slots, FLOP parts, and a line for any layer that cannot take its input. */
function walk(topo: Topology): Pick<Plan, 'slots' | 'parts' | 'outShape'> {
  let shape = topo.inputShape.slice();
  const slots: Plan['slots'] = [];
  const parts: ConvNetPart[] = [];
  const at = (op: LayerOp) => `model.path ${topo.file}: layer ${op.name}`;
  const image = (op: LayerOp) => {
    if (shape.length !== 3)
      fail('MODEL_INVALID', `${at(op)} needs an image input [height, width, channels], and gets [${shape.join(', ')}]`);
  };
  for (const op of topo.ops) {
    if (op.type === 'dense') {
      if (shape.length !== 1)
        fail('MODEL_INVALID', `${at(op)} (Dense) gets a [${shape.join(', ')}] input; put a Flatten before it`);
      slots.push(
        { name: `${op.name}/kernel`, shape: [shape[0], op.units] },
        ...(op.bias ? [{ name: `${op.name}/bias`, shape: [op.units] }] : []),
      );
      parts.push({
        type: 'dense',
        fanIn: shape[0],
        units: op.units,
        activation: op.activation !== 'linear',
        bias: op.bias,
      });
      shape = [op.units];
    } else if (op.type === 'conv2d') {
      image(op);
      const [h, w, c] = shape;
      const ph = convPads(h, op.kernel[0], op.stride, op.padding);
      const pw = convPads(w, op.kernel[1], op.stride, op.padding);
      if (ph.out < 1 || pw.out < 1)
        fail('MODEL_INVALID', `${at(op)}: its ${op.kernel.join('×')} kernel does not fit the ${h}×${w} input`);
      slots.push(
        { name: `${op.name}/kernel`, shape: [...op.kernel, c, op.filters] },
        ...(op.bias ? [{ name: `${op.name}/bias`, shape: [op.filters] }] : []),
      );
      parts.push({
        type: 'conv2d',
        kh: op.kernel[0],
        kw: op.kernel[1],
        cin: c,
        cout: op.filters,
        outH: ph.out,
        outW: pw.out,
        activation: op.activation !== 'linear',
        bias: op.bias,
      });
      shape = [ph.out, pw.out, op.filters];
    } else if (op.type === 'maxPool' || op.type === 'avgPool') {
      image(op);
      const oh = convPads(shape[0], op.size[0], op.stride[0], op.padding).out;
      const ow = convPads(shape[1], op.size[1], op.stride[1], op.padding).out;
      if (oh < 1 || ow < 1)
        fail(
          'MODEL_INVALID',
          `${at(op)}: its ${op.size.join('×')} pool does not fit the ${shape[0]}×${shape[1]} input`,
        );
      parts.push({ type: 'pool', window: op.size[0] * op.size[1], outH: oh, outW: ow, channels: shape[2] });
      shape = [oh, ow, shape[2]];
    } else if (op.type === 'flatten') shape = [shape.reduce((a, b) => a * b, 1)];
    else if (op.type === 'activation' && op.activation !== 'linear')
      parts.push({ type: 'elementwise', size: shape.reduce((a, b) => a * b, 1) });
  }
  return { slots, parts, outShape: shape };
}

const plans = new Map<string, Plan>();

function planOf(spec: LayersSpec): Plan {
  const key = `${spec.path}\u0000${spec.loss ?? ''}\u0000${spec.sha256 ?? ''}`;
  const hit = plans.get(key);
  if (hit) return hit;
  const topo = readTopology(spec.path);
  if (spec.sha256 !== undefined && spec.sha256 !== topo.sha256) {
    fail(
      'MODEL_INVALID',
      `model.path ${topo.file} is not the job's model.json (SHA-256 ${topo.sha256.slice(0, 12)}…, ` +
        `the job's ${spec.sha256.slice(0, 12)}…): give every host, and a resumed run, the same file`,
    );
  }
  const final = finalActivation(topo.ops);
  const loss = lossOf(spec, topo, final.activation);
  const link = LINK[loss];
  if (link && final.activation !== link) {
    fail(
      'MODEL_INVALID',
      `model.loss ${loss} needs the model to end in a ${link} activation (its output is what the loss compares), ` +
        `and ${topo.file} ends in ${final.activation}`,
    );
  }
  const plan = { topo, loss, linkAt: link ? final.at : -1, ...walk(topo) };
  plans.set(key, plan);
  return plan;
}

function act(x: tf.Tensor, a: LayerActivation): tf.Tensor {
  return a === 'softmax' ? tf.softmax(x) : activate(x, a);
}

/** The file's weights for the slots, by name (a prefix such as "sequential/" allowed), else in order when ' +
  'shapes agree. */
function fileWeights(layout: LayersLayout, p: Plan): Float32Array | null {
  const entries = p.topo.weights();
  if (entries === null) return null;
  const out = new Float32Array(layout.totalParams);
  const byName = layout.params.map((s) => entries.find((e) => e.name === s.name || e.name.endsWith(`/${s.name}`)));
  const inOrder =
    entries.length === layout.params.length &&
    entries.every((e, i) => e.shape.join('x') === layout.params[i].shape.join('x'));
  layout.params.forEach((s, i) => {
    const e = byName[i] ?? (inOrder ? entries[i] : undefined);
    if (!e)
      fail(
        'MODEL_INVALID',
        `model.path ${p.topo.file}: its weights have no ${s.name} (it has ${entries.map((w) => w.name).join(', ')})`,
      );
    if (e.values.length !== s.size)
      fail(
        'MODEL_INVALID',
        `model.path ${p.topo.file}: weight ${e.name} has shape [${e.shape.join(', ')}], the layer needs ` +
          `[${s.shape.join(', ')}]`,
      );
    out.set(e.values, s.offset);
  });
  return out;
}

export const layers: ModelKind<LayersSpec> = {
  kind: 'layers',
  parse(raw, where) {
    checkKeys(raw, ['kind', 'path', 'loss', 'sha256'], `${where}.`, 'MODEL_INVALID');
    const path = str(
      raw.path,
      `${where}.path`,
      'a TF.js Layers model.json (tfjs-layers model.save())',
      'MODEL_INVALID',
    );
    if (raw.sha256 !== undefined && (typeof raw.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(raw.sha256)))
      fail('MODEL_INVALID', `${where}.sha256 must be 64 hex digits (the SHA-256 of model.json), or left out`);
    // Unpinned (a config file): pin the file as this process reads it now.
    const sha256 = (raw.sha256 as string | undefined) ?? fileSha256(path);
    return {
      kind: 'layers',
      path,
      ...(raw.loss === undefined ? {} : { loss: parseLoss(raw.loss, `${where}.loss`) }),
      ...(sha256 === null ? {} : { sha256 }),
    };
  },
  layout(spec, data) {
    const p = planOf(spec);
    if (data.inputDtype !== 'float32')
      fail('MODEL_INVALID', 'model.kind layers needs float32 features; this dataset gives int32 token ids');
    checkTargets(p.loss, data.targets, data.outputSize, 'layers');
    if (p.topo.inputShape.join('x') !== data.inputShape.join('x')) {
      fail(
        'MODEL_INVALID',
        `model.path ${p.topo.file} takes inputs of shape [${p.topo.inputShape.join(', ')}], and the dataset ` +
          `gives [${data.inputShape.join(', ')}]`,
      );
    }
    if (p.outShape.length !== 1 || p.outShape[0] !== data.outputSize) {
      fail(
        'MODEL_INVALID',
        `model.path ${p.topo.file} gives outputs of shape [${p.outShape.join(', ')}], and the dataset has ` +
          `${data.outputSize} target values per sample`,
      );
    }
    const inputSize = data.inputShape.reduce((a, b) => a * b, 1);
    return { spec, data, inputShape: data.inputShape, inputSize, outputSize: data.outputSize, ...packSlots(p.slots) };
  },
  init(layout, seed) {
    return (
      fileWeights(layout, planOf(layout.spec)) ??
      glorotUniform(layout.params, layout.totalParams, seed, (s) => kernelFans(s.shape))
    );
  },
  forward(layout, params, x) {
    const p = planOf(layout.spec);
    let h = x;
    let k = 0;
    let isData = true; // until the first layer with weights: no gradient needed for h
    p.topo.ops.forEach((op, i) => {
      const a = i === p.linkAt ? 'linear' : 'activation' in op ? op.activation : 'linear';
      if (op.type === 'dense' || op.type === 'conv2d') {
        const b = op.bias ? params[k + 1] : null;
        let z: tf.Tensor;
        if (op.type === 'dense') z = affine(h as tf.Tensor2D, params[k], b, { constantA: isData });
        else {
          z = conv2d(h as tf.Tensor4D, params[k] as tf.Tensor4D, op.stride, op.padding, { constantX: isData });
          if (b) z = tf.add(z, b);
        }
        k += b ? 2 : 1;
        h = act(z, a);
        isData = false;
      } else if (op.type === 'maxPool') h = tf.maxPool(h as tf.Tensor4D, op.size, op.stride, op.padding);
      else if (op.type === 'avgPool') h = tf.avgPool(h as tf.Tensor4D, op.size, op.stride, op.padding);
      else if (op.type === 'flatten') h = tf.reshape(h, [h.shape[0], -1]);
      else if (op.type === 'activation') h = act(h, a);
    });
    return h;
  },
  outputShape: (layout, rows) => [rows, layout.outputSize],
  lossSum: (layout, out, y) => headLossSum(planOf(layout.spec).loss, layout.outputSize, out, y),
  correctCount: (layout, out, y) => headCorrectCount(planOf(layout.spec).loss, layout.data.targets, out, y),
  flops(layout) {
    const f = convNetFlopsPerSample(planOf(layout.spec).parts, layout.outputSize);
    return {
      unit: 'sample',
      itemsPerSample: 1,
      forward: f.forward,
      training: f.training,
      describe: `layers model: ${layout.totalParams.toLocaleString('en-US')} parameters`,
    };
  },
  // Dense layers take their gradients per leaf; convolutions do not (one pass per leaf then).
  batchesLeaves: (layout) => planOf(layout.spec).topo.ops.every((op) => op.type !== 'conv2d'),
  toLayers(layout) {
    const p = planOf(layout.spec);
    const model = tf.sequential();
    p.topo.ops.forEach((op, i) => {
      const first = i === 0 ? { inputShape: p.topo.inputShape } : {};
      const base = { name: op.name, ...first };
      if (op.type === 'dense')
        model.add(tf.layers.dense({ ...base, units: op.units, activation: op.activation, useBias: op.bias }));
      else if (op.type === 'conv2d') {
        model.add(
          tf.layers.conv2d({
            ...base,
            filters: op.filters,
            kernelSize: op.kernel,
            strides: op.stride,
            padding: op.padding,
            activation: op.activation,
            useBias: op.bias,
          }),
        );
      } else if (op.type === 'maxPool' || op.type === 'avgPool') {
        const pool = { ...base, poolSize: op.size, strides: op.stride, padding: op.padding };
        model.add(op.type === 'maxPool' ? tf.layers.maxPooling2d(pool) : tf.layers.averagePooling2d(pool));
      } else if (op.type === 'flatten') model.add(tf.layers.flatten(base));
      else if (op.type === 'activation') model.add(tf.layers.activation({ ...base, activation: op.activation }));
      else model.add(tf.layers.dropout({ ...base, rate: 0 }));
    });
    return model;
  },
};
