/**
 * Reading a TF.js Layers model.json (tfjs-layers `model.save()`, or tensorflowjs_converter from
 * Keras 2) into the chain of layers the `layers` kind trains. Only what data-parallel training
 * reproduces exactly is accepted; everything else is refused with one MODEL_INVALID line naming
 * the layer and why (BatchNormalization: state outside the trainable weights, and batch
 * statistics that depend on how the batch is cut into shards; Dropout with a rate: a random mask
 * drawn per shard; regularizers and constraints: not applied by the central Adam).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fail } from '../util/errors.js';
import { isObj, type Json } from '../job/fields.js';
import type { Loss } from './heads.js';

export const LAYER_ACTIVATIONS = ['linear', 'relu', 'tanh', 'sigmoid', 'gelu', 'softmax'] as const;
export type LayerActivation = (typeof LAYER_ACTIVATIONS)[number];

export type LayerOp =
  | { type: 'dense'; name: string; units: number; activation: LayerActivation; bias: boolean }
  | {
      type: 'conv2d';
      name: string;
      filters: number;
      kernel: [number, number];
      stride: number;
      padding: 'same' | 'valid';
      activation: LayerActivation;
      bias: boolean;
    }
  | {
      type: 'maxPool' | 'avgPool';
      name: string;
      size: [number, number];
      stride: [number, number];
      padding: 'same' | 'valid';
    }
  | { type: 'flatten'; name: string }
  | { type: 'activation'; name: string; activation: LayerActivation }
  | { type: 'dropout'; name: string };

export interface WeightEntry {
  name: string;
  shape: number[];
  values: Float32Array;
}

export interface Topology {
  file: string;
  /** One sample's input, from the model's batch input shape. */
  inputShape: number[];
  ops: LayerOp[];
  /** The compiled loss the file names (Keras / tfjs training_config), if any. */
  loss: Loss | null;
  /** SHA-256 of the file's bytes: every process of a job must read the same topology. */
  sha256: string;
  /** Read on demand: only the coordinator initializes. */
  weights: () => WeightEntry[] | null;
}

const SUPPORTED = 'InputLayer, Dense, Conv2D, MaxPooling2D, AveragePooling2D, Flatten, Activation, Dropout (rate 0)';

const KERAS_LOSSES: Record<string, Loss> = {
  categorical_crossentropy: 'softmaxCrossEntropy',
  categoricalCrossentropy: 'softmaxCrossEntropy',
  binary_crossentropy: 'binaryCrossEntropy',
  binaryCrossentropy: 'binaryCrossEntropy',
  mean_squared_error: 'meanSquaredError',
  meanSquaredError: 'meanSquaredError',
  mse: 'meanSquaredError',
};

