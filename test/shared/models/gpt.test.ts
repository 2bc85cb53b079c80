import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { transformerParams, transformerTrainingFlopsPerToken } from '../../../shared/accounting/flops.js';
import { parseConfig } from '../../../shared/job/config.js';
import { jobLayout, loadJobData } from '../../../shared/job/job-layout.js';
import { gptShape, type GptSpec } from '../../../shared/models/gpt.js';
import { initParams, layoutModel, modelKind, paramView, parseModelSpec } from '../../../shared/models/index.js';
import { planCommand } from '../../../cli/plan-cmd.js';
import { tempDir } from '../../helpers/cli.js';
import { expectCode } from '../../helpers/expect-code.js';
import { tinyTextFile } from '../../helpers/fixtures.js';

const GPT = { kind: 'gpt', layers: 2, dModel: 16, heads: 2, seq: 8 };
const text = tinyTextFile();
const job = (model: unknown, data: unknown = { name: 'text', path: text }) => jobLayout(parseConfig({ data, model }));
/** Token data of a given vocabulary, without a file. */
const tokens = (seq: number, vocab: number) => ({
  inputShape: [seq],
  inputDtype: 'int32' as const,
  outputSize: seq,
  targets: 'tokens' as const,
  vocab,
});

beforeAll(async () => {
  tf.enableProdMode();
  await tf.setBackend('cpu');
});

describe('gpt: parameters and FLOPs are those shared/accounting counts', () => {
  it('the anchor shape (L4 d128 H4 T128 V256) has the 842,496 parameters PyTorch counts', () => {
    // Per layer: qkv 3·128·128 + 384, proj 128·128 + 128, fc 128·512 + 512, out 512·128 + 128, two LayerNorms 2·256;
    // plus the final LayerNorm 256 and embeddings 256·128 + 128·128 (head tied).
    const byHand = 4 * (49_152 + 384 + 16_384 + 128 + 65_536 + 512 + 65_536 + 128 + 512) + 256 + 32_768 + 16_384;
    expect(byHand).toBe(842_496);
    const spec = parseModelSpec({ kind: 'gpt', layers: 4, dModel: 128, heads: 4, seq: 128 }) as GptSpec;
    const layout = layoutModel(spec, tokens(128, 256));
    expect(layout.totalParams).toBe(byHand);
    expect(transformerParams(gptShape(spec, 256)).total).toBe(byHand);
  });

  it('FLOPs per token: 6·N + 12·L·H·Q·T, the function dptrain plan uses for a transformer shape', () => {
    const layout = job(GPT);
    const vocab = layout.data.vocab!;
    const f = modelKind(layout.spec).flops(layout);
    const n = layout.totalParams;
    expect(f.unit).toBe('token');
    expect(f.itemsPerSample).toBe(8);
    expect(f.training / 8).toBe(6 * n + 12 * 2 * 2 * 8 * 8);
    expect(f.training / 8).toBe(transformerTrainingFlopsPerToken(gptShape(layout.spec as GptSpec, vocab), n));
    const dir = tempDir('gpt-plan');
    const file = join(dir, 'job.json');
    writeFileSync(file, JSON.stringify({ data: { name: 'text', path: text }, model: GPT }));
    const fromConfig = planCommand({ model: file, device: 'h100', precision: 'fp32', epochs: 1 } as Parameters<
      typeof planCommand
    >[0]).result;
    const fromShape = planCommand({
      layers: 2,
      dModel: 16,
      heads: 2,
      seq: 8,
      vocab,
      device: 'h100',
      precision: 'fp32',
      epochs: 1,
      bias: true,
      tied: true,
    } as Parameters<typeof planCommand>[0]).result;
    expect(fromConfig.unit).toBe('token');
    expect(fromConfig.flopsPerItem).toBe(fromShape.flopsPerItem);
    expect(fromConfig.params).toBe(fromShape.params);
  });
});

