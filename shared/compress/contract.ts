/**
 * The gradient compressor contract: an opt-in, lossy encoding of what a worker uploads, with
 * error feedback. A worker keeps a residual per parameter (what earlier steps left unsent) and
 * adds it to each gradient before compressing; what is not sent stays in the residual for the
 * next result. The coordinator decodes each node back to a dense float32 gradient before it is
 * summed in float64, so the reduction, Adam and checkpoints do not know compression exists.
 *
 * Every compressor keeps the error-feedback identity, per element, in float32:
 *   sent + new residual == fl(gradient + old residual)
 * (test/conformance/compressors.test.ts holds each registered compressor to it).
 *
 * A compressed payload travels as raw 32-bit words in a float32 frame (shared/wire/codec.ts
 * needs no new dtype); `check` is what validate.ts asks of it before anything reads it.
 */

/** What the job config says (`compression`): none, or one registered kind and its parameters. */
export type CompressionConfig = { kind: 'none' } | TopKConfig;

export interface TopKConfig {
  kind: 'topk';
  /** Fraction of each node's entries sent, largest magnitude first (k = ceil(ratio · n)). */
  ratio: number;
}

export interface GradientCompressor {
  readonly kind: string;
  /** 32-bit words one tree node's payload takes, for a model of n parameters. */
  wordsPerNode(n: number): number;
  /**
   * Compress `nodes` gradients of n floats each, given as consecutive `parts` (a node may span
   * several parts, and a part several nodes), into `out` (nodes · wordsPerNode(n) words).
   * `residual` (n floats) is added to the first node and each node's unsent remainder carries
   * to the next; it is left holding what is still unsent.
   */
  encode(parts: readonly Float32Array[], nodes: number, residual: Float32Array, out: Float32Array): void;
  /** Refuse (MESSAGE_INVALID, naming what is wrong) a payload that is not `nodes` well-formed nodes for n parameters. */
  check(words: Float32Array, nodes: number, n: number): void;
  /** Dense float32 gradients of `nodes` nodes (nodes · n floats) from a checked payload. */
  decode(words: Float32Array, nodes: number, n: number): Float32Array;
  /** The parameters, for summary.json. */
  describe(n: number): Record<string, number>;
}
