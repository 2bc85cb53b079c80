/**
 * Membership over the in-process transport: the handshake, and every refusal carried as a
 * close kind (the worker branches on it; the text is for logs).
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { ShmChannel } from '../../shared/transport/shm.js';
import { MemoryChannel } from '../../shared/transport/memory-channel.js';
import { afterEach, describe, expect, it } from 'vitest';
import { Membership, type MembershipOptions, type WorkerSession } from '../../coordinator/membership.js';
import { jobOf, parseConfig } from '../../shared/job/config.js';
import { encodeFrame } from '../../shared/wire/codec.js';
import { createLocalNetwork, type LocalNetwork } from '../../shared/transport/local.js';
import type { CloseKind, Link, Listener } from '../../shared/transport/transport.js';
import { fakeWorker } from '../helpers/fake-worker.js';
import { evalResultFor } from '../helpers/result-msg.js';
import { busyOrIdle } from '../../coordinator/worker-session.js';
import { fingerprint, loadDataset } from '../../shared/datasets/index.js';

const cfg = parseConfig({
  data: { name: 'xor' },
  model: { layers: [{ units: 4, activation: 'tanh' }, { units: 1 }], loss: 'binaryCrossEntropy' },
});
const TOTAL = 2 * 4 + 4 + 4 + 1;
const TOKEN = 'a-test-token-of-enough-length';

let net: LocalNetwork;
/** A Membership on a fresh in-process network (its listener as `through` makes it, default as is). */
function membership(
  o: Partial<MembershipOptions> = {},
  through: (l: Listener) => Listener = (l) => l,
  network: LocalNetwork = createLocalNetwork(),
): Membership {
  net = network;
  return new Membership(through(net.listener), {
    job: jobOf(cfg),
    jobId: 'job-test',
    totalParams: TOTAL,
    maxWorkers: 4,
    log: pino({ level: 'silent' }),
    token: TOKEN,
    ...o,
  });
}
const readyOnce = (m: Membership) => new Promise<string>((r) => m.once('ready', (w) => r(w.id)));

afterEach(async () => {
  await net.listener.close();
});

describe('Membership', () => {
  it('a worker with the token becomes ready, and is gone once its link closes', async () => {
    const m = membership();
    const ready = readyOnce(m);
    const w = await fakeWorker(net.dial, TOTAL, { token: TOKEN });
    const id = await ready;
    expect(m.ready().map((x) => x.id)).toEqual([id]);
    const gone = new Promise((r) => m.once('gone', r));
    w.link.close('leaving');
    await gone;
    expect(m.ready()).toEqual([]);
  });

  it('a wrong token is refused as authFailed', async () => {
    membership();
    const w = await fakeWorker(net.dial, TOTAL, { token: 'another-token-of-enough-length' });
    expect(await w.closedKind).toBe('authFailed');
  });

  it('beyond maxWorkers: jobFull (try again later), not a refusal for good', async () => {
    const m = membership({ maxWorkers: 1 });
    const ready = readyOnce(m);
    await fakeWorker(net.dial, TOTAL, { token: TOKEN });
    await ready;
    const second = await fakeWorker(net.dial, TOTAL, { token: TOKEN });
    expect(await second.closedKind).toBe('jobFull');
    expect(await second.closed).toMatch(/^job is full \(maxWorkers 1\)/);
  });

  it("a dataset unlike the others' is datasetDiffers", async () => {
    const m = membership();
    const ready = readyOnce(m);
    await fakeWorker(net.dial, TOTAL, { token: TOKEN });
    await ready;
    const odd = await fakeWorker(net.dial, TOTAL, { token: TOKEN, fingerprint: 'xor:4+0:2->1:00000000' });
    expect(await odd.closedKind).toBe('datasetDiffers');
  });

  it('a ready that counts no workers behind its link is invalid', async () => {
    membership();
    const none = await fakeWorker(net.dial, TOTAL, { token: TOKEN, workers: 0 });
    expect(await none.closedKind).toBe('invalid');
    expect(await none.closed).toBe('invalid: ready.workers 0: a member computes for one worker at least');
  });

  it("members after ready recounts a host agent's workers; before ready, or counting none, it is invalid", async () => {
    const m = membership();
    const ready = readyOnce(m);
    const agent = await fakeWorker(net.dial, TOTAL, { token: TOKEN, workers: 3 });
    const id = await ready;
    expect(m.workersBehind(id)).toBe(3);
    const members = (workers: number) =>
      encodeFrame({ t: 'members', backend: 'cpu+wasm', peakFlops: 2e12, attainableFlops: 5e9, workers });
    agent.link.send(members(2));
    await new Promise((r) => setTimeout(r, 20));
    expect(m.workersBehind(id)).toBe(2);
    expect(m.ready()[0]).toMatchObject({ backend: 'cpu+wasm', peakFlops: 2e12, attainableFlops: 5e9 });
    agent.link.send(members(0));
    expect(await agent.closed).toBe('invalid: members.workers 0: a member computes for one worker at least');
    const early = await fakeWorker(net.dial, TOTAL, { token: TOKEN, ready: false });
    early.link.send(members(1));
    expect(await early.closed).toBe('invalid: members while hello'); // out of turn
  });

  it('a worker that turns the job down before its hello (another job): logged as that, not as an invalid message', async () => {
    const lines: string[] = [];
    membership({ log: pino({ level: 'info' }, { write: (l: string) => void lines.push(l) }) });
    const w = await fakeWorker(net.dial, TOTAL, { token: TOKEN, ready: false });
    w.link.send(
      encodeFrame({ t: 'fault', message: 'wrong job: the coordinator runs job-test, this worker was started for b' }),
    );
    expect(await w.closedKind).toBe('workerFault');
    const rec = lines.map((l) => JSON.parse(l) as { level: number; msg: string; fault?: string }).find((r) => r.fault);
    expect(rec).toMatchObject({ level: 40, msg: 'a worker turned the job down' });
    expect(rec?.fault).toMatch(/^wrong job: /);
  });

  it('bytes that do not decode, or a message out of turn, are invalid', async () => {
    membership();
    const junk = await fakeWorker(net.dial, TOTAL, { token: TOKEN, ready: false });
    junk.link.send(new Uint8Array([1, 2, 3]));
    expect(await junk.closedKind).toBe('invalid');
    const early = await fakeWorker(net.dial, TOTAL, { token: TOKEN, ready: false });
    early.link.send(
      encodeFrame({ t: 'evalResult', round: 0, shard: 0, lossSum: 0, correct: 0, count: 1, computeMs: 1 }),
    );
    expect(await early.closedKind).toBe('invalid');
    expect(await early.closed).toBe('invalid: evalResult while hello'); // sent before its hello
  });

  it('a hello that never comes: timeout; too many waiting at once: busy', async () => {
    membership({ authTimeoutMs: 100, maxPending: 1 });
    const a = await net.dial(); // never answers the challenge
    const aKind = new Promise((r) => a.onClose((_x, k) => r(k)));
    const b = await net.dial();
    const bKind = new Promise((r) => b.onClose((_x, k) => r(k)));
    expect(await bKind).toBe('busy');
    expect(await aKind).toBe('timeout');
  });
});