describe('gpt: initialization and forward pass', () => {
  const layout = job(GPT);
  const init = initParams(layout, 1);
  const slot = (name: string) => paramView(init, layout.params.find((s) => s.name === name)!);

  it('nanoGPT init: LayerNorm gains 1, biases 0, weights N(0, 0.02), residual projections 0.02/sqrt(2L)', () => {
    expect([...slot('h_0/ln_1/gain')].every((v) => v === 1)).toBe(true);
    expect([...slot('h_1/mlp/fc/bias')].every((v) => v === 0)).toBe(true);
    const std = (a: Float32Array) => Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);
    expect(std(slot('h_0/mlp/fc/kernel'))).toBeCloseTo(0.02, 2);
    expect(std(slot('h_0/mlp/proj/kernel'))).toBeCloseTo(0.02 / Math.sqrt(4), 2);
  });

  it('is causal: a token changed at position 5 leaves the logits of positions 0..4 unchanged', () => {
    const m = modelKind(layout.spec);
    const ps = layout.params.map((s) => tf.tensor(paramView(init, s), s.shape));
    const a = [1, 2, 3, 4, 5, 6, 7, 8];
    const b = [1, 2, 3, 4, 5, 9, 7, 8];
    const [la, lb] = [a, b].map(
      (ids) => m.forward(layout, ps, tf.tensor2d(ids, [1, 8], 'int32')).arraySync() as number[][],
    );
    for (let t = 0; t < 5; t++)
      for (let v = 0; v < la[t].length; v++) expect(Math.abs(la[t][v] - lb[t][v])).toBeLessThan(1e-6);
    expect(la[5].some((v, i) => Math.abs(v - lb[5][i]) > 1e-4)).toBe(true);
    // a shorter context (sampling) gives the same logits at the positions it has
    const short = m.forward(layout, ps, tf.tensor2d(a.slice(0, 3), [1, 3], 'int32')).arraySync() as number[][];
    for (let t = 0; t < 3; t++)
      for (let v = 0; v < short[t].length; v++) expect(Math.abs(short[t][v] - la[t][v])).toBeLessThan(1e-5);
    tf.dispose(ps);
  });
});

