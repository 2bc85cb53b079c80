/**
 * Slice shards set up wrongly, over the in-process transport: each mistake is refused where it
 * can first be seen, in one line that names what to fix, and as a refusal (the worker exits)
 * rather than a lost link (the worker would retry forever):
 *   - a worker without --slice-shard at a sliced coordinator, or with it at an unsliced one: at hello;
 *   - a worker listing the shards in another order (or another number of them): when its shard
 *     links open, before it loads the job, or by the first slice if the shards were not claimed yet;
 *   - a shard started with another model (--config): when the coordinator dials it, and by a worker;
 *   - a shard lost: the message names the shard, and says whether a checkpoint can be resumed.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Membership } from '../../coordinator/membership.js';
import type { AdamHyper, AdamState } from '../../coordinator/optimizers/adam.js';
import { NORM_BLOCK } from '../../coordinator/slices/blocks.js';
import { sliceCluster } from '../../coordinator/slices/local-cluster.js';
import { RemoteSlices } from '../../coordinator/slices/remote-slices.js';
import { SliceServer } from '../../coordinator/slices/slice-server.js';
import { DEFAULT_CONFIG, jobOf } from '../../shared/job/config.js';
import { jobLayout } from '../../shared/job/job-layout.js';
import { createLocalNetwork, type LocalNetwork } from '../../shared/transport/local.js';
import type { Link, Listener } from '../../shared/transport/transport.js';
import { decodeFrame, encodeFrame } from '../../shared/wire/codec.js';
import { PROTOCOL_VERSION, type Message } from '../../shared/wire/protocol.js';
import { readFromWorker } from '../../shared/wire/validate.js';
import { SliceClient } from '../../worker/slice-client.js';
import { slicedLink } from '../../worker/sliced-link.js';
import { runWorker } from '../../worker/worker.js';
import { expectCode } from '../helpers/expect-code.js';

const HYPER: AdamHyper = { beta1: 0.9, beta2: 0.99, epsilon: 1e-7, weightDecay: 0 };
const JOB = jobOf(DEFAULT_CONFIG);
/** The job's model: more than 2 norm blocks, so 2 slices are both non-empty. */
const N = jobLayout(JOB).totalParams;
const zeroAdam = (n: number): AdamState => ({
  m: new Float32Array(n),
  v: new Float32Array(n),
  accBeta1: 0.9,
  accBeta2: 0.99,
  step: 0,
});
const silent = pino({ level: 'silent' });
const backend = { name: 'cpu' as const, provider: 'test', reason: 'test' };

const nets: LocalNetwork[] = [];
afterEach(async () => {
  for (const n of nets.splice(0)) await n.listener.close();
});

/** A coordinator's membership on the in-process transport, sliced or not; the fault messages it got. */
function coordinator(sliced: boolean): { net: LocalNetwork; faults: string[] } {
  const net = createLocalNetwork();
  nets.push(net);
  const faults: string[] = [];
  // Each link as Membership sees it, with the worker's faults noted on the way in.
  const watched = (l: Link): Link => ({
    remote: l.remote,
    send: (f) => l.send(f),
    close: (r, k) => l.close(r, k),
    onClose: (h) => l.onClose(h),
    liftFrameCap: l.liftFrameCap?.bind(l),
    onFrame: (h) =>
      l.onFrame((f) => {
        const m = decodeFrame(f).header as Message;
        if (m.t === 'fault') faults.push(m.message);
        h(f);
      }),
  });
  const listener: Listener = {
    address: net.listener.address,
    close: () => net.listener.close(),
    onLink: (h) => net.listener.onLink((l) => h(watched(l))),
  };
  new Membership(listener, {
    job: JOB,
    jobId: 'job-test',
    totalParams: N,
    maxWorkers: 4,
    log: silent,
    token: null,
    slicedResults: sliced,
  });
  return { net, faults };
}

