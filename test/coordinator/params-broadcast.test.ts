/**
 * ParamsBroadcast over the in-process transport: each worker gets a version once, on its own
 * payload channel when granted one, each channel written once per version in a slot none of
 * its own workers may still be reading.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Membership, type WorkerSession } from '../../coordinator/membership.js';
import { ParamsBroadcast } from '../../coordinator/params-broadcast.js';
import { jobOf, parseConfig } from '../../shared/job/config.js';
import { createLocalNetwork, type LocalNetwork } from '../../shared/transport/local.js';
import { MemoryChannel } from '../../shared/transport/memory-channel.js';
import { ShmChannel } from '../../shared/transport/shm.js';
import type { Params } from '../../shared/wire/protocol.js';
import { fakeWorker } from '../helpers/fake-worker.js';

const cfg = parseConfig({
  data: { name: 'xor' },
  model: { layers: [{ units: 4, activation: 'tanh' }, { units: 1 }], loss: 'binaryCrossEntropy' },
});
const TOTAL = 2 * 4 + 4 + 4 + 1;
const TOKEN = 'a-test-token-of-enough-length';
const log = pino({ level: 'silent' });

let net: LocalNetwork;
let root = '';
afterEach(async () => {
  await net.listener.close();
  rmSync(root, { recursive: true, force: true });
});

/** Until `n` parameter frames arrived in `got`. */
async function frames(got: Params[], n: number): Promise<void> {
  while (got.length < n) await new Promise((r) => setImmediate(r));
}

describe('ParamsBroadcast', () => {
  it('writes each channel once per version, in a slot its own workers have let go', async () => {
    root = mkdtempSync(join(tmpdir(), 'dptrain-params-test-'));
    const files = ShmChannel.create(1 << 20, root);
    if (typeof files === 'string') throw new Error(files);
    const memory = new MemoryChannel();
    net = createLocalNetwork();
    const m = new Membership(net.listener, {
      job: jobOf(cfg),
      jobId: 'job-test',
      totalParams: TOTAL,
      maxWorkers: 4,
      log,
      token: TOKEN,
      channels: [files, memory],
    });
    const got: Record<string, Params[]> = { memory: [], files: [], frames: [] };
    const enter = (name: string, shm?: (nonce: string) => string) => {
      const ready = new Promise<WorkerSession>((r) => m.once('ready', r));
      void fakeWorker(net.dial, TOTAL, {
        token: TOKEN,
        name,
        shm,
        onMessage: (msg) => msg.t === 'params' && got[name].push(msg),
      });
      return ready;
    };
    const inside = await enter('memory', (nonce) => memory.offer().proof(nonce)!);
    const local = await enter('files', (nonce) => ShmChannel.offer(files.dir).proof(nonce)!);
    const remote = await enter('frames');
    const b = new ParamsBroadcast({ membership: m, log, wireDtype: 'float32', sliced: false });
    const v0 = Float32Array.from({ length: TOTAL }, (_, i) => i);
    const v1 = v0.map((x) => -x);

    b.set(0, v0);
    for (const w of [inside, local, remote, inside]) b.ensure(w); // the second time: it has them
    await frames(got.frames, 1);
    await frames(got.files, 1);
    await frames(got.memory, 1);
    expect([got.memory, got.files, got.frames].map((g) => g.map((p) => p.shm))).toEqual([[1], [1], [0]]);
    expect(Array.from(memory.offer().open().readParams(0, 0, TOTAL, 'float32'))).toEqual(Array.from(v0));
    expect(Array.from(new ShmChannel(files.dir).readParams(0, 0, TOTAL, 'float32'))).toEqual(Array.from(v0));

    // The local worker answered a request sent after version 0 (it has read its slot); the
    // worker inside has not. Version 1 then reuses the files' slot 0, and takes memory slot 1.
    local.answers = local.requests + 1;
    b.set(1, v1);
    for (const w of [inside, local, remote]) b.ensure(w);
    await frames(got.frames, 2);
    await frames(got.files, 2);
    await frames(got.memory, 2);
    expect([got.memory[1].shm, got.files[1].shm, got.frames[1].shm]).toEqual([2, 1, 0]);
    expect(Array.from(memory.offer().open().readParams(1, 1, TOTAL, 'float32'))).toEqual(Array.from(v1));
    expect(Array.from(memory.offer().open().readParams(0, 0, TOTAL, 'float32'))).toEqual(Array.from(v0));
    expect(Array.from(new ShmChannel(files.dir).readParams(0, 1, TOTAL, 'float32'))).toEqual(Array.from(v1));
    files.remove();
  });
});
