/**
 * Fuzzing a live coordinator during a run: thousands of random, truncated, bit-flipped and
 * oversized frames, well-formed frames with wrong lengths or NaN, replayed frames, and
 * unauthenticated and wrong-token connections, while two honest workers train. The
 * coordinator must not crash, and the run must end with exactly the parameters of a clean run.
 */
import type { ChildProcess } from 'node:child_process';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import type { RunSummary } from '../../coordinator/summary.js';
import { workerProof } from '../../shared/wire/auth.js';
import { decodeFrame, encodeFrame } from '../../shared/wire/codec.js';
import { parseConfig } from '../../shared/job/config.js';
import { PROTOCOL_VERSION, type Message } from '../../shared/wire/protocol.js';
import { Rng } from '../../shared/util/rng.js';
import { maxFrameBytes } from '../../cli/run-coordinator.js';
import { spawnWorker } from '../helpers/cli.js';
import { resultFor, resultMsg } from '../helpers/result-msg.js';
import { wsCoordinator } from '../helpers/ws-coordinator.js';

const TOKEN = 'fuzz-token-0123456789abcdefghij';
const cfg = parseConfig({
  seed: 11,
  data: { name: 'spirals', samples: 400 },
  model: { layers: [{ units: 16, activation: 'tanh' }, { units: 2 }], loss: 'softmaxCrossEntropy' },
  steps: 400,
  batchSize: 40,
  evalEvery: 50,
  workers: 2,
});
const MAX = maxFrameBytes(cfg);

const children: ChildProcess[] = [];
afterEach(() =>
  children.splice(0).forEach((c) => {
    if (c.exitCode === null) c.kill('SIGKILL');
  }),
);

function honest(address: string): Promise<number | null> {
  const c = spawnWorker(address, [], { ...process.env, DPTRAIN_TOKEN: TOKEN });
  children.push(c);
  return new Promise((r) => c.on('exit', r));
}

async function train(fuzz: boolean): Promise<{
  params: Float32Array;
  summary: RunSummary;
  frames: number;
  connections: number;
  exits: Array<number | null>;
}> {
  let fuzzing = false;
  const { coord, listener } = await wsCoordinator(
    { config: cfg, token: TOKEN, startWorkers: 2, onStep: () => (fuzzing = fuzz) },
    MAX,
  );
  const run = coord.run();
  const exits = Promise.all([honest(listener.address), honest(listener.address)]);
  let done = false;
  let frames = 0;
  let connections = 0;
  const totalParams = coord.layout.totalParams;
  const rng = new Rng(1234);
  const randomBytes = (n: number) => Uint8Array.from({ length: n }, () => rng.int(256));
  const valid = (): Uint8Array => {
    const msgs: Array<[Message, Float32Array | null]> = [
      [
        resultFor({ step: rng.int(300), micro: 0, shard: rng.int(3) }, { lossSum: 1, losses: [1], count: 20 }),
        new Float32Array(totalParams),
      ],
      [{ t: 'evalResult', round: 50, shard: 0, lossSum: 1, correct: 1, count: 80, computeMs: 1 }, null],
      [
        {
          t: 'ready',
          fingerprint: 'spirals:320+80:2->2:00000000',
          backend: 'cpu',
          backendReason: 'x',
          peakFlops: 0,
          attainableFlops: 1,
          workers: 1,
        },
        null,
      ],
    ];
    const [m, p] = msgs[rng.int(msgs.length)];
    return encodeFrame(m, p);
  };
  /** One hostile frame: random, truncated, bit-flipped, wrong length, NaN, wrong direction. */
  const hostile = (): Uint8Array => {
    switch (rng.int(7)) {
      case 0:
        return randomBytes(1 + rng.int(200));
      case 1: {
        const v = valid();
        return v.subarray(0, rng.int(v.length));
      }
      case 2: {
        const v = valid().slice();
        for (let k = 0; k < 1 + rng.int(4); k++) v[rng.int(v.length)] ^= 1 << rng.int(8);
        return v;
      }
      case 3:
        return encodeFrame(resultMsg(1, 20), new Float32Array(totalParams + 1 + rng.int(5)));
      case 4:
        return encodeFrame(
          { ...resultFor({ step: 0, micro: 0, shard: 0 }, { lossSum: NaN, losses: [NaN], count: 20 }), computeMs: NaN },
          new Float32Array(totalParams).fill(NaN),
        );
      case 5:
        return encodeFrame({ t: 'bye', reason: 'wrong direction' });
      default:
        return valid(); // well-formed, but from a worker that is not ready: refused
    }
  };
  /** One hostile connection of a random kind; resolves when the coordinator has closed it. */
  const attack = (): Promise<void> =>
    new Promise((resolve) => {
      connections++;
      const ws = new WebSocket(listener.address, { maxPayload: 1 << 26 });
      const kind = rng.int(5); // 0 raw junk, 1 oversized, 2 wrong token, 3 authenticated junk, 4 replayed hello
      const sendAll = (n: number) => {
        for (let i = 0; i < n && ws.readyState === ws.OPEN; i++, frames++) ws.send(hostile());
      };
      ws.on('error', () => {});
      ws.on('close', () => resolve());
      ws.on('open', () => {
        if (kind === 0) sendAll(1 + rng.int(30));
        if (kind === 1) {
          frames++;
          ws.send(new Uint8Array(MAX + 1 + rng.int(1000)));
        }
      });
      ws.on('message', (bytes: Buffer) => {
        const { header } = decodeFrame(bytes);
        const h = header as { t: string; jobId: string; nonce: string };
        if (h.t !== 'challenge' || kind < 2) return;
        const proof =
          kind === 2
            ? workerProof('wrong-token-wrong-token-wrong', h.jobId, h.nonce, 'c')
            : workerProof(TOKEN, h.jobId, h.nonce, 'c');
        const hello = encodeFrame({
          t: 'hello',
          protocol: PROTOCOL_VERSION,
          name: 'fuzz',
          host: 'fuzz',
          pid: 0,
          jobId: '',
          cnonce: 'c',
          proof,
          shm: '',
        });
        ws.send(hello);
        frames++;
        if (kind === 3) sendAll(1 + rng.int(30));
        if (kind === 4) {
          ws.send(hello); // a replayed hello
          frames++;
        }
      });
    });
  const fuzzer = (async () => {
    while (!done) {
      if (!fuzzing) {
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      await Promise.all(Array.from({ length: 6 }, attack));
    }
  })();
  const summary = await run;
  done = true;
  await fuzzer;
  await listener.close();
  return { params: coord.params.slice(), summary, frames, connections, exits: await exits };
}

describe('fuzzing a live coordinator', () => {
  it('survives thousands of hostile frames and ends with the parameters of a clean run', async () => {
    const clean = await train(false);
    const fuzzed = await train(true);
    console.log(
      `fuzz: ${fuzzed.frames} hostile frames over ${fuzzed.connections} connections during ${fuzzed.summary.steps} steps`,
    );
    expect(fuzzed.frames).toBeGreaterThanOrEqual(2000);
    expect(fuzzed.summary.steps).toBe(400);
    expect(fuzzed.summary.droppedWorkers).toBe(0); // no honest worker was dropped
    expect(fuzzed.exits).toEqual([0, 0]);
    expect(fuzzed.params).toEqual(clean.params);
  }, 180_000);
});