describe('gpt and text: one line naming the field or file', () => {
  it('gpt on images', () => {
    expect(expectCode(() => job(GPT, { name: 'mnist' }), 'MODEL_INVALID')).toContain(
      'model.kind gpt needs token data (data.name text)',
    );
  });
  it('dense or cnn on text', () => {
    expect(expectCode(() => job({ layers: [{ units: 4 }], loss: 'softmaxCrossEntropy' }), 'MODEL_INVALID')).toContain(
      'data.name text gives token windows',
    );
  });
  it('a vocabulary smaller than the token ids', () => {
    expect(expectCode(() => job({ ...GPT, vocab: 5 }), 'MODEL_INVALID')).toMatch(
      /model\.vocab is 5 but the data has token ids up to \d+/,
    );
  });
  it('dModel not a multiple of heads', () => {
    expect(expectCode(() => parseModelSpec({ ...GPT, heads: 3 }), 'MODEL_INVALID')).toContain(
      'model.dModel (16) must be a multiple of model.heads (3)',
    );
  });
  it('a missing text file, a file that is not UTF-8, a file too short for one window', () => {
    expect(expectCode(() => job(GPT, { name: 'text', path: '/nonexistent/kjv.txt' }), 'DATASET_UNAVAILABLE')).toContain(
      '/nonexistent/kjv.txt does not exist',
    );
    const dir = tempDir('text-bad');
    writeFileSync(join(dir, 'latin1.txt'), Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]));
    expect(
      expectCode(() => job(GPT, { name: 'text', path: join(dir, 'latin1.txt') }), 'DATASET_UNAVAILABLE'),
    ).toContain('is not UTF-8 text');
    writeFileSync(join(dir, 'short.txt'), 'abc');
    const cfg = parseConfig({ data: { name: 'text', path: join(dir, 'short.txt') }, model: GPT });
    expect(expectCode(() => loadJobData(cfg), 'DATASET_UNAVAILABLE')).toContain('too few for one training window of 9');
    // Enough to train on, but its held-out tenth gives no window: refused, not evaluated never.
    writeFileSync(join(dir, 'twenty.txt'), 'abcdefghijabcdefghij');
    const held = (testFraction: number) =>
      parseConfig({ data: { name: 'text', path: join(dir, 'twenty.txt'), testFraction }, model: GPT });
    expect(expectCode(() => loadJobData(held(0.1)), 'DATASET_UNAVAILABLE')).toBe(
      `data.path: ${join(dir, 'twenty.txt')}: its held-out 10% is 2 tokens, too few for one window of 9; raise data.testFraction, or set it to 0 to train without evaluation`,
    );
    expect(loadJobData(held(0)).test.n).toBe(0);
  });
  it('a text of one distinct character: refused at layout (next-token prediction needs 2), as is token data of vocab 1', () => {
    const dir = tempDir('text-one-char');
    const one = join(dir, 'onechar.txt');
    writeFileSync(one, 'a'.repeat(2000));
    expect(expectCode(() => job(GPT, { name: 'text', path: one }), 'DATASET_UNAVAILABLE')).toBe(
      `data.path: ${one} has one distinct character ("a"); next-token prediction needs 2 or more`,
    );
    const cfg = parseConfig({ data: { name: 'text', path: one }, model: GPT });
    expect(expectCode(() => loadJobData(cfg), 'DATASET_UNAVAILABLE')).toContain('has one distinct character');
    const spec = parseModelSpec(GPT);
    expect(expectCode(() => layoutModel(spec, tokens(8, 1)), 'MODEL_INVALID')).toBe(
      "model.kind gpt needs 2 or more token ids; the data's vocab is 1 (set model.vocab or use other data)",
    );
    expect(layoutModel(parseModelSpec({ ...GPT, vocab: 2 }), tokens(8, 1)).params[0].shape).toEqual([2, 16]);
  });
  it('an unknown tokenizer', () => {
    expect(
      expectCode(
        () => parseConfig({ data: { name: 'text', path: text, tokenizer: 'words' }, model: GPT }),
        'CONFIG_INVALID',
      ),
    ).toContain('data.tokenizer must be one of chars, bytes');
  });
});

describe('text windows', () => {
  const cfg = parseConfig({ data: { name: 'text', path: text, testFraction: 0.25, testWindows: 3 }, model: GPT });
  const ds = loadJobData(cfg);
  const raw = readFileSync(text, 'utf8');
  const chars = [...raw];

  it('chars: the alphabet is the distinct characters in code-point order, the em dash included', () => {
    expect(ds.alphabet).toBe([...new Set(chars)].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!).join(''));
    expect(ds.alphabet).toContain('—');
    expect(ds.vocab).toBe([...ds.alphabet!].length);
  });

  it('windows are seq apart; targets are the inputs shifted by one; train precedes test by position', () => {
    const decode = (a: Float32Array) => Array.from(a, (i) => [...ds.alphabet!][i]).join('');
    expect(decode(ds.train.x.subarray(0, 8))).toBe(chars.slice(0, 8).join(''));
    expect(decode(ds.train.y.subarray(0, 8))).toBe(chars.slice(1, 9).join(''));
    expect(decode(ds.train.x.subarray(8, 16))).toBe(chars.slice(8, 16).join(''));
    const cut = Math.round(chars.length * 0.75);
    expect(ds.train.n).toBe(Math.floor((cut - 1) / 8));
    expect(ds.test.n).toBe(3);
    expect(decode(ds.test.x.subarray(0, 8))).toBe(chars.slice(cut, cut + 8).join(''));
  });

  it('bytes: vocab 256, ids are the UTF-8 bytes', () => {
    const b = loadJobData(parseConfig({ data: { name: 'text', path: text, tokenizer: 'bytes' }, model: GPT }));
    expect(b.vocab).toBe(256);
    expect(b.alphabet).toBeUndefined();
    expect(Array.from(b.train.x.subarray(0, 8))).toEqual([...Buffer.from(raw, 'utf8').subarray(0, 8)]);
  });
});
