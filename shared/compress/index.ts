/**
 * The registry of gradient compressors (contract.ts): the job config's `compression` section is
 * parsed here, and each kind names how it is built. `none` is the default and is no compressor:
 * gradients travel dense, exact in float32 (or in the job's 16-bit wireDtype).
 */
import { fail } from '../util/errors.js';
import { checkKeys, isObj, num } from '../job/fields.js';
import type { CompressionConfig, GradientCompressor } from './contract.js';
import { TOPK_DEFAULT_RATIO, TOPK_MAX_RATIO, TopK } from './topk.js';

export type { CompressionConfig, GradientCompressor } from './contract.js';

interface CompressorKind {
  /** The section's fields and their defaults (kind aside). */
  defaults: Record<string, number>;
  parse(raw: Record<string, unknown>): CompressionConfig;
  make(cfg: CompressionConfig): GradientCompressor;
}

const KINDS: Record<Exclude<CompressionConfig['kind'], 'none'>, CompressorKind> = {
  topk: {
    defaults: { ratio: TOPK_DEFAULT_RATIO },
    parse: (o) => ({
      kind: 'topk',
      ratio: num(o.ratio ?? TOPK_DEFAULT_RATIO, 'compression.ratio', {
        min: 0,
        minExclusive: true,
        max: TOPK_MAX_RATIO,
      }),
    }),
    make: (cfg) => new TopK(cfg as Extract<CompressionConfig, { kind: 'topk' }>),
  },
};

export const COMPRESSION_KINDS = ['none', ...Object.keys(KINDS)] as readonly string[];

export const NO_COMPRESSION: CompressionConfig = { kind: 'none' };

/** The config's `compression` section: `{ kind: "none" }` (the default) or a registered kind with its fields. */
export function parseCompression(raw: unknown): CompressionConfig {
  if (raw === undefined) return NO_COMPRESSION;
  if (!isObj(raw)) fail('CONFIG_INVALID', 'compression must be an object like { "kind": "topk", "ratio": 0.01 }');
  const kind = raw.kind;
  if (kind === 'none') {
    checkKeys(raw, ['kind'], 'compression.');
    return NO_COMPRESSION;
  }
  const k = typeof kind === 'string' && Object.hasOwn(KINDS, kind) ? KINDS[kind as keyof typeof KINDS] : null;
  if (!k)
    fail(
      'CONFIG_INVALID',
      `compression.kind must be one of ${COMPRESSION_KINDS.join(', ')}, got ${JSON.stringify(kind)}`,
    );
  checkKeys(raw, ['kind', ...Object.keys(k.defaults)], 'compression.');
  return k.parse(raw);
}

/**
 * `--compress <kind[:value]>`: `none`, `topk` or `topk:0.01` (the kind's one number: top-k's
 * ratio). The config check names what is wrong with the result.
 */
export function compressionFlag(v: string): Record<string, unknown> {
  const [kind, value] = v.split(':', 2);
  // `none` has no number to take: dropping one would accept what the config form refuses.
  if (kind === 'none' && value !== undefined)
    fail('CONFIG_INVALID', `--compress ${v}: none takes no value; give --compress none`);
  if (value === undefined || !Object.hasOwn(KINDS, kind)) return { kind };
  const field = Object.keys(KINDS[kind as keyof typeof KINDS].defaults)[0];
  return { kind, [field]: /^[\d.e+-]+$/i.test(value) ? Number(value) : value };
}

/** The compressor the job names, or null for none. */
export function compressorOf(cfg: CompressionConfig): GradientCompressor | null {
  return cfg.kind === 'none' ? null : KINDS[cfg.kind].make(cfg);
}

/** Every registered kind with a config that turns it on, for the conformance suite. */
export function registeredCompressors(): Array<{ kind: string; cfg: CompressionConfig }> {
  return Object.keys(KINDS).map((kind) => ({ kind, cfg: parseCompression({ kind }) }));
}
