/**
 * The declarative model: a stack of dense layers and a loss. One spec gives the coordinator
 * its parameter layout and initialization, the worker its TF.js graph, and the exporter its
 * Layers topology, so the three can never disagree about shapes.
 */
import { fail } from './errors.js';
import { Rng, deriveSeed } from './rng.js';

export const ACTIVATIONS = ['relu', 'tanh', 'sigmoid', 'gelu', 'linear'] as const;
export type Activation = (typeof ACTIVATIONS)[number];

/**
 * softmaxCrossEntropy and binaryCrossEntropy take logits: the last layer must be linear and
 * the loss applies softmax / sigmoid itself (numerically stable, as Keras `from_logits`).
 * The exported model gets that link function on its last layer, so it predicts probabilities.
 */
export const LOSSES = ['softmaxCrossEntropy', 'binaryCrossEntropy', 'meanSquaredError'] as const;
export type Loss = (typeof LOSSES)[number];

export interface DenseLayerSpec {
  units: number;
  activation: Activation;
}

export interface ModelSpec {
  layers: DenseLayerSpec[];
  loss: Loss;
}

/** One parameter tensor and where it sits in the fused float32 vector. */
export interface ParamSlot {
  name: string;
  shape: number[];
  offset: number;
  size: number;
}

export interface ModelLayout {
  inputSize: number;
  outputSize: number;
  spec: ModelSpec;
  params: ParamSlot[];
  totalParams: number;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validate an untrusted spec (from JSON); every complaint names the field. */
export function parseModelSpec(raw: unknown, where = 'model'): ModelSpec {
  if (!isRecord(raw)) fail('MODEL_INVALID', `${where} must be an object with "layers" and "loss"`);
  const { layers, loss } = raw;
  if (!Array.isArray(layers) || layers.length === 0) {
    fail('MODEL_INVALID', `${where}.layers must be a non-empty array of {units, activation}`);
  }
  const parsed = layers.map((l, i): DenseLayerSpec => {
    const at = `${where}.layers[${i}]`;
    if (!isRecord(l)) fail('MODEL_INVALID', `${at} must be an object {units, activation}`);
    for (const k of Object.keys(l)) {
      if (k !== 'units' && k !== 'activation') fail('MODEL_INVALID', `${at}.${k} is not a known field (units, activation)`);
    }
    const units = l.units;
    if (typeof units !== 'number' || !Number.isInteger(units) || units < 1 || units > 1 << 16) {
      fail('MODEL_INVALID', `${at}.units must be an integer in 1..65536, got ${JSON.stringify(units)}`);
    }
    const activation = l.activation ?? 'linear';
    if (!(ACTIVATIONS as readonly unknown[]).includes(activation)) {
      fail('MODEL_INVALID', `${at}.activation must be one of ${ACTIVATIONS.join(', ')}, got ${JSON.stringify(activation)}`);
    }
    return { units, activation: activation as Activation };
  });
  if (!(LOSSES as readonly unknown[]).includes(loss)) {
    fail('MODEL_INVALID', `${where}.loss must be one of ${LOSSES.join(', ')}, got ${JSON.stringify(loss)}`);
  }
  const last = parsed[parsed.length - 1];
  if (loss !== 'meanSquaredError' && last.activation !== 'linear') {
    fail(
      'MODEL_INVALID',
      `${where}.layers[${parsed.length - 1}].activation must be "linear" with ${String(loss)}: the loss applies ` +
        `${loss === 'softmaxCrossEntropy' ? 'softmax' : 'sigmoid'} to the logits itself`,
    );
  }
  return { layers: parsed, loss: loss as Loss };
}

/** Fix the parameter layout for a given input width: kernel [in, out] then bias [out] per layer. */
export function layoutModel(spec: ModelSpec, inputSize: number, outputSize: number): ModelLayout {
  const last = spec.layers[spec.layers.length - 1];
  if (last.units !== outputSize) {
    fail('MODEL_INVALID', `model.layers[${spec.layers.length - 1}].units is ${last.units} but the dataset has ${outputSize} outputs`);
  }
  if (spec.loss === 'softmaxCrossEntropy' && outputSize < 2) {
    fail('MODEL_INVALID', 'model.loss softmaxCrossEntropy needs at least 2 outputs; use binaryCrossEntropy for one');
  }
  const params: ParamSlot[] = [];
  let offset = 0;
  let fanIn = inputSize;
  spec.layers.forEach((l, i) => {
    const k = fanIn * l.units;
    params.push({ name: `dense_${i}/kernel`, shape: [fanIn, l.units], offset, size: k });
    offset += k;
    params.push({ name: `dense_${i}/bias`, shape: [l.units], offset, size: l.units });
    offset += l.units;
    fanIn = l.units;
  });
  return { inputSize, outputSize, spec, params, totalParams: offset };
}

/**
 * Keras defaults: Glorot (Xavier) uniform kernels, limit = sqrt(6 / (fan_in + fan_out))
 * (Glorot & Bengio 2010), zero biases. Done once, by the coordinator, from the job seed.
 */
export function initParams(layout: ModelLayout, seed: number): Float32Array {
  const out = new Float32Array(layout.totalParams);
  const rng = new Rng(deriveSeed(seed, 'init'));
  for (const p of layout.params) {
    if (p.shape.length !== 2) continue; // biases stay zero
    const limit = Math.sqrt(6 / (p.shape[0] + p.shape[1]));
    for (let i = 0; i < p.size; i++) out[p.offset + i] = rng.uniform(-limit, limit);
  }
  return out;
}

/** View of one parameter inside the fused vector (no copy). */
export function paramView(flat: Float32Array, slot: ParamSlot): Float32Array {
  return flat.subarray(slot.offset, slot.offset + slot.size);
}
