/**
 * Top-k with error feedback (shared/compress/topk.ts), the compression config and flag, and
 * a compressed result frame through the wire validator: well-formed ones pass, malformed ones
 * are refused with MESSAGE_INVALID naming what is wrong.
 */
import { describe, expect, it } from 'vitest';
import { compressionFlag, compressorOf, parseCompression } from '../../shared/compress/index.js';
import { kthSmallest, TopK, topkCount } from '../../shared/compress/topk.js';
import { DEFAULT_CONFIG, jobOf, parseConfig } from '../../shared/job/config.js';
import { Rng } from '../../shared/util/rng.js';
import { encodeFrame } from '../../shared/wire/codec.js';
import { resultMsg } from '../helpers/result-msg.js';
import { readFromWorker } from '../../shared/wire/validate.js';
import { expectCode } from '../helpers/expect-code.js';
import { configHash } from '../../coordinator/checkpoint.js';

const result = (nodes: number) => resultMsg(nodes);

describe('top-k', () => {
  it('finds the k-th smallest as a sort would, with runs of equal values', () => {
    const rng = new Rng(3);
    for (const n of [1, 2, 5, 100, 1001]) {
      const a = Float32Array.from({ length: n }, () => (rng.next() < 0.3 ? 0 : Math.round(rng.next() * 20)));
      const sorted = a.slice().sort();
      for (const t of [0, n >> 1, n - 1]) expect(kthSmallest(a.slice(), t)).toBe(sorted[t]);
    }
  });

  it('sends the k entries of largest magnitude, in index order, and keeps the rest', () => {
    const c = new TopK({ kind: 'topk', ratio: 0.25 }); // k = 2 of 8
    const g = Float32Array.from([0.1, -5, 0.2, 3, -0.3, 0, 2.5, -1]);
    const residual = new Float32Array(8);
    const words = new Float32Array(c.wordsPerNode(8));
    c.encode([g], 1, residual, words);
    expect(Array.from(new Uint32Array(words.buffer, 0, 2))).toEqual([1, 3]);
    expect(Array.from(words.subarray(2))).toEqual([-5, 3]);
    expect(Array.from(residual)).toEqual(Array.from(g).map((v, i) => (i === 1 || i === 3 ? 0 : v)));
    // Next result: the residual (2.5 left unsent) joins the new gradient and wins.
    c.encode([Float32Array.from([0, 0, 0, 0, 0, 0, 0.5, -1.5])], 1, residual, words);
    expect(Array.from(new Uint32Array(words.buffer, 0, 2))).toEqual([6, 7]);
    expect(Array.from(words.subarray(2))).toEqual([3, -2.5]);
  });

  it('breaks ties at the threshold toward the lower index', () => {
    const c = new TopK({ kind: 'topk', ratio: 0.5 }); // k = 2 of 4
    const words = new Float32Array(4);
    c.encode([Float32Array.from([1, -1, 1, 0.5])], 1, new Float32Array(4), words);
    expect(Array.from(new Uint32Array(words.buffer, 0, 2))).toEqual([0, 1]);
  });

  it('sends ceil(ratio · n) entries, at least one, at most n', () => {
    expect(topkCount(0.01, 1000)).toBe(10);
    expect(topkCount(0.01, 1001)).toBe(11);
    expect(topkCount(1e-9, 50)).toBe(1);
    expect(topkCount(0.5, 1)).toBe(1);
  });
});

