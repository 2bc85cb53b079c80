/**
 * The model-kind registry: every kind by its `model.kind` (default `dense`). Adding one is a
 * module implementing ModelKind (contract.ts) and a line here; see docs/extending.md.
 */
import type * as tf from '@tensorflow/tfjs';
import type { DataShape, SampleRequest } from '../datasets/dataset.js';
import { fail } from '../util/errors.js';
import { isObj } from '../job/fields.js';
import type { ModelKind, ModelLayout } from './contract.js';
import { cnn, type CnnSpec } from './cnn.js';
import { dense, type DenseSpec } from './dense.js';
import { gpt, type GptSpec } from './gpt.js';
import { layers, type LayersSpec } from './layers.js';

export type { ModelFlops, ModelKind, ParamSlot } from './contract.js';
export { paramView } from './contract.js';

export type ModelSpec = DenseSpec | CnnSpec | GptSpec | LayersSpec;
export type AnyLayout = ModelLayout<ModelSpec>;

const KINDS: Record<string, ModelKind<ModelSpec>> = { dense, cnn, gpt, layers };

export const MODEL_KINDS: readonly string[] = Object.keys(KINDS);

function kindNamed(name: string, where: string): ModelKind<ModelSpec> {
  const k = Object.hasOwn(KINDS, name) ? KINDS[name] : undefined;
  return (
    k ?? fail('MODEL_INVALID', `${where}.kind must be one of ${MODEL_KINDS.join(', ')}, got ${JSON.stringify(name)}`)
  );
}

/** The module of a spec's kind. */
export function modelKind(spec: ModelSpec): ModelKind<ModelSpec> {
  return kindNamed(spec.kind ?? 'dense', 'model');
}

/** Validate an untrusted model section (from JSON); every complaint names the field. */
export function parseModelSpec(raw: unknown, where = 'model'): ModelSpec {
  if (!isObj(raw))
    fail('MODEL_INVALID', `${where} must be an object with "layers" and "loss" (and "kind", default dense)`);
  const kind = raw.kind ?? 'dense';
  if (typeof kind !== 'string')
    fail('MODEL_INVALID', `${where}.kind must be one of ${MODEL_KINDS.join(', ')}, got ${JSON.stringify(kind)}`);
  return kindNamed(kind, where).parse(raw, where);
}

/** What a model asks of each sample of its data (a sequence model: the window length). */
export function sampleRequest(spec: ModelSpec): SampleRequest {
  return spec.kind === 'gpt' ? { seq: spec.seq } : {};
}

/** Fix the parameter layout of a model for data of a given shape. */
export function layoutModel(spec: ModelSpec, data: DataShape): AnyLayout {
  return modelKind(spec).layout(spec, data);
}

/** The seeded initialization of a layout's parameters. */
export function initParams(layout: AnyLayout, seed: number): Float32Array {
  return modelKind(layout.spec).init(layout, seed);
}

/**
 * Refuse a forward pass whose output is not the shape its kind states: a wrong width would
 * broadcast in the loss (width-1 logits make a softmax loss exactly 0) and train on nonsense.
 * A shape comparison only, so every pass can afford it.
 */
export function checkOutput(model: ModelKind<ModelSpec>, layout: AnyLayout, out: tf.Tensor, rows: number): void {
  const want = model.outputShape(layout, rows);
  if (out.shape.length !== want.length || out.shape.some((v, i) => v !== want[i]))
    fail(
      'MODEL_INVALID',
      `model kind ${model.kind}: forward returned [${out.shape.join(', ')}]; expected [${want.join(', ')}]`,
    );
}
