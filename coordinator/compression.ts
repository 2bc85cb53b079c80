/**
 * The coordinator's side of gradient compression (shared/compress/): a compressed result's
 * nodes are decoded to dense float32 before they are summed, and the bytes they took are
 * counted against what they would have taken dense, for summary.json.
 */
import type { CompressionConfig, GradientCompressor } from '../shared/compress/index.js';
import { BYTES_PER_ELEMENT, type WireDtype } from '../shared/wire/wire-dtype.js';

/** What summary.json says of compression: none, or a lossy kind with its parameters and its bytes. */
export type CompressionReport =
  | { kind: 'none'; lossy: false }
  | {
      kind: string;
      lossy: true;
      errorFeedback: true;
      parameters: Record<string, number>;
      /** Result payload bytes per step as sent, and as the dense gradients in the job's wireDtype. */
      compressedBytesPerStep: number;
      denseBytesPerStep: number;
      /** compressed / dense. */
      ratio: number | null;
    };

export class ResultDecoder {
  /** Result payload bytes received compressed, and what they would have been dense. */
  readonly traffic = { bytes: 0, denseBytes: 0 };

  constructor(
    readonly compressor: GradientCompressor,
    private readonly totalParams: number,
    private readonly wireDtype: WireDtype,
  ) {}

  /** Dense gradients of a checked compressed payload of `nodes` nodes. */
  decode(words: Float32Array, nodes: number): Float32Array {
    this.traffic.bytes += words.byteLength;
    this.traffic.denseBytes += nodes * this.totalParams * BYTES_PER_ELEMENT[this.wireDtype];
    return this.compressor.decode(words, nodes, this.totalParams);
  }

  report(steps: number): CompressionReport {
    const per = (b: number) => (steps > 0 ? b / steps : 0);
    return {
      kind: this.compressor.kind,
      lossy: true,
      errorFeedback: true,
      parameters: this.compressor.describe(this.totalParams),
      compressedBytesPerStep: per(this.traffic.bytes),
      denseBytesPerStep: per(this.traffic.denseBytes),
      ratio: this.traffic.denseBytes > 0 ? this.traffic.bytes / this.traffic.denseBytes : null,
    };
  }
}

export const NO_COMPRESSION_REPORT: CompressionReport = { kind: 'none', lossy: false };

export type { CompressionConfig };
