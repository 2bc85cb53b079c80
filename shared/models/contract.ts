/**
 * The model-kind contract. A kind is one module that knows everything about its models: how
 * its config section reads, which parameters it has (the fused vector of named slots that
 * travels on the wire), how they start, the TF.js forward pass and loss sums, its FLOPs, and its
 * tfjs-layers form for export. Everything else (coordinator, workers, CLI) sees only this.
 */
import type * as tf from '@tensorflow/tfjs';
import type { DataShape } from '../datasets/dataset.js';
import type { Json } from '../job/fields.js';

/** One parameter tensor and where it sits in the fused float32 vector. */
export interface ParamSlot {
  name: string;
  shape: number[];
  offset: number;
  size: number;
}

export interface ModelLayout<S> {
  spec: S;
  /** The data the layout was fixed for. */
  data: DataShape;
  /** One sample's input as the model's batch tensor holds it (after the batch axis). */
  inputShape: number[];
  /** Elements of one sample's input. */
  inputSize: number;
  /** Target values per sample. */
  outputSize: number;
  params: ParamSlot[];
  totalParams: number;
}

/** Model FLOPs of one sample (see shared/accounting/flops.ts for the conventions). */
export interface ModelFlops {
  /** What throughput is counted in: samples, or tokens for sequence models. */
  unit: 'sample' | 'token';
  /** Tokens in one sample (1 when unit is 'sample'). */
  itemsPerSample: number;
  /** Forward pass of one sample (evaluation). */
  forward: number;
  /** Forward and backward of one sample (training). */
  training: number;
  /** One line for `dptrain plan`. */
  describe: string;
}

export interface ModelKind<S> {
  /** The `model.kind` it is registered under. */
  readonly kind: string;
  /** Validate the config section (the model object, `where` is its path); one line per complaint. */
  parse(raw: Json, where: string): S;
  /** Fix the parameter layout for the data, refusing data the model cannot take. */
  layout(spec: S, data: DataShape): ModelLayout<S>;
  /** Seeded initialization: done once, by the coordinator, from the job seed. */
  init(layout: ModelLayout<S>, seed: number): Float32Array;
  /** Output for a batch x of shape [n, ...inputShape]; params one tensor per slot, in order. */
  forward(layout: ModelLayout<S>, params: tf.Tensor[], x: tf.Tensor): tf.Tensor;
  /**
   * The shape forward() returns for a batch of `rows` samples ([rows, outputSize] for a
   * classifier, [rows·seq, vocab] for gpt's logits). The worker compares every pass's output
   * with it (a wrong width broadcasts in the loss and trains on nonsense) and sizes its
   * evaluation chunks by it.
   */
  outputShape(layout: ModelLayout<S>, rows: number): number[];
  /** Sum over the batch of each sample's loss. */
  lossSum(layout: ModelLayout<S>, out: tf.Tensor, y: tf.Tensor): tf.Scalar;
  /** How many samples the model gets right, or null where it reports no accuracy (real-valued or next-token targets). */
  correctCount(layout: ModelLayout<S>, out: tf.Tensor, y: tf.Tensor): tf.Scalar | null;
  flops(layout: ModelLayout<S>): ModelFlops;
  /**
   * Whether every parameter's gradient goes through ops that take it per leaf during a leaf
   * pass (shared/ops/leaf-pass.ts), so that a worker computes all its leaves in one pass; else
   * each leaf gets a pass of its own.
   */
  batchesLeaves(layout: ModelLayout<S>): boolean;
  /**
   * The same model as tfjs-layers layers, weights in slot order, predicting probabilities where
   * the loss takes logits; or null for a model tfjs-layers cannot express (saved as raw slots).
   */
  toLayers(layout: ModelLayout<S>): tf.LayersModel | null;
}

/** View of one parameter inside the fused vector (no copy). */
export function paramView(flat: Float32Array, slot: ParamSlot): Float32Array {
  return flat.subarray(slot.offset, slot.offset + slot.size);
}

/** Slots back to back from offset 0, in the order given. */
export function packSlots(slots: Array<{ name: string; shape: number[] }>): {
  params: ParamSlot[];
  totalParams: number;
} {
  let offset = 0;
  const params = slots.map(({ name, shape }) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const slot = { name, shape, offset, size };
    offset += size;
    return slot;
  });
  return { params, totalParams: offset };
}