function readJson(file: string): Json {
  if (!existsSync(file)) fail('MODEL_INVALID', `model.path: ${file} does not exist`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    return fail('MODEL_INVALID', `model.path: ${file} is not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
  return isObj(raw)
    ? raw
    : fail('MODEL_INVALID', `model.path: ${file} holds no JSON object: not a TF.js Layers model.json`);
}

/** Keras 3 writes configs TF.js cannot read (module / registered_name fields, DTypePolicy objects, batch_shape). */
function isKeras3(topo: Json, layers: unknown[]): boolean {
  const version = String(topo.keras_version ?? '');
  if (/^3\./.test(version)) return true;
  return layers.some(
    (l) =>
      isObj(l) &&
      ('registered_name' in l ||
        'module' in l ||
        (isObj(l.config) && (isObj(l.config.dtype) || 'batch_shape' in l.config))),
  );
}

function modelConfig(file: string, json: Json): { topo: Json; className: string; layers: Json[] } {
  if (json.format === 'graph-model' || (isObj(json.modelTopology) && 'node' in json.modelTopology)) {
    fail(
      'MODEL_INVALID',
      `model.path: ${file} is a TF.js graph model, not a Layers model: dptrain trains Layers models (tfjs-layers ` +
        `model.save(), or tensorflowjs_converter --output_format tfjs_layers_model)`,
    );
  }
  const topo = json.modelTopology;
  if (!isObj(topo)) fail('MODEL_INVALID', `model.path: ${file} has no modelTopology: not a TF.js Layers model.json`);
  const mc = isObj(topo.model_config) ? topo.model_config : topo;
  const className = String(mc.class_name ?? '');
  const cfg = mc.config;
  const layers = Array.isArray(cfg) ? cfg : isObj(cfg) && Array.isArray(cfg.layers) ? cfg.layers : null;
  if (layers !== null && isKeras3(topo, layers)) {
    fail(
      'MODEL_INVALID',
      `model.path: ${file} is a Keras 3 config (keras_version ${String(topo.keras_version ?? '3')}), which TF.js ` +
        `cannot read: save it from Keras 2 (tf_keras) or build the model with tfjs-layers`,
    );
  }
  if (!['Sequential', 'Model', 'Functional'].includes(className) || layers === null) {
    fail(
      'MODEL_INVALID',
      `model.path: ${file}: modelTopology is not a Layers model (class_name ${JSON.stringify(mc.class_name)}; ` +
        `expected Sequential, Model or Functional with layers)`,
    );
  }
  return {
    topo,
    className,
    layers: layers.map((l, i) =>
      isObj(l) ? l : fail('MODEL_INVALID', `model.path: ${file}: layer ${i} is not an object`),
    ),
  };
}

/** A functional model is accepted when it is a chain: every layer takes the one before it. */
function checkChain(file: string, layers: Json[]): void {
  layers.forEach((l, i) => {
    const nodes = l.inbound_nodes;
    if (i === 0) return;
    const prev = String(layers[i - 1].name ?? (isObj(layers[i - 1].config) ? (layers[i - 1].config as Json).name : ''));
    const ok =
      Array.isArray(nodes) &&
      nodes.length === 1 &&
      Array.isArray(nodes[0]) &&
      nodes[0].length === 1 &&
      Array.isArray(nodes[0][0]) &&
      nodes[0][0][0] === prev;
    if (!ok)
      fail(
        'MODEL_INVALID',
        `model.path: ${file}: layer ${String(l.name)} does not take the layer before it alone; the layers kind ` +
          `trains a chain of layers (a Sequential model)`,
      );
  });
}

function activationOf(v: unknown, at: string): LayerActivation {
  const a = v ?? 'linear';
  if (!(LAYER_ACTIVATIONS as readonly unknown[]).includes(a))
    fail(
      'MODEL_INVALID',
      `${at}: activation ${JSON.stringify(a)} is not supported (supported: ${LAYER_ACTIVATIONS.join(', ')})`,
    );
  return a as LayerActivation;
}

const pair = (v: unknown, at: string, what: string): [number, number] => {
  const p = typeof v === 'number' ? [v, v] : v;
  if (!Array.isArray(p) || p.length !== 2 || !p.every((n) => Number.isInteger(n) && n >= 1))
    fail('MODEL_INVALID', `${at}: ${what} ${JSON.stringify(v)} is not two positive integers`);
  return p as [number, number];
};

function padding(v: unknown, at: string): 'same' | 'valid' {
  if (v !== undefined && v !== 'same' && v !== 'valid')
    fail('MODEL_INVALID', `${at}: padding ${JSON.stringify(v)} is not "same" or "valid"`);
  return (v ?? 'valid') as 'same' | 'valid';
}

function refuseExtras(c: Json, at: string): void {
  for (const k of [
    'kernel_regularizer',
    'bias_regularizer',
    'activity_regularizer',
    'kernel_constraint',
    'bias_constraint',
  ]) {
    if (c[k] !== null && c[k] !== undefined)
      fail(
        'MODEL_INVALID',
        `${at}: ${k} is set, and dptrain's central Adam does not apply regularizers or constraints; remove it`,
      );
  }
  if (c.data_format !== undefined && c.data_format !== 'channels_last')
    fail('MODEL_INVALID', `${at}: data_format ${JSON.stringify(c.data_format)}; only channels_last is supported`);
}

function toOp(l: Json, file: string): LayerOp | null {
  const c = isObj(l.config) ? l.config : {};
  const name = String(c.name ?? l.name ?? '');
  const cls = String(l.class_name);
  const at = `model.path ${file}: layer ${name} (${cls})`;
  refuseExtras(c, at);
  switch (cls) {
    case 'InputLayer':
      return null;
    case 'Dense':
      if (!Number.isInteger(c.units) || (c.units as number) < 1)
        fail('MODEL_INVALID', `${at}: units ${JSON.stringify(c.units)} is not a positive integer`);
      return {
        type: 'dense',
        name,
        units: c.units as number,
        activation: activationOf(c.activation, at),
        bias: c.use_bias !== false,
      };
    case 'Conv2D': {
      const strides = pair(c.strides ?? 1, at, 'strides');
      if (strides[0] !== strides[1])
        fail('MODEL_INVALID', `${at}: strides ${JSON.stringify(c.strides)}; only equal strides are supported`);
      const dilation = pair(c.dilation_rate ?? 1, at, 'dilation_rate');
      if (dilation[0] !== 1 || dilation[1] !== 1)
        fail('MODEL_INVALID', `${at}: dilation_rate ${JSON.stringify(c.dilation_rate)}; only 1 is supported`);
      if (!Number.isInteger(c.filters) || (c.filters as number) < 1)
        fail('MODEL_INVALID', `${at}: filters ${JSON.stringify(c.filters)} is not a positive integer`);
      const kernel = pair(c.kernel_size, at, 'kernel_size');
      return {
        type: 'conv2d',
        name,
        filters: c.filters as number,
        kernel,
        stride: strides[0],
        padding: padding(c.padding, at),
        activation: activationOf(c.activation, at),
        bias: c.use_bias !== false,
      };
    }
    case 'MaxPooling2D':
    case 'AveragePooling2D': {
      const size = pair(c.pool_size ?? 2, at, 'pool_size');
      return {
        type: cls === 'MaxPooling2D' ? 'maxPool' : 'avgPool',
        name,
        size,
        stride: c.strides == null ? size : pair(c.strides, at, 'strides'),
        padding: padding(c.padding, at),
      };
    }
    case 'Flatten':
      return { type: 'flatten', name };
    case 'Activation':
      return { type: 'activation', name, activation: activationOf(c.activation, at) };
    case 'Dropout':
      if (c.rate !== 0) {
        fail(
          'MODEL_INVALID',
          `${at}: Dropout with rate ${JSON.stringify(c.rate)} is refused: its random mask would be drawn per ` +
            `shard, so N workers would not train as one process does; set rate 0 or remove it`,
        );
      }
      return { type: 'dropout', name };
    case 'BatchNormalization':
      return fail(
        'MODEL_INVALID',
        `${at} is refused: its moving mean and variance are state outside the trainable weights, and its batch ` +
          `statistics depend on how the batch is cut into shards; remove it`,
      );
    default:
      return fail(
        'MODEL_INVALID',
        `${at}: layer class ${cls} is not supported by model.kind layers (supported: ${SUPPORTED})`,
      );
  }
}