describe('a worker whose --slice-shard does not match the coordinator', () => {
  it('without --slice-shard at a sliced coordinator: refused at hello, the worker gives up (not a retry)', async () => {
    const { net } = coordinator(true);
    const out = await runWorker({ link: await net.dial(), backend, name: 'w', log: silent });
    expect(out.fatal).not.toBeNull();
    expect(out.finished).toBe(false);
    expect(out.reason).toMatch(/sliced job: start the worker with --slice-shard URL… in the coordinator's order$/);
    expect(out.reason.split('\n')).toHaveLength(1);
  });

  it('with --slice-shard at an unsliced coordinator: refused at hello', async () => {
    const { net } = coordinator(false);
    const link = slicedLink(await net.dial(), () => Promise.reject(new Error('never dialled')), null, 2);
    const out = await runWorker({ link, backend, name: 'w', log: silent });
    expect(out.fatal).not.toBeNull();
    expect(out.reason).toMatch(/start the worker without --slice-shard/);
  });

  it('the hello check, alone: by the count the hello gives; not for another protocol version', () => {
    const hello = (sliceShards?: number, protocol = PROTOCOL_VERSION) =>
      encodeFrame({
        t: 'hello',
        protocol,
        name: 'w',
        host: 'h',
        pid: 1,
        jobId: '',
        cnonce: 'c',
        proof: '',
        shm: '',
        sliceShards,
      });
    expectCode(() => readFromWorker(hello(0), { totalParams: N, slicedResults: true }), 'MESSAGE_INVALID');
    expectCode(() => readFromWorker(hello(undefined), { totalParams: N, slicedResults: true }), 'MESSAGE_INVALID');
    expectCode(() => readFromWorker(hello(2), { totalParams: N, slicedResults: false }), 'MESSAGE_INVALID');
    expect(readFromWorker(hello(2), { totalParams: N, slicedResults: true }).msg.t).toBe('hello');
    expect(readFromWorker(hello(undefined), { totalParams: N, slicedResults: false }).msg.t).toBe('hello');
    // Another version's hello goes on to admission, which refuses it for its version (protocolMismatch).
    expect(readFromWorker(hello(undefined, PROTOCOL_VERSION - 1), { totalParams: N, slicedResults: true }).msg.t).toBe(
      'hello',
    );
  });

  it('the shards in another order: the worker exits with CONFIG_INVALID naming the order, before loading the job', {
    timeout: 20_000,
  }, async () => {
    const c = await sliceCluster({ totalParams: N, shards: 2, workers: 0, hyper: HYPER });
    await c.loop.ready(); // the coordinator dialled and claimed its shards at its start
    const { net, faults } = coordinator(true);
    // Named as ws links are, by their URL (local links are all "local").
    const reversed = async () => (await c.dial('worker 0')).map((l, k) => named(l, `ws://h:730${k}`)).reverse();
    const link = slicedLink(await net.dial(), reversed, null, 2);
    const out = await runWorker({ link, backend, name: 'w', log: silent });
    expect(out.fatal).toBe('CONFIG_INVALID');
    expect(out.reason).toMatch(
      /^--slice-shard order differs from the coordinator's: shard 0 is ws:\/\/h:7300 \(pass --slice-shard ws:\/\/h:7300 ws:\/\/h:7301\)$/,
    );
    // The coordinator was told why (a fault), not left to find a link gone.
    await vi.waitFor(() => expect(faults).toEqual([out.reason])); // it arrives a macrotask after our side closed
  });

  it('shards the coordinator claims after the worker joined: refused by the first slice', async () => {
    const c = await sliceCluster({ totalParams: N, shards: 2, workers: 0, hyper: HYPER });
    const w = new SliceClient((await c.dial('worker 0')).reverse(), N, 'w0');
    await w.opened; // not claimed yet: nothing to check
    const failed = new Promise<Error>((res) => (w.onFail = res));
    await c.loop.assign(new Float32Array(N), zeroAdam(N), 0);
    expect(await failed).toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringMatching(/^--slice-shard order differs from the coordinator's: shard [01] is local/),
    });
    await expect(w.params(0)).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });

  it('fewer shards than the coordinator uses: CONFIG_INVALID naming both counts', async () => {
    const c = await sliceCluster({ totalParams: N, shards: 2, workers: 0, hyper: HYPER });
    await c.loop.ready();
    const w = new SliceClient((await c.dial('worker 0')).slice(0, 1), N, 'w0');
    await expect(w.opened).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: '--slice-shard lists 1 shard, the coordinator uses 2: pass its list, in its order',
    });
  });
});

