/**
 * `gpt`: a decoder-only transformer in the shape of GPT-2 / nanoGPT: token and learned position
 * embeddings, pre-LayerNorm blocks of causal multi-head self-attention and a GELU MLP (4·d),
 * a final LayerNorm, and an output head tied to the token embedding. Written with TF.js ops
 * (tfjs-layers has no trainable attention layer), in forms every backend runs fast:
 * - the embedding is a one-hot matMul: gather's gradient needs UnsortedSegmentSum, which wasm lacks;
 * - activations stay 2-D [tokens, features]; heads are split by 2-D slices and one 4-D transpose
 *   (5-D split/unstack are very slow on wasm);
 * - every product goes through shared/ops/matmul.ts (transpose, then a flag-free matMul).
 */
import * as tf from '@tensorflow/tfjs';
import { transformerParams, transformerTrainingFlopsPerToken, type TransformerShape } from '../accounting/flops.js';
import { fail } from '../util/errors.js';
import { checkKeys, num } from '../job/fields.js';
import { matMul } from '../ops/matmul.js';
import { Rng, deriveSeed } from '../util/rng.js';
import { packSlots, type ModelKind, type ModelLayout } from './contract.js';
import { activate } from './heads.js';

export interface GptSpec {
  kind: 'gpt';
  layers: number;
  dModel: number;
  heads: number;
  /** Context length T: each sample is a window of T tokens. */
  seq: number;
  /** Token ids; default the data's vocabulary. */
  vocab?: number;
}

export type GptLayout = ModelLayout<GptSpec>;

/** PyTorch's LayerNorm epsilon (nanoGPT, GPT-2). */
const LN_EPS = 1e-5;
/** nanoGPT's initialization: N(0, 0.02), residual projections scaled by 1/sqrt(2·layers). */
const INIT_STD = 0.02;

const int = (v: unknown, field: string, max: number) => num(v, field, { int: true, min: 1, max }, 'MODEL_INVALID');

function vocabOf(layout: GptLayout): number {
  return layout.params[0].shape[0];
}

/** The shape shared/accounting counts: biases, tied head, MLP 4·d (as the params below). */
export function gptShape(spec: GptSpec, vocab: number): TransformerShape {
  return {
    layers: spec.layers,
    dModel: spec.dModel,
    heads: spec.heads,
    seq: spec.seq,
    vocab,
    bias: true,
    tiedEmbeddings: true,
  };
}

function slots(spec: GptSpec, vocab: number): Array<{ name: string; shape: number[] }> {
  const d = spec.dModel;
  const out = [
    { name: 'wte', shape: [vocab, d] },
    { name: 'wpe', shape: [spec.seq, d] },
  ];
  for (let l = 0; l < spec.layers; l++) {
    const h = `h_${l}`;
    out.push(
      { name: `${h}/ln_1/gain`, shape: [d] },
      { name: `${h}/ln_1/bias`, shape: [d] },
      { name: `${h}/attn/qkv/kernel`, shape: [d, 3 * d] },
      { name: `${h}/attn/qkv/bias`, shape: [3 * d] },
      { name: `${h}/attn/proj/kernel`, shape: [d, d] },
      { name: `${h}/attn/proj/bias`, shape: [d] },
      { name: `${h}/ln_2/gain`, shape: [d] },
      { name: `${h}/ln_2/bias`, shape: [d] },
      { name: `${h}/mlp/fc/kernel`, shape: [d, 4 * d] },
      { name: `${h}/mlp/fc/bias`, shape: [4 * d] },
      { name: `${h}/mlp/proj/kernel`, shape: [4 * d, d] },
      { name: `${h}/mlp/proj/bias`, shape: [d] },
    );
  }
  out.push({ name: 'ln_f/gain', shape: [d] }, { name: 'ln_f/bias', shape: [d] });
  return out;
}

function layerNorm(x: tf.Tensor2D, gain: tf.Tensor, bias: tf.Tensor): tf.Tensor2D {
  const centred = tf.sub(x, tf.mean(x, -1, true));
  const variance = tf.mean(tf.square(centred), -1, true);
  return tf.add(tf.mul(tf.mul(centred, tf.rsqrt(tf.add(variance, LN_EPS))), gain), bias) as tf.Tensor2D;
}

