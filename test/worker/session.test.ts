/**
 * The worker's session over the in-process transport, against a scripted coordinator: the
 * handshake, one shard, goodbye; and a message out of turn, which ends it with a coded close.
 */
import { tmpdir } from 'node:os';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { coordinatorProof } from '../../shared/wire/auth.js';
import { encodeFrame } from '../../shared/wire/codec.js';
import { jobOf, parseConfig } from '../../shared/job/config.js';
import { PROTOCOL_VERSION, type Message, type ToCoordinator } from '../../shared/wire/protocol.js';
import { createLocalNetwork } from '../../shared/transport/local.js';
import { RESULT_SLOTS, ShmChannel } from '../../shared/transport/shm.js';
import type { CloseKind, Link } from '../../shared/transport/transport.js';
import { readFromWorker } from '../../shared/wire/validate.js';
import { runWorker } from '../../worker/worker.js';
import type { GradientCompressor } from '../../shared/compress/index.js';
import { TopK } from '../../shared/compress/topk.js';

const cfg = parseConfig({
  data: { name: 'xor' },
  model: { layers: [{ units: 4, activation: 'tanh' }, { units: 1 }], loss: 'binaryCrossEntropy' },
});
const TOTAL = 2 * 4 + 4 + 4 + 1;
const TOKEN = 'a-test-token-of-enough-length';

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
  const net = createLocalNetwork();
  const server = new Promise<Link>((r) => net.listener.onLink(r));
  const link = await net.dial();
  const outcome = runWorker({
    link,
    backend: { name: 'cpu', provider: 'test', reason: 'test' },
    name: 'w',
    log: pino({ level: 'silent' }),
    token,
    shmDir,
  });
  const coord = await server;
  const got: ToCoordinator[] = [];
  /** Each message's payload, as it came (a compressor's words stay words). */
  const payloads: Array<Float32Array | null> = [];
  const waiting: Array<() => void> = [];
  coord.onFrame((f) => {
    const frame = readFromWorker(f, { totalParams: TOTAL, compressor });
    got.push(frame.msg);
    payloads.push(frame.payload);
    for (const w of waiting.splice(0)) w();
  });
  const closed = new Promise<CloseKind>((r) => coord.onClose((_x, k) => r(k)));
  const next = async (t: ToCoordinator['t']) => {
    while (!got.some((m) => m.t === t)) await new Promise<void>((r) => waiting.push(r));
    return got.find((m) => m.t === t)!;
  };
  /** The n-th message of type t (0-based), once it has come. */
  const nth = async (t: ToCoordinator['t'], n: number) => {
    while (got.filter((m) => m.t === t).length <= n) await new Promise<void>((r) => waiting.push(r));
    return got.filter((m) => m.t === t)[n];
  };
  const send = (m: Message, p: Float32Array | null = null) => coord.send(encodeFrame(m, p));
  return { send, next, nth, closed, outcome, net, got, payloads };
}

describe('worker session', () => {
  it('challenge → hello, welcome → ready, params and work → result, bye → finished', async () => {
    const s = await session();
    s.send({ t: 'challenge', protocol: PROTOCOL_VERSION, jobId: 'job-test', nonce: 'n1' });
    const hello = await s.next('hello');
    if (hello.t !== 'hello') throw new Error('unreachable');
    expect(hello.shm).toBe(''); // no directory: no shared memory offered
    s.send({
      t: 'welcome',
      protocol: PROTOCOL_VERSION,
      workerId: 'w1',
      jobId: 'job-test',
      job: jobOf(cfg),
      proof: coordinatorProof(TOKEN, 'job-test', hello.cnonce, 'n1'),
      shm: false,
    });
    await s.next('ready');
    s.send({ t: 'params', version: 0, shm: 0 }, new Float32Array(TOTAL).fill(0.1));
    s.send(work(0));
    const result = await s.next('result');
    expect(result).toMatchObject({ t: 'result', step: 0, shard: 0, count: 4 });
    s.send({ t: 'bye', reason: 'done' });
    expect(await s.outcome).toMatchObject({ finished: true, fatal: null });
    await s.net.listener.close();
  });

  it('a message its state does not expect ends the session: fault, then a workerFault close', async () => {
    const s = await session();
    s.send(work(0));
    const fault = await s.next('fault');
    expect(fault).toMatchObject({ t: 'fault', message: 'invalid: work while challenged' });
    expect(await s.closed).toBe('workerFault');
    expect((await s.outcome).fatal).toBe('RUN_FAILED');
    await s.net.listener.close();
  });

  it('a coordinator that cannot prove the token: AUTH_FAILED, closed as authFailed', async () => {
    const s = await session();
    s.send({ t: 'challenge', protocol: PROTOCOL_VERSION, jobId: 'job-test', nonce: 'n1' });
    await s.next('hello');
    s.send({
      t: 'welcome',
      protocol: PROTOCOL_VERSION,
      workerId: 'w1',
      jobId: 'job-test',
      job: jobOf(cfg),
      proof: 'forged',
      shm: false,
    });
    expect(await s.closed).toBe('authFailed');
    expect((await s.outcome).fatal).toBe('AUTH_FAILED');
    await s.net.listener.close();
  });

  it('another protocol version: PROTOCOL_MISMATCH', async () => {
    const s = await session();
    s.send({ t: 'challenge', protocol: PROTOCOL_VERSION + 1, jobId: 'job-test', nonce: 'n1' });
    expect(await s.closed).toBe('protocolMismatch');
    expect((await s.outcome).fatal).toBe('PROTOCOL_MISMATCH');
    await s.net.listener.close();
  });

  it('writes a shared-memory result slot only on credit: without it, the result travels in the frame', async () => {
    const shm = ShmChannel.create(1 << 20, tmpdir());
    if (typeof shm === 'string') throw new Error(shm);
    try {
      const s = await session(TOKEN, shm.dir);
      s.send({ t: 'challenge', protocol: PROTOCOL_VERSION, jobId: 'job-test', nonce: 'n1' });
      const hello = await s.next('hello');
      if (hello.t !== 'hello') throw new Error('unreachable');
      expect(shm.verifiesGrant('n1', hello.shm)).toBe(true);
      s.send({
        t: 'welcome',
        protocol: PROTOCOL_VERSION,
        workerId: 'w1',
        jobId: 'job-test',
        job: jobOf(cfg),
        proof: coordinatorProof(TOKEN, 'job-test', hello.cnonce, 'n1'),
        shm: true,
      });
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
      s.send({ t: 'challenge', protocol: PROTOCOL_VERSION, jobId: 'job-test', nonce: 'n1' });
      const hello = await s.next('hello');
      if (hello.t !== 'hello') throw new Error('unreachable');
      const proof = coordinatorProof(TOKEN, 'job-test', hello.cnonce, 'n1');
      s.send({
        t: 'welcome',
        protocol: PROTOCOL_VERSION,
        workerId: 'w1',
        jobId: 'job-test',
        job: jobOf(c),
        proof,
        shm: false,
      });
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