/** The batch input shape the first layer (or the InputLayer) declares, without the batch axis. */
function inputShapeOf(file: string, layers: Json[]): number[] {
  const first = layers[0];
  const c = first && isObj(first.config) ? first.config : {};
  const bis = c.batch_input_shape;
  if (!Array.isArray(bis) || bis.length < 2 || !bis.slice(1).every((n) => Number.isInteger(n) && n >= 1)) {
    fail(
      'MODEL_INVALID',
      `model.path: ${file}: the first layer declares no complete input shape (batch_input_shape ` +
        `${JSON.stringify(bis)}); build the model with inputShape on its first layer`,
    );
  }
  return bis.slice(1) as number[];
}

/** Weights in the manifest, sliced from its binary files (next to model.json), by name. */
function readWeights(file: string, json: Json): WeightEntry[] | null {
  const manifest = json.weightsManifest;
  if (!Array.isArray(manifest) || manifest.length === 0) return null;
  const out: WeightEntry[] = [];
  for (const group of manifest) {
    if (!isObj(group) || !Array.isArray(group.paths) || !Array.isArray(group.weights))
      fail('MODEL_INVALID', `model.path: ${file}: a weightsManifest group lacks paths or weights`);
    const bufs = (group.paths as string[]).map((p) => {
      const f = resolve(dirname(file), p);
      if (!existsSync(f)) fail('MODEL_INVALID', `model.path: ${file}: its weights file ${f} does not exist`);
      return readFileSync(f);
    });
    const bytes = Buffer.concat(bufs);
    let offset = 0;
    for (const w of group.weights as Json[]) {
      const shape = w.shape as number[];
      const size = shape.reduce((a, b) => a * b, 1);
      if (w.dtype !== 'float32' || w.quantization !== undefined)
        fail(
          'MODEL_INVALID',
          `model.path: ${file}: weight ${String(w.name)} is ${w.quantization ? 'quantized' : String(w.dtype)}; ` +
            `only float32 weights are read`,
        );
      if (offset + size * 4 > bytes.length)
        fail('MODEL_INVALID', `model.path: ${file}: the weights files end before weight ${String(w.name)}`);
      const values = new Float32Array(size);
      new Uint8Array(values.buffer).set(bytes.subarray(offset, offset + size * 4));
      out.push({ name: String(w.name).replace(/:0$/, ''), shape, values });
      offset += size * 4;
    }
  }
  return out;
}

const cache = new Map<string, Topology>();

/** SHA-256 (hex) of a model file's bytes, or null if it cannot be read (reading it says why). */
export function fileSha256(file: string): string | null {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch {
    return null;
  }
}

/** The model file's chain of layers, read once per process. */
export function readTopology(path: string): Topology {
  const file = resolve(path);
  const hit = cache.get(file);
  if (hit) return hit;
  const json = readJson(file);
  const { topo, className, layers } = modelConfig(file, json);
  if (className !== 'Sequential') checkChain(file, layers);
  const ops = layers.map((l) => toOp(l, file)).filter((o): o is LayerOp => o !== null);
  if (ops.length === 0) fail('MODEL_INVALID', `model.path: ${file}: the model has no layers`);
  // Keras converter: modelTopology.training_config; tfjs-layers save(): trainingConfig beside it.
  const tc = isObj(topo.training_config)
    ? topo.training_config
    : isObj(json.trainingConfig)
      ? json.trainingConfig
      : null;
  const lossName = tc && typeof tc.loss === 'string' ? tc.loss : null;
  const loss =
    lossName === null
      ? null
      : (KERAS_LOSSES[lossName] ??
        fail(
          'MODEL_INVALID',
          `model.path: ${file}: its compiled loss ${lossName} is not one dptrain trains ` +
            `(${Object.keys(KERAS_LOSSES).join(', ')}); set model.loss`,
        ));
  let weights: WeightEntry[] | null | undefined;
  const t: Topology = {
    file,
    inputShape: inputShapeOf(file, layers),
    ops,
    loss,
    sha256: createHash('sha256').update(readFileSync(file)).digest('hex'),
    weights: () => {
      if (weights === undefined) weights = readWeights(file, json);
      return weights;
    },
  };
  cache.set(file, t);
  return t;
}