describe('compression config', () => {
  it('is none by default, and the default job hashes as it did before compression existed', () => {
    expect(parseConfig({}).compression).toEqual({ kind: 'none' });
    expect(DEFAULT_CONFIG.compression.kind).toBe('none');
    expect(compressorOf(parseConfig({}).compression)).toBeNull();
    expect(jobOf(parseConfig({})).compression).toEqual({ kind: 'none' });
    const on = parseConfig({ compression: { kind: 'topk' } });
    expect(configHash(on)).not.toBe(configHash(parseConfig({})));
    expect(configHash(parseConfig({ compression: { kind: 'none' } }))).toBe(configHash(parseConfig({})));
  });

  it('parses top-k with its default ratio, and refuses bad sections in one line naming the field', () => {
    expect(parseCompression({ kind: 'topk' })).toEqual({ kind: 'topk', ratio: 0.01 });
    expect(parseCompression({ kind: 'topk', ratio: 0.1 })).toEqual({ kind: 'topk', ratio: 0.1 });
    expect(expectCode(() => parseCompression({ kind: 'powersgd' }), 'CONFIG_INVALID')).toMatch(/compression\.kind/);
    expect(expectCode(() => parseCompression({ kind: 'topk', ratio: 0.9 }), 'CONFIG_INVALID')).toMatch(
      /compression\.ratio/,
    );
    expect(expectCode(() => parseCompression({ kind: 'topk', rank: 2 }), 'CONFIG_INVALID')).toMatch(
      /compression\.rank/,
    );
    expect(expectCode(() => parseCompression({ kind: 'none', ratio: 0.1 }), 'CONFIG_INVALID')).toMatch(
      /compression\.ratio/,
    );
    expectCode(() => parseCompression('topk'), 'CONFIG_INVALID');
  });

  it('--compress takes a kind and its number', () => {
    expect(compressionFlag('none')).toEqual({ kind: 'none' });
    expect(compressionFlag('topk')).toEqual({ kind: 'topk' });
    expect(compressionFlag('topk:0.05')).toEqual({ kind: 'topk', ratio: 0.05 });
    expect(parseCompression(compressionFlag('topk:0.05'))).toEqual({ kind: 'topk', ratio: 0.05 });
    expectCode(() => parseCompression(compressionFlag('topk:lots')), 'CONFIG_INVALID');
  });

  it('--compress none:0.1 is refused, as { kind: "none", ratio: 0.1 } is', () => {
    expect(expectCode(() => compressionFlag('none:0.1'), 'CONFIG_INVALID')).toBe(
      '--compress none:0.1: none takes no value; give --compress none',
    );
  });
});

describe('compressed results on the wire', () => {
  const n = 100;
  const c = new TopK({ kind: 'topk', ratio: 0.05 }); // k = 5
  const words = () => {
    const w = new Float32Array(2 * c.wordsPerNode(n));
    const g = Float32Array.from({ length: 2 * n }, (_, i) => Math.sin(i));
    c.encode([g], 2, new Float32Array(n), w);
    return w;
  };
  const ctx = { totalParams: n, wireDtype: 'bfloat16' as const, compressor: c };

  it('accepts a well-formed payload (raw words, whatever the wireDtype) and decodes it', () => {
    const w = words();
    const f = readFromWorker(encodeFrame(result(2), w), ctx);
    expect(
      Buffer.from(f.payload!.buffer, f.payload!.byteOffset, f.payload!.byteLength).equals(Buffer.from(w.buffer)),
    ).toBe(true);
    const dense = c.decode(f.payload!, 2, n);
    expect(dense.filter((v) => v !== 0)).toHaveLength(10);
  });

  it('refuses malformed payloads with MESSAGE_INVALID', () => {
    const idx = (w: Float32Array) => new Uint32Array(w.buffer);
    const outOfRange = words();
    idx(outOfRange)[4] = n;
    const unordered = words();
    [idx(unordered)[0], idx(unordered)[1]] = [idx(unordered)[1], idx(unordered)[0]];
    const repeated = words();
    idx(repeated)[1] = idx(repeated)[0];
    const cases: Array<[Uint8Array, RegExp]> = [
      [encodeFrame(result(2), outOfRange), /index 100 at 4/],
      [encodeFrame(result(2), unordered), /not increasing/],
      [encodeFrame(result(2), repeated), /not increasing/],
      [encodeFrame(result(1), words()), /payload has 20 words, 1 nodes of k = 5 need 10/],
      [encodeFrame(result(2), words().subarray(2)), /payload has 18 words/],
      [encodeFrame(result(2), words(), 'bfloat16'), /travels as bfloat16/],
      [encodeFrame(result(2)), /must carry/],
    ];
    for (const [frame, why] of cases)
      expect(expectCode(() => readFromWorker(frame, ctx), 'MESSAGE_INVALID')).toMatch(why);
  });
});
