/**
 * Analytic FLOP counts. One FLOP is one floating-point add or multiply, so a multiply-add
 * counts 2. The conventions, and where they come from:
 *
 * - Dense layer forward, per sample: 2·in·out for the matmul (Kaplan et al. 2020, "Scaling Laws
 *   for Neural Language Models", Table 1: C_forward ≈ 2N), plus `out` for the bias add (counted
 *   here; Kaplan ignores biases), plus 1 per element for a nonlinearity (relu, tanh, sigmoid,
 *   gelu alike; `linear` costs 0), plus 1 per output element for the loss.
 * - Backward = 2 × forward (gradients w.r.t. activations and w.r.t. weights, each a matmul the
 *   size of the forward one; Kaplan Table 1; Hoffmann et al. 2022 "Chinchilla", App. F), so
 *   training = 3 × forward ≈ 6·N per sample for a dense net.
 * - Transformers, per token: 6·N + 12·L·H·Q·T for training (Chowdhery et al. 2022, "PaLM",
 *   App. B: 6N for the matmuls against parameters, 12·L·H·Q·T for the attention scores and
 *   their weighted sum, forward + backward), with N all parameters.
 *
 * These are model FLOPs: what the model needs. Hardware FLOPs (what the devices actually did:
 * recomputed shards, evaluation, skipped steps) are counted separately by the run accounting.
 */
import type { DenseLayout } from '../models/dense.js';

export const BACKWARD_TO_FORWARD = 2;

export interface DenseFlops {
  /** Σ 2·in·out */
  matmul: number;
  /** Σ out (one add per bias) */
  bias: number;
  /** one per element of every non-linear activation */
  activation: number;
  /** one per output element */
  loss: number;
  forward: number;
  /** forward × (1 + BACKWARD_TO_FORWARD) */
  training: number;
}

/** FLOPs per sample of a dense model, by part. */
export function denseFlopsPerSample(layout: DenseLayout): DenseFlops {
  let matmul = 0;
  let bias = 0;
  let activation = 0;
  let fanIn = layout.inputSize;
  for (const l of layout.spec.layers) {
    matmul += 2 * fanIn * l.units;
    bias += l.units;
    if (l.activation !== 'linear') activation += l.units;
    fanIn = l.units;
  }
  const loss = layout.outputSize;
  const forward = matmul + bias + activation + loss;
  return { matmul, bias, activation, loss, forward, training: forward * (1 + BACKWARD_TO_FORWARD) };
}

/** Forward-only FLOPs per sample (evaluation). */
export function denseEvalFlopsPerSample(layout: DenseLayout): number {
  return denseFlopsPerSample(layout).forward;
}

export interface TransformerShape {
  layers: number;
  dModel: number;
  heads: number;
  /** Per-head dimension Q; default dModel / heads. */
  headDim?: number;
  /** Context length T. */
  seq: number;
  vocab: number;
  /** MLP hidden width as a multiple of dModel (GPT: 4). */
  ffMult?: number;
  /** Biases in linear layers and LayerNorms (GPT-2: yes; nanoGPT bias=False: no). */
  bias?: boolean;
  /** Output projection shares the token embedding (GPT-2, nanoGPT: yes). */
  tiedEmbeddings?: boolean;
}

export interface TransformerParams {
  /** Attention + MLP + LayerNorm parameters (Kaplan's N, which excludes embeddings). */
  nonEmbedding: number;
  /** Token and learned position embeddings (and the output head if untied). */
  embedding: number;
  total: number;
}

/**
 * Parameters of a GPT-style decoder: per layer, attention Wq,Wk,Wv (d × H·Q each) and Wo
 * (H·Q × d), an MLP d → ff·d → d, two LayerNorms; a final LayerNorm; learned position
 * embeddings. With the defaults this is 12·L·d² plus small terms (Kaplan Table 1).
 */
export function transformerParams(s: TransformerShape): TransformerParams {
  const d = s.dModel;
  const q = s.headDim ?? d / s.heads;
  const hq = s.heads * q;
  const ff = (s.ffMult ?? 4) * d;
  const bias = s.bias ?? true;
  const attn = 3 * d * hq + hq * d + (bias ? 3 * hq + d : 0);
  const mlp = d * ff + ff * d + (bias ? ff + d : 0);
  const ln = (bias ? 2 : 1) * d; // LayerNorm gain (and bias)
  const nonEmbedding = s.layers * (attn + mlp + 2 * ln) + ln; // + final LayerNorm
  const embedding = s.vocab * d + s.seq * d + ((s.tiedEmbeddings ?? true) ? 0 : s.vocab * d);
  return { nonEmbedding, embedding, total: nonEmbedding + embedding };
}

/** Training FLOPs per token: 6·N + 12·L·H·Q·T (PaLM App. B), or 6·N without attention. */
export function transformerTrainingFlopsPerToken(s: TransformerShape, params: number, withAttention = true): number {
  const q = s.headDim ?? s.dModel / s.heads;
  return 6 * params + (withAttention ? 12 * s.layers * s.heads * q * s.seq : 0);
}

/** 1 PF-day = 10^15 FLOP/s for a day = 8.64e19 FLOPs (Brown et al. 2020, App. D). */
export const PF_DAY = 1e15 * 86_400;

/**
 * Model FLOPs utilization (PaLM App. B): observed throughput × FLOPs per item, over the peak
 * of all devices together.
 */
export function mfu(flopsPerItem: number, itemsPerSec: number, peakFlopsTotal: number): number {
  return (flopsPerItem * itemsPerSec) / peakFlopsTotal;
}

/** One layer of a convolutional net, by geometry (what its FLOPs depend on). */
export type ConvNetPart =
  | {
      type: 'conv2d';
      kh: number;
      kw: number;
      cin: number;
      cout: number;
      outH: number;
      outW: number;
      activation: boolean;
      bias?: boolean;
    }
  | { type: 'pool'; window: number; outH: number; outW: number; channels: number }
  | { type: 'dense'; fanIn: number; units: number; activation: boolean; bias?: boolean }
  | { type: 'elementwise'; size: number };

/**
 * FLOPs per sample of a convolutional net. conv2d: 2·kh·kw·cin·cout per output position (a
 * multiply-add per filter tap, as a dense layer's 2·in·out), plus a bias add and, if non-linear,
 * an activation per output element; pooling: one per window element per output (a compare or
 * an add); an activation layer: one per element; dense layers as above (a layer without
 * bias skips its add); plus one per output for the loss. Training = 3 × forward.
 */
export function convNetFlopsPerSample(parts: ConvNetPart[], outputs: number): { forward: number; training: number } {
  let forward = outputs;
  for (const p of parts) {
    if (p.type === 'conv2d') {
      const positions = p.outH * p.outW;
      forward +=
        positions * (2 * p.kh * p.kw * p.cin * p.cout + p.cout * ((p.bias === false ? 0 : 1) + (p.activation ? 1 : 0)));
    } else if (p.type === 'pool') forward += p.window * p.outH * p.outW * p.channels;
    else if (p.type === 'elementwise') forward += p.size;
    else forward += 2 * p.fanIn * p.units + p.units * ((p.bias === false ? 0 : 1) + (p.activation ? 1 : 0));
  }
  return { forward, training: forward * (1 + BACKWARD_TO_FORWARD) };
}