const linear = (x: tf.Tensor2D, kernel: tf.Tensor, bias: tf.Tensor) => tf.add(matMul(x, kernel), bias) as tf.Tensor2D;

/** [n·T, d] → [n·H, T, Q]: one head per batch entry. */
function splitHeads(x: tf.Tensor2D, n: number, t: number, heads: number): tf.Tensor3D {
  const q = x.shape[1] / heads;
  return tf.reshape(tf.transpose(tf.reshape(x, [n, t, heads, q]), [0, 2, 1, 3]), [n * heads, t, q]);
}

/** [n·H, T, Q] → [n·T, d] */
function mergeHeads(x: tf.Tensor3D, n: number, t: number, heads: number): tf.Tensor2D {
  const q = x.shape[2];
  return tf.reshape(tf.transpose(tf.reshape(x, [n, heads, t, q]), [0, 2, 1, 3]), [n * t, heads * q]);
}

/** 0 on and below the diagonal, a large negative number above: added to scores before softmax. */
function causalMask(t: number): tf.Tensor2D {
  const m = new Float32Array(t * t);
  for (let i = 0; i < t; i++) for (let j = i + 1; j < t; j++) m[i * t + j] = -1e9;
  return tf.tensor2d(m, [t, t]);
}

function attention(x: tf.Tensor2D, p: tf.Tensor[], n: number, t: number, heads: number): tf.Tensor2D {
  const d = x.shape[1];
  const qkv = linear(x, p[0], p[1]);
  const [q, k, v] = [0, 1, 2].map((i) => splitHeads(tf.slice(qkv, [0, i * d], [-1, d]) as tf.Tensor2D, n, t, heads));
  const scores = tf.add(tf.mul(matMul(q, tf.transpose(k, [0, 2, 1])), 1 / Math.sqrt(d / heads)), causalMask(t));
  const y = matMul(tf.softmax(scores) as tf.Tensor3D, v);
  return linear(mergeHeads(y, n, t, heads), p[2], p[3]);
}

/** Logits [n·T, vocab] for token ids x [n, T] (T ≤ seq). */
function forward(layout: GptLayout, params: tf.Tensor[], x: tf.Tensor): tf.Tensor2D {
  const { layers, dModel: d, heads } = layout.spec;
  const [n, t] = x.shape;
  const [wte, wpe] = params;
  const ids = tf.reshape(x, [-1]);
  const oneHot = tf.cast(tf.oneHot(ids, vocabOf(layout)), 'float32') as tf.Tensor2D;
  const tok = matMul(oneHot, wte, { constantA: true });
  const pos = t === layout.spec.seq ? wpe : tf.slice(wpe, [0, 0], [t, d]);
  let h = tf.reshape(tf.add(tf.reshape(tok, [n, t, d]), pos), [n * t, d]) as tf.Tensor2D;
  for (let l = 0; l < layers; l++) {
    const p = params.slice(2 + 12 * l, 2 + 12 * (l + 1));
    h = tf.add(h, attention(layerNorm(h, p[0], p[1]), p.slice(2, 6), n, t, heads)) as tf.Tensor2D;
    const mlp = linear(activate(linear(layerNorm(h, p[6], p[7]), p[8], p[9]), 'gelu'), p[10], p[11]);
    h = tf.add(h, mlp) as tf.Tensor2D;
  }
  const last = params.length - 2;
  return matMul(layerNorm(h, params[last], params[last + 1]), tf.transpose(wte)); // tied head
}