describe('Membership deadlines and limits', () => {
  it('a welcomed worker that never sends ready is closed (timeout) and frees its place', async () => {
    const m = membership({ maxWorkers: 1, readyTimeoutMs: 150 });
    const idle = await fakeWorker(net.dial, TOTAL, { token: TOKEN, ready: false });
    expect(await idle.closedKind).toBe('timeout');
    expect(await idle.closed).toMatch(/^no ready within 0.15 s/);
    const ready = readyOnce(m);
    await fakeWorker(net.dial, TOTAL, { token: TOKEN }); // the place it held is free
    await ready;
  });

  it('the unauthenticated limit is per address: one address full does not keep another out', async () => {
    // Links as sockets from two hosts would give them: the server side of a local pair, renamed.
    const inner = createLocalNetwork();
    let accept: (l: Link) => void = () => {};
    const listener: Listener = { address: 'test', onLink: (h) => (accept = h), close: () => inner.listener.close() };
    let nextRemote = '';
    inner.listener.onLink((l) =>
      accept({
        remote: nextRemote,
        send: (f) => l.send(f),
        close: (r, k) => l.close(r, k),
        onFrame: (h) => l.onFrame(h),
        onClose: (h) => l.onClose(h),
      }),
    );
    const m = membership({ maxPendingPerAddress: 2 }, () => listener, inner);
    const from = async (remote: string) => {
      nextRemote = remote;
      const link = await inner.dial();
      return { link, kind: new Promise<CloseKind>((r) => link.onClose((_x, k) => r(k))) };
    };
    await from('10.0.0.1:40001');
    await from('10.0.0.1:40002');
    const third = await from('10.0.0.1:40003');
    expect(await third.kind).toBe('busy');
    await from('10.0.0.2:40001'); // another address: let in
    await new Promise((r) => setImmediate(r));
    expect([...m.workers.values()].map((w) => w.remote)).toEqual([
      '10.0.0.1:40001',
      '10.0.0.1:40002',
      '10.0.0.2:40001',
    ]);
  });
});

describe("the job's dataset", () => {
  it('set by the coordinator: a worker with other data is refused even when it comes first, and the right one joins', async () => {
    const ds = loadDataset(cfg.data, cfg.seed);
    const m = membership({ fingerprint: fingerprint(ds) });
    const wrong = await fakeWorker(net.dial, TOTAL, { token: TOKEN, fingerprint: 'xor:4+0:2->1:00000000' });
    expect(await wrong.closedKind).toBe('datasetDiffers');
    const ready = readyOnce(m);
    await fakeWorker(net.dial, TOTAL, { token: TOKEN });
    await ready;
    expect(m.data?.fingerprint).toBe(fingerprint(ds));
  });

  it('without it, the first ready worker sets it (the fallback when the coordinator cannot load the data)', async () => {
    const m = membership();
    const ready = readyOnce(m);
    await fakeWorker(net.dial, TOTAL, { token: TOKEN, fingerprint: 'xor:4+0:2->1:00000000' });
    await ready;
    expect(m.data?.fingerprint).toBe('xor:4+0:2->1:00000000');
  });
});

