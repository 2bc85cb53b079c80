/**
 * Compressed results over the in-process transport: Membership validates a worker's top-k
 * words, hands the dispatcher dense float32 gradients, and counts the bytes for summary.json;
 * a malformed compressed result drops the worker as invalid.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ResultDecoder } from '../../coordinator/compression.js';
import { Membership } from '../../coordinator/membership.js';
import { compressorOf } from '../../shared/compress/index.js';
import { jobOf, parseConfig } from '../../shared/job/config.js';
import { createLocalNetwork, type LocalNetwork } from '../../shared/transport/local.js';
import { resultMsg } from '../helpers/result-msg.js';
import { fakeWorker } from '../helpers/fake-worker.js';

const cfg = parseConfig({
  data: { name: 'xor' },
  model: { layers: [{ units: 4, activation: 'tanh' }, { units: 1 }], loss: 'binaryCrossEntropy' },
  compression: { kind: 'topk', ratio: 0.2 },
});
const TOTAL = 2 * 4 + 4 + 4 + 1; // 17: k = 4
const result = resultMsg(1, 4);

let net: LocalNetwork;
afterEach(async () => {
  await net.listener.close();
});

function setUp() {
  net = createLocalNetwork();
  const compressor = compressorOf(cfg.compression)!;
  const decoder = new ResultDecoder(compressor, TOTAL, cfg.wireDtype);
  const m = new Membership(net.listener, {
    job: jobOf(cfg),
    jobId: 'job-test',
    totalParams: TOTAL,
    maxWorkers: 4,
    log: pino({ level: 'silent' }),
    token: null,
    decoder,
  });
  return { m, decoder, compressor };
}

describe('compressed results through Membership', () => {
  it('are decoded to dense gradients and counted against the dense bytes', async () => {
    const { m, decoder, compressor } = setUp();
    const ready = new Promise((r) => m.once('ready', r));
    const w = await fakeWorker(net.dial, TOTAL);
    await ready;
    const g = Float32Array.from({ length: TOTAL }, (_, i) => (i % 5) - 2 + i / 100);
    const residual = new Float32Array(TOTAL);
    const words = new Float32Array(compressor.wordsPerNode(TOTAL));
    compressor.encode([g], 1, residual, words);
    const got = new Promise<Float32Array>((r) => m.once('result', (_w, _msg, grads) => r(grads)));
    w.send(result, words);
    const dense = await got;
    expect(dense).toHaveLength(TOTAL);
    // What was sent plus what stayed behind is the gradient.
    for (let i = 0; i < TOTAL; i++) expect(dense[i] + residual[i]).toBe(g[i]);
    expect(dense.filter((v) => v !== 0)).toHaveLength(4);
    expect(decoder.traffic).toEqual({ bytes: 8 * 4, denseBytes: 4 * TOTAL });
    expect(decoder.report(1)).toMatchObject({
      kind: 'topk',
      lossy: true,
      parameters: { ratio: 0.2, k: 4 },
      compressedBytesPerStep: 32,
      denseBytesPerStep: 68,
    });
  });

  it('a dense payload where the job compresses is invalid, and the worker dropped', async () => {
    const { m } = setUp();
    const ready = new Promise((r) => m.once('ready', r));
    const w = await fakeWorker(net.dial, TOTAL);
    await ready;
    w.send(result, new Float32Array(TOTAL));
    expect(await w.closedKind).toBe('invalid');
    expect(await w.closed).toMatch(/top-k payload has 17 words, 1 nodes of k = 4 need 8/);
  });
});