export const gpt: ModelKind<GptSpec> = {
  kind: 'gpt',
  parse(raw, where) {
    checkKeys(raw, ['kind', 'layers', 'dModel', 'heads', 'seq', 'vocab'], `${where}.`, 'MODEL_INVALID');
    const spec: GptSpec = {
      kind: 'gpt',
      layers: int(raw.layers, `${where}.layers`, 256),
      dModel: int(raw.dModel, `${where}.dModel`, 1 << 16),
      heads: int(raw.heads, `${where}.heads`, 1024),
      seq: int(raw.seq, `${where}.seq`, 1 << 16),
      ...(raw.vocab !== undefined ? { vocab: int(raw.vocab, `${where}.vocab`, 1 << 20) } : {}),
    };
    if (spec.dModel % spec.heads !== 0)
      fail('MODEL_INVALID', `${where}.dModel (${spec.dModel}) must be a multiple of ${where}.heads (${spec.heads})`);
    return spec;
  },
  layout(spec, data) {
    if (data.targets !== 'tokens' || data.inputDtype !== 'int32' || data.vocab === undefined) {
      fail(
        'MODEL_INVALID',
        `model.kind gpt needs token data (data.name text); this dataset gives ${data.inputDtype} inputs of shape ` +
          `[${data.inputShape.join(', ')}] with ${data.targets} targets`,
      );
    }
    if (data.inputShape.length !== 1 || data.inputShape[0] !== spec.seq)
      fail('MODEL_INVALID', `model.seq is ${spec.seq} but the data's windows hold ${data.inputShape.join('×')} tokens`);
    const vocab = spec.vocab ?? data.vocab;
    if (vocab < data.vocab)
      fail(
        'MODEL_INVALID',
        `model.vocab is ${vocab} but the data has token ids up to ${data.vocab - 1}: set it to ${data.vocab} or more (or leave it out)`,
      );
    // tf.oneHot needs depth 2 or more, and one token id leaves nothing to predict.
    if (vocab < 2)
      fail(
        'MODEL_INVALID',
        `model.kind gpt needs 2 or more token ids; the data's vocab is ${data.vocab} (set model.vocab or use other data)`,
      );
    return {
      spec,
      data,
      inputShape: [spec.seq],
      inputSize: spec.seq,
      outputSize: spec.seq,
      ...packSlots(slots(spec, vocab)),
    };
  },
  init(layout, seed) {
    const out = new Float32Array(layout.totalParams);
    const rng = new Rng(deriveSeed(seed, 'init'));
    const residual = INIT_STD / Math.sqrt(2 * layout.spec.layers);
    for (const s of layout.params) {
      const leaf = s.name.split('/').pop();
      if (leaf === 'gain') out.fill(1, s.offset, s.offset + s.size);
      if (leaf === 'bias' || leaf === 'gain') continue;
      const std = s.name.endsWith('proj/kernel') ? residual : INIT_STD;
      for (let i = 0; i < s.size; i++) out[s.offset + i] = std * rng.normal();
    }
    return out;
  },
  forward: (layout, params, x) => forward(layout, params, x),
  outputShape: (layout, rows) => [rows * layout.spec.seq, vocabOf(layout)],
  /** Each sample's loss is the mean cross-entropy over its positions (as nanoGPT's loss over B·T). */
  lossSum(layout, out, y) {
    const targets = tf.cast(tf.oneHot(tf.reshape(y, [-1]), vocabOf(layout)), 'float32');
    return tf.div(tf.neg(tf.sum(tf.mul(targets, tf.logSoftmax(out)))), y.shape[1]!) as tf.Scalar;
  },
  correctCount: () => null,
  flops(layout) {
    const shape = gptShape(layout.spec, vocabOf(layout));
    const perToken = transformerTrainingFlopsPerToken(shape, transformerParams(shape).total);
    const t = layout.spec.seq;
    return {
      unit: 'token',
      itemsPerSample: t,
      training: perToken * t,
      forward: (perToken * t) / 3,
      describe:
        `gpt L${shape.layers} d${shape.dModel} H${shape.heads} T${t} V${shape.vocab}: ` +
        `${layout.totalParams.toLocaleString('en-US')} parameters, 6·N + 12·L·H·Q·T per token`,
    };
  },
  // Attention, layer norms and the embedding take their gradients over the whole pass: one pass per leaf.
  batchesLeaves: () => false,
  toLayers: () => null,
};