describe('busy links', () => {
  it('tells the link its worker is busy while it loads the job or owes answers, so silence then is no sign of death', async () => {
    const busy: boolean[] = [];
    const m = membership({}, (l) => ({
      address: l.address,
      onLink: (h) => l.onLink((link) => h(Object.assign(link, { setBusy: (b: boolean) => busy.push(b) }))),
      close: () => l.close(),
    }));
    const ready = new Promise<WorkerSession>((r) => m.once('ready', r));
    const w = await fakeWorker(net.dial, TOTAL, {
      token: TOKEN,
      onMessage: (msg, me) => {
        if (msg.t === 'evaluate') me.send(evalResultFor(msg));
      },
    });
    const session = await ready;
    expect(busy).toEqual([true, false]); // loading, then ready
    const answered = new Promise((r) => m.once('evalResult', r));
    m.send(session, { t: 'evaluate', round: 0, shard: 0, version: 0, from: 0, to: 1 });
    m.send(session, { t: 'evaluate', round: 1, shard: 0, version: 0, from: 0, to: 1 });
    expect(busy.slice(2)).toEqual([true, true]);
    await answered;
    await new Promise((r) => m.once('evalResult', r));
    expect(busy.slice(4)).toEqual([true, false]); // one answer of two, then both
    // Owing an answer past its deadline (overdue), it is no longer excused: a stalled worker is
    // cut; its answer excuses it again while it owes more.
    m.send(session, { t: 'evaluate', round: 2, shard: 0, version: 0, from: 0, to: 1 });
    m.send(session, { t: 'evaluate', round: 3, shard: 0, version: 0, from: 0, to: 1 });
    session.overdue = true;
    busyOrIdle(session);
    await new Promise((r) => m.once('evalResult', r));
    expect(busy.slice(6)).toEqual([true, true, false, true]);
    w.link.close('done');
  });
});

describe("shared memory is granted on proof, not on the worker's word", () => {
  it("only a hello that proves it read the private directory's grant file gets it", async () => {
    const root = mkdtempSync(join(tmpdir(), 'dptrain-shm-test-'));
    const channel = ShmChannel.create(1 << 20, root);
    if (typeof channel === 'string') throw new Error(channel);
    try {
      membership({ channels: [channel] });
      const claims = await fakeWorker(net.dial, TOTAL, { token: TOKEN, shm: () => 'I can read it, honestly' });
      expect(await claims.granted).toBe(false);
      const replays = await fakeWorker(net.dial, TOTAL, {
        token: TOKEN,
        shm: () => ShmChannel.grantProof(channel.dir, "another connection's nonce")!,
      });
      expect(await replays.granted).toBe(false);
      const reads = await fakeWorker(net.dial, TOTAL, {
        token: TOKEN,
        shm: (nonce) => ShmChannel.grantProof(channel.dir, nonce)!,
      });
      expect(await reads.granted).toBe(true);
      expect(statSync(join(channel.dir, 'grant')).mode & 0o777).toBe(0o600);
    } finally {
      channel.remove();
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('with two channels, each worker gets the one whose secret it proves', async () => {
    const root = mkdtempSync(join(tmpdir(), 'dptrain-shm-test-'));
    const files = ShmChannel.create(1 << 20, root);
    if (typeof files === 'string') throw new Error(files);
    const memory = new MemoryChannel();
    try {
      const m = membership({ channels: [files, memory] });
      const inside = await fakeWorker(net.dial, TOTAL, { token: TOKEN, shm: (nonce) => memory.offer().proof(nonce)! });
      const outside = await fakeWorker(net.dial, TOTAL, {
        token: TOKEN,
        shm: (nonce) => ShmChannel.offer(files.dir).proof(nonce)!,
      });
      const neither = await fakeWorker(net.dial, TOTAL, { token: TOKEN });
      expect(await Promise.all([inside.granted, outside.granted, neither.granted])).toEqual([true, true, false]);
      const granted = [...m.workers.values()].map((w) => w.channel?.kind ?? 'frames').sort();
      expect(granted).toEqual(['files', 'frames', 'memory']);
      // A channel that failed is granted to nobody joining after.
      memory.disable('a slot was overwritten');
      const late = await fakeWorker(net.dial, TOTAL, { token: TOKEN, shm: (nonce) => memory.offer().proof(nonce)! });
      expect(await late.granted).toBe(false);
    } finally {
      files.remove();
      rmSync(root, { recursive: true, force: true });
    }
  });
});
