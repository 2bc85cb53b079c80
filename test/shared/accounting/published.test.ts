/**
 * Published figures reproduced to the precision they were printed with. Each case names its
 * source; a change to a convention in shared/accounting that breaks one of these is wrong.
 */
import { describe, expect, it } from 'vitest';
import {
  mfu,
  PF_DAY,
  transformerParams,
  transformerTrainingFlopsPerToken,
  type TransformerShape,
} from '../../../shared/accounting/flops.js';
import { plan } from '../../../shared/accounting/plan.js';

/** Round to n significant digits, as a paper prints it. */
const sig = (x: number, n: number) => Number(x.toPrecision(n));

describe('published compute figures', () => {
  it('GPT-3 175B on 300B tokens: 3.14e23 FLOPs, 3.64e3 PF-days (Brown et al. 2020, Table D.1)', () => {
    const r = plan({
      flopsPerItem: 6 * 174.6e9,
      unit: 'token',
      params: 174.6e9,
      items: 300e9,
      devices: 1,
      peakFlops: 1e15,
      mfu: 1,
    });
    expect(sig(r.trainingFlops!, 3)).toBe(3.14e23);
    expect(sig(r.pfDays!, 3)).toBe(3.64e3);
    expect(PF_DAY).toBe(8.64e19);
  });

  const gpt2: TransformerShape = {
    layers: 12,
    dModel: 768,
    heads: 12,
    seq: 1024,
    vocab: 50257,
    bias: false,
    tiedEmbeddings: true,
  };

  it('nanoGPT GPT-2 124M: 124,337,664 parameters with position embeddings', () => {
    expect(transformerParams(gpt2).total).toBe(124_337_664);
  });

  it('nanoGPT GPT-2 124M: 859,272,192 training FLOPs per token by 6·N + 12·L·H·Q·T', () => {
    const n = transformerParams(gpt2).total;
    expect(transformerTrainingFlopsPerToken(gpt2, n)).toBe(859_272_192);
  });

  it('PaLM 540B: 238.3K tokens/s on 6144 chips of 275 TFLOP/s → MFU 45.7% without attention, 46.2% with (PaLM App. B)', () => {
    const palm: TransformerShape = { layers: 118, dModel: 18432, heads: 48, headDim: 256, seq: 2048, vocab: 256_000 };
    const peak = 6144 * 275e12;
    const without = mfu(transformerTrainingFlopsPerToken(palm, 540e9, false), 238.3e3, peak);
    const withAttn = mfu(transformerTrainingFlopsPerToken(palm, 540e9, true), 238.3e3, peak);
    expect((without * 100).toFixed(1)).toBe('45.7');
    expect((withAttn * 100).toFixed(1)).toBe('46.2');
  });

  it('the Chinchilla rule: 5.76e23 FLOPs → 6.9e10 parameters (the paper trained 70B) and 1.4e12 tokens (Hoffmann et al. 2022)', () => {
    const r = plan({ flopsPerItem: 6, unit: 'token', params: 1, devices: 1, peakFlops: 1, mfu: 1, budget: 5.76e23 });
    expect(sig(r.optimal!.params, 2)).toBe(6.9e10);
    expect(sig(r.optimal!.tokens, 2)).toBe(1.4e12);
    expect(6 * r.optimal!.params * r.optimal!.tokens).toBeCloseTo(5.76e23, -20);
  });
});