/** The link, with this remote. */
function named(l: Link, remote: string): Link {
  return {
    remote,
    send: (f) => l.send(f),
    close: (r, k) => l.close(r, k),
    onClose: (h) => l.onClose(h),
    onFrame: (h) => l.onFrame(h),
  };
}

/** Shards on the in-process transport started for models of these sizes; links to them, dialled. */
async function shardsOf(sizes: number[]): Promise<{ servers: SliceServer[]; dial: () => Promise<Link[]> }> {
  const servers = sizes.map((n) => new SliceServer(n));
  const here = servers.map((s) => {
    const net = createLocalNetwork();
    nets.push(net);
    net.listener.onLink((l) => s.accept(l));
    return net;
  });
  return { servers, dial: () => Promise.all(here.map((n) => n.dial())) };
}

describe('a slice shard started with another config', () => {
  it('is refused when the coordinator dials it (and by a worker), in one line naming both parameter counts and --config', async () => {
    const { dial } = await shardsOf([N, 588]);
    const links = await dial();
    const told = new Promise<string>((res) => links[1].onClose((r) => res(r)));
    const e = await new RemoteSlices(links, N, HYPER).ready().catch((x: Error) => x);
    expect(e).toMatchObject({ code: 'CONFIG_INVALID' });
    expect((e as Error).message).toMatch(
      /^slice shard 1 \(\S+\) was started for a model of 588 parameters, this job's has \d+: restart it with this job's --config$/,
    );
    expect(await told).toMatch(/588/);
    const w = new SliceClient(await dial(), N, 'w0');
    await expect(w.opened).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringMatching(/slice shard 1 .*588 parameters.*--config/),
    });
  });

  it("an oversized payload says 'an assign' (the codec's article)", () => {
    const frame = encodeFrame({ t: 'assign' } as unknown as Message, new Float32Array(9));
    expect(expectCode(() => decodeFrame(frame, 4), 'MESSAGE_INVALID')).toMatch(/more than the 4 an assign may carry/);
  });
});

describe('a slice shard lost', () => {
  const n = 2 * NORM_BLOCK;

  it('before any checkpoint: names the shard as what went away, and says to start again', async () => {
    const { servers, dial } = await shardsOf([n, n]);
    const loop = new RemoteSlices(await dial(), n, HYPER);
    await loop.assign(new Float32Array(n), zeroAdam(n), 0);
    servers[1].close('slice shard stopped by SIGTERM');
    await expect(loop.gather(0)).rejects.toMatchObject({
      code: 'RUN_FAILED',
      message: expect.stringMatching(
        /^slice shard 1 \(\S+\) lost: the shard went away \(slice shard stopped by SIGTERM\); no checkpoint of this run was written yet: restart the shard and start the run again$/,
      ),
    });
  });

  it('after a checkpoint (a gather), or resumed from one: says to resume', async () => {
    for (const resumed of [false, true]) {
      const { servers, dial } = await shardsOf([n, n]);
      const loop = new RemoteSlices(await dial(), n, HYPER);
      await loop.assign(new Float32Array(n), zeroAdam(n), resumed ? 7 : 0);
      if (!resumed) await loop.gather(0);
      servers[0].close('slice shard stopped by SIGTERM');
      const e = await loop.gather(0).catch((x: Error) => x);
      expect((e as Error).message).toMatch(
        /^slice shard 0 .*went away.*; restart the shard, then resume from the last checkpoint/,
      );
    }
  });
});
