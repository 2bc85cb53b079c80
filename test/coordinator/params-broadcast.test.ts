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
import type { PayloadChannel } from '../../shared/transport/payload-channel.js';
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

/** A Membership on a fresh in-process network, granting these payload channels. */
function membershipWith(channels: PayloadChannel[]): Membership {
  net = createLocalNetwork();
  return new Membership(net.listener, {
    job: jobOf(cfg),
    jobId: 'job-test',
    totalParams: TOTAL,
    maxWorkers: 4,
    log,
    token: TOKEN,
    channels,
  });
}

describe('ParamsBroadcast', () => {
  it('writes each channel once per version, in a slot its own workers have let go', async () => {
    root = mkdtempSync(join(tmpdir(), 'dptrain-params-test-'));
    const files = ShmChannel.create(1 << 20, root);
    if (typeof files === 'string') throw new Error(files);
    const memory = new MemoryChannel();
    const m = membershipWith([files, memory]);
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

  it('keeps every slot a worker may still read; a worker without requests is offered one version, not each', async () => {
    const memory = new MemoryChannel();
    const m = membershipWith([memory]);
    const got: Record<string, Params[]> = { busy: [], idle: [] };
    const enter = (name: string) => {
      const ready = new Promise<WorkerSession>((r) => m.once('ready', r));
      void fakeWorker(net.dial, TOTAL, {
        token: TOKEN,
        name,
        shm: (nonce) => memory.offer().proof(nonce)!,
        onMessage: (msg) => msg.t === 'params' && got[name].push(msg),
      });
      return ready;
    };
    const busy = await enter('busy');
    const idle = await enter('idle');
    const b = new ParamsBroadcast({ membership: m, log, wireDtype: 'float32', sliced: false });
    const answer = (w: WorkerSession) => {
      w.requests++; // a shard sent after everything it holds ...
      w.answers = w.requests; // ... and answered: it has read every slot
    };
    const slots = async (name: string, n: number) => {
      await frames(got[name], n);
      return got[name].map((p) => p.shm - 1);
    };
    const values = new Float32Array(TOTAL);

    b.set(0, values);
    for (const w of [busy, idle]) b.offer(w);
    expect([await slots('busy', 1), await slots('idle', 1)]).toEqual([[0], [0]]);
    answer(busy);
    b.set(1, values);
    for (const w of [busy, idle]) b.offer(w); // idle had no request since version 0: not offered version 1
    expect(await slots('busy', 2)).toEqual([0, 1]);
    await new Promise((r) => setImmediate(r));
    expect(got.idle).toHaveLength(1);

    // Sent version 1 as well (with a request, say) before it read version 0: it may be reading either.
    b.ensure(idle);
    expect(await slots('idle', 2)).toEqual([0, 1]);
    answer(busy);
    b.set(2, values);
    b.ensure(busy);
    expect(await slots('busy', 3)).toEqual([0, 1, 2]); // slot 0 is still the idle worker's, not free
    answer(idle);
    answer(busy);
    b.set(3, values);
    b.ensure(busy);
    expect(await slots('busy', 4)).toEqual([0, 1, 2, 0]); // both let go: the lowest slot again
  });
});
