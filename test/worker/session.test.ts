/**
 * The worker's session over the in-process transport, against a scripted coordinator: the
 * handshake, one shard, goodbye; shared-memory credit; a compressing job. The refusals it
 * shares with the host agent are in coordinator-session.test.ts.
 */
import { tmpdir } from 'node:os';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { jobOf, parseConfig } from '../../shared/job/config.js';
import type { Message } from '../../shared/wire/protocol.js';
import { ShmChannel } from '../../shared/transport/shm.js';
import { RESULT_SLOTS } from '../../shared/transport/payload-channel.js';
import type { Link } from '../../shared/transport/transport.js';
import { runWorker } from '../../worker/worker.js';
import type { GradientCompressor } from '../../shared/compress/index.js';
import { TopK } from '../../shared/compress/topk.js';
import { scriptedCoordinator, TINY, TINY_TOTAL, TOKEN } from '../helpers/scripted-coordinator.js';

const cfg = TINY;
const TOTAL = TINY_TOTAL;

/** Rows [0, 4) of step 0, one leaf, as shard `shard`; `shmRead` the worker's credit. */
const work = (shard: number, shmRead = 0): Message => ({
  t: 'work',
  step: 0,
  micro: 0,
  shard,
  version: 0,
  from: 0,
  to: 4,
  leaves: 1,
  first: 0,
  last: 1,
  batch: 4,
  shmRead,
});

/** A coordinator end that records what the worker sends and how it closed. */
async function session(token: string | null = TOKEN, shmDir?: string, compressor?: GradientCompressor) {
  await tf.setBackend('cpu');
  const start = (link: Link) =>
    runWorker({
      link,
      backend: { name: 'cpu', provider: 'test', reason: 'test' },
      name: 'w',
      log: pino({ level: 'silent' }),
      token,
      payloads: shmDir ? ShmChannel.offer(shmDir) : undefined,
    });
  return scriptedCoordinator(start, TOTAL, compressor);
}

describe('worker session', () => {
  it('challenge → hello, welcome → ready, params and work → result, bye → finished', async () => {
    const s = await session();
    const hello = await s.join(jobOf(cfg), TOKEN);
    expect(hello.shm).toBe(''); // no directory: no shared memory offered
    await s.next('ready');
    s.send({ t: 'params', version: 0, shm: 0 }, new Float32Array(TOTAL).fill(0.1));
    s.send(work(0));
    const result = await s.next('result');
    expect(result).toMatchObject({ t: 'result', step: 0, shard: 0, count: 4 });
    s.send({ t: 'bye', reason: 'done' });
    expect(await s.outcome).toMatchObject({ finished: true, fatal: null });
    await s.net.listener.close();
  });

  it('writes a shared-memory result slot only on credit: without it, the result travels in the frame', async () => {
    const shm = ShmChannel.create(1 << 20, tmpdir());
    if (typeof shm === 'string') throw new Error(shm);
    try {
      const s = await session(TOKEN, shm.dir);
      const hello = await s.join(jobOf(cfg), TOKEN, true);
      expect(shm.verifiesGrant('n1', hello.shm)).toBe(true);
      await s.next('ready');
      s.send({ t: 'params', version: 0, shm: 0 }, new Float32Array(TOTAL).fill(0.1));
      const slotOf = async (n: number) => {
        const r = await s.nth('result', n);
        if (r.t !== 'result') throw new Error('unreachable');
        return r.shm;
      };
      // Nothing read yet: RESULT_SLOTS results fill the slots, the next one comes in its frame.
      for (let k = 0; k <= RESULT_SLOTS; k++) s.send(work(k, 0));
      for (let k = 0; k < RESULT_SLOTS; k++) expect(await slotOf(k)).toBe(k + 1);
      expect(await slotOf(RESULT_SLOTS)).toBe(0);
      // The coordinator read result 1: slot 9 may reuse result 1's slot, and only that one.
      s.send(work(RESULT_SLOTS + 1, 1));
      s.send(work(RESULT_SLOTS + 2, 1));
      expect(await slotOf(RESULT_SLOTS + 1)).toBe(RESULT_SLOTS + 1);
      expect(await slotOf(RESULT_SLOTS + 2)).toBe(0);
      s.send({ t: 'bye', reason: 'done' });
      expect(await s.outcome).toMatchObject({ finished: true, fatal: null });
      await s.net.listener.close();
    } finally {
      shm.remove();
    }
  });

  it('a compressing job: top-k of the gradient, then of the gradient plus the residual it kept', async () => {
    const params = Float32Array.from({ length: TOTAL }, (_, i) => Math.sin(i + 1));
    /** Results of `shards` identical works on `params`, under the job `c`. */
    const results = async (c: typeof cfg, shards: number, compressor?: GradientCompressor) => {
      const s = await session(TOKEN, undefined, compressor);
      await s.join(jobOf(c), TOKEN);
      await s.next('ready');
      s.send({ t: 'params', version: 0, shm: 0 }, params);
      for (let k = 0; k < shards; k++) s.send(work(k));
      await s.nth('result', shards - 1);
      s.send({ t: 'bye', reason: 'done' });
      await s.outcome;
      await s.net.listener.close();
      return s.got.flatMap((m, i) => (m.t === 'result' ? [s.payloads[i]!] : []));
    };
    const [g] = await results(cfg, 1);
    const topk = new TopK({ kind: 'topk', ratio: 0.2 }); // k = 4 of 17
    const sent = await results(parseConfig({ ...cfg, compression: { kind: 'topk', ratio: 0.2 } }), 2, topk);
    // The same two results, replayed here from the dense gradient and a residual from zero.
    const residual = new Float32Array(TOTAL);
    const want = [0, 1].map(() => {
      const w = new Float32Array(topk.wordsPerNode(TOTAL));
      topk.encode([g], 1, residual, w);
      return Buffer.from(w.buffer);
    });
    expect(want[1].equals(want[0])).toBe(false); // the residual changed what the second one sent
    for (let k = 0; k < 2; k++)
      expect(Buffer.from(sent[k].buffer, sent[k].byteOffset, sent[k].byteLength)).toEqual(want[k]);
  });
});
