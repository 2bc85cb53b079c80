/**
 * Slice shards over the in-process transport (coordinator/slices/local-cluster.ts): workers
 * send each slice of their gradient sums to its shard and assemble parameters from every
 * shard; the loop commits, gathers block norms, sends the global norm. The result must be the
 * whole-model update's bits, whatever K, with results committed out of order, a duplicate
 * result that must not count, a checkpoint gathered from every shard, a shard lost, and a
 * resume with another K. Without clipping the shards apply Adam as soon as their own sums are
 * complete (before another shard's gradients are in) and revert it when another slice is not
 * finite; the same bits. Also: the bytes each host's link carries per step, and that the shards
 * count them.
 */
import { describe, expect, it } from 'vitest';
import type { AdamHyper, AdamState } from '../../coordinator/optimizers/adam.js';
import { NORM_BLOCK } from '../../coordinator/slices/blocks.js';
import { hostTraffic, sliceCluster, type SliceCluster } from '../../coordinator/slices/local-cluster.js';
import { coverNodes, treeNode, type TreeNode } from '../../shared/job/shard-tree.js';
import { createLocalNetwork } from '../../shared/transport/local.js';
import type { Link } from '../../shared/transport/transport.js';
import { decodeFrame } from '../../shared/wire/codec.js';
import { SliceClient } from '../../worker/slice-client.js';
import { WholeUpdate } from '../helpers/whole-update.js';
import { expectCode } from '../helpers/expect-code.js';
import {
  encodeSliceFrame,
  readSliceFrame,
  SHARD_TO_LOOP,
  SHARD_TO_WORKER,
  WORKER_TO_SHARD,
} from '../../shared/wire/slice-protocol.js';
import { decodeTensor, encodeTensor, type WireDtype } from '../../shared/wire/wire-dtype.js';

const HYPER: AdamHyper = { beta1: 0.9, beta2: 0.99, epsilon: 1e-7, weightDecay: 0.02 };
const N = 5 * NORM_BLOCK + 777;
/** Virtual shards (tree leaves) per micro-batch, and the data shards' leaf ranges: [0, 3) is two tree nodes. */
const LEAVES = 4;
const DATA_SHARDS: Array<[number, number]> = [
  [0, 3],
  [3, 4],
];
const NODES = DATA_SHARDS.map(([a, b]) => coverNodes(a, b, LEAVES, false));
const CLIP = 5;

/**
 * One tree node's gradient sum: depends on the parameters (a wrong assembly shows) and on step,
 * micro, node. On step `bad` one entry near the end is NaN: only the last slice is not finite,
 * so with early Adam the slices before it apply and must revert.
 */
function gradient(params: Float32Array, step: number, micro: number, node: TreeNode, salt = 0, bad = -1): Float32Array {
  const scale = step % 2 ? 0.01 : 1; // even steps clip
  const k = node.level * 8 + node.index + 1;
  const g = Float32Array.from(params, (p, i) => p * 0.3 + Math.sin(i * 0.001 * k + step + micro * 0.5 + salt) * scale);
  if (step === bad) g[params.length - 5] = NaN;
  return g;
}

/** A data shard's result payload: its nodes' gradients one after another. */
function payload(params: Float32Array, step: number, micro: number, shard: number, salt = 0, bad = -1): Float32Array {
  const nodes = NODES[shard];
  const out = new Float32Array(nodes.length * params.length);
  nodes.forEach((t, j) => {
    out.set(gradient(params, step, micro, t, salt, bad), j * params.length);
  });
  return out;
}

const init = () => Float32Array.from({ length: N }, (_, i) => Math.cos(i) * 0.05);
const zeroAdam = (): AdamState => ({
  m: new Float32Array(N),
  v: new Float32Array(N),
  accBeta1: Math.fround(HYPER.beta1),
  accBeta2: Math.fround(HYPER.beta2),
  step: 0,
});

function reference(
  steps: number,
  micros: number,
  clip = CLIP,
  bad = -1,
): { params: Float32Array; m: Float32Array; v: Float32Array; norms: number[] } {
  const u = new WholeUpdate(N, HYPER);
  u.params.set(init());
  const norms: number[] = [];
  for (let s = 0; s < steps; s++) {
    for (let micro = 0; micro < micros; micro++) {
      const f = u.fold(LEAVES);
      for (const nodes of [...NODES].reverse())
        for (const t of nodes) f.add(t, gradient(u.params, s, micro, t, 0, bad), 1, 4);
    }
    norms.push(u.update(4 * LEAVES * micros, micros * 3, clip, 0.003).gradNorm);
  }
  return { params: u.params.slice(), m: u.adam.state.m.slice(), v: u.adam.state.v.slice(), norms };
}

/** A payload in parts cut anywhere (across slices and nodes), as views of a worker's gradient tensors are. */
const cut = (g: Float32Array) =>
  [0, 777, 5000, N + 3, 2 * N - 1, g.length].flatMap((a, i, at) => (i ? [g.subarray(at[i - 1], a)] : []));

/** Steps [from, to) on the cluster, version `version` current; each data shard by a rotating worker. */
async function train(
  c: SliceCluster,
  from: number,
  to: number,
  micros: number,
  version: number,
  norms: number[],
  o: { clip?: number; bad?: number; early?: boolean[] } = {},
): Promise<number> {
  const { clip = CLIP, bad = -1 } = o;
  const nw = c.workers.length;
  for (let s = from; s < to; s++) {
    for (let micro = 0; micro < micros; micro++) {
      const done = DATA_SHARDS.map(async (_, j) => {
        const w = (j + s) % nw;
        const g = payload(await c.workers[w].params(version), s, micro, j, 0, bad);
        c.workers[w].sendGradient(s, micro, j, w % 2 ? cut(g) : g); // as tensor views come: in parts

        return { j, w };
      });
      // A second worker also computes shard 0, differently (a reassigned straggler): never committed.
      const other = (s + 1) % nw;
      if (other !== s % nw)
        c.workers[other].sendGradient(s, micro, 0, payload(await c.workers[other].params(version), s, micro, 0, 1));
      const results = await Promise.all(done);
      // Out of shard order:
      for (const { j, w } of results.reverse()) c.loop.commit(s, micro, j, LEAVES, NODES[j], `w${w}`, false);
    }
    const r = await c.loop.update(s, 4 * LEAVES * micros, micros * 3, clip, 0.003, version + 1);
    norms.push(r.gradNorm);
    o.early?.push(r.early);
    if (!r.skipped) version++;
  }
  return version;
}

const same = (a: Float32Array, b: Float32Array) =>
  expect(
    Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength)),
  ).toBe(true);

describe('slice shards over the in-process transport', () => {
  const steps = 5;
  const micros = 2;
  const ref = reference(steps, micros);

  it('the reference clips on some steps and not others', () => {
    expect(ref.norms.filter((x) => x > CLIP).length).toBeGreaterThan(0);
    expect(ref.norms.filter((x) => x <= CLIP).length).toBeGreaterThan(0);
  });

  it.each([
    [1, 2],
    [2, 2],
    [3, 3],
    [3, 1],
  ])('K = %i shards, %i workers: the same bits as the whole update', async (k, workers) => {
    const c = await sliceCluster({ totalParams: N, shards: k, workers, hyper: HYPER });
    await c.loop.assign(init(), zeroAdam(), 0);
    const norms: number[] = [];
    const version = await train(c, 0, steps, micros, 0, norms);
    expect(norms).toEqual(ref.norms);
    const { params, adam } = await c.loop.gather(steps);
    same(params, ref.params);
    same(adam.m, ref.m);
    same(adam.v, ref.v);
    expect(adam.step).toBe(steps);
    same(await c.workers[0].params(version), ref.params); // what workers hold is the same
  });

  it('a checkpoint of 3 shards, a shard lost (RUN_FAILED), resumed on 2: the same bits', async () => {
    const a = await sliceCluster({ totalParams: N, shards: 3, workers: 2, hyper: HYPER });
    await a.loop.assign(init(), zeroAdam(), 0);
    const norms: number[] = [];
    const version = await train(a, 0, 2, micros, 0, norms);
    const saved = await a.loop.gather(2);
    a.loopLinks[1].close('shard process killed');
    await expect(train(a, 2, 3, micros, version, [])).rejects.toMatchObject({
      code: 'RUN_FAILED',
      message: expect.stringMatching(/slice shard 1 .*lost/),
    });
    const b = await sliceCluster({ totalParams: N, shards: 2, workers: 2, hyper: HYPER });
    await b.loop.assign(saved.params, saved.adam, version);
    await train(b, 2, steps, micros, version, norms);
    expect(norms).toEqual(ref.norms);
    const end = await b.loop.gather(steps);
    same(end.params, ref.params);
    same(end.adam.m, ref.m);
    same(end.adam.v, ref.v);
  });

  it('with the job token: the same bits; with a wrong one the shards close every link (authFailed)', async () => {
    const token = 'slice-test-token-0123456789';
    const c = await sliceCluster({ totalParams: N, shards: 2, workers: 2, hyper: HYPER, token });
    await c.loop.assign(init(), zeroAdam(), 0);
    const norms: number[] = [];
    await train(c, 0, steps, micros, 0, norms);
    expect(norms).toEqual(ref.norms);
    same((await c.loop.gather(steps)).params, ref.params);

    const bad = await sliceCluster({
      totalParams: N,
      shards: 2,
      workers: 1,
      hyper: HYPER,
      token,
      clientToken: 'not-the-job-token-0123456',
    });
    const kinds = new Promise<string>((res) => bad.loopLinks[0].onClose((_, kind) => res(kind)));
    await expect(bad.loop.assign(init(), zeroAdam(), 0)).rejects.toMatchObject({
      code: 'RUN_FAILED',
      message: expect.stringMatching(/authentication failed/),
    });
    expect(await kinds).toBe('authFailed');
    await expect(bad.workers[0].params(0)).rejects.toMatchObject({
      code: 'CONNECT_FAILED',
      message: expect.stringMatching(/authentication failed/),
    });
  });

  it('a shard that cannot prove the token is refused by the loop and the workers (AUTH_FAILED)', async () => {
    // A shard without the token takes any proof: the clients must not take its word.
    const impostor = await sliceCluster({
      totalParams: N,
      shards: 2,
      workers: 1,
      hyper: HYPER,
      token: null,
      clientToken: 'slice-test-token-0123456789',
    });
    const kind = new Promise<string>((res) => impostor.loopLinks[0].onClose((_, k) => res(k)));
    await expect(impostor.loop.assign(init(), zeroAdam(), 0)).rejects.toMatchObject({
      code: 'AUTH_FAILED',
      message: expect.stringMatching(/could not prove the job token/),
    });
    expect(await kind).toBe('authFailed');
    await expect(impostor.workers[0].params(0)).rejects.toMatchObject({ code: 'AUTH_FAILED' });
  });

  it('a malformed frame closes the link that sent it, and only that one', async () => {
    const c = await sliceCluster({ totalParams: N, shards: 2, workers: 1, hyper: HYPER });
    await c.loop.assign(init(), zeroAdam(), 0);
    const closed = new Promise<string>((res) => c.loopLinks[0].onClose((reason) => res(reason)));
    c.loopLinks[0].send(new Uint8Array([1, 2, 3]));
    expect(await closed).toMatch(/shorter than/);
    expect(await c.workers[0].params(0)).toHaveLength(N); // the workers' links stay up
  });
});

/** What the tests saw happen, in order; `until` waits for an entry. */
class EventLog {
  readonly events: string[] = [];
  private readonly waiting: Array<{ e: string; ok: () => void }> = [];

  push(e: string): void {
    this.events.push(e);
    for (const w of this.waiting.filter((x) => x.e === e)) w.ok();
  }

  until(e: string): Promise<void> {
    if (this.events.includes(e)) return Promise.resolve();
    return new Promise((ok) => this.waiting.push({ e, ok }));
  }
}

/** A link whose frames in are logged as `${label} ${describe(header)}` (when describe returns one). */
function watched(link: Link, log: EventLog, describe: (h: Record<string, unknown>) => string | null): Link {
  return {
    ...link,
    onFrame: (h) =>
      link.onFrame((f) => {
        const e = describe(decodeFrame(f).header as Record<string, unknown>);
        if (e) log.push(e);
        h(f);
      }),
  };
}

/** A link that holds what it is given to send while closed. */
function gate(link: Link): Link & { hold(): void; release(): void } {
  let held: Uint8Array[] | null = null;
  return {
    ...link,
    send: (f) => (held ? held.push(f) : link.send(f)),
    hold: () => {
      held = [];
    },
    release: () => {
      const h = held ?? [];
      held = null;
      for (const f of h) link.send(f);
    },
  };
}

describe('early Adam: without clipping a shard applies and publishes on its own sums', () => {
  const steps = 5;
  const micros = 2;
  const bad = 2; // a NaN in the last slice: the step is skipped everywhere
  const ref = reference(steps, micros, 0, bad);

  it('the reference skips its NaN step and trains on the others', () => {
    expect(Number.isNaN(ref.norms[bad])).toBe(true);
    expect(ref.norms.filter((x) => Number.isFinite(x)).length).toBe(steps - 1);
  });

  it.each([
    [1, 2],
    [2, 2],
    [3, 3],
  ])('K = %i shards, %i workers: the same bits as the whole update, the NaN step reverted', async (k, workers) => {
    const c = await sliceCluster({ totalParams: N, shards: k, workers, hyper: HYPER });
    await c.loop.assign(init(), zeroAdam(), 0);
    const norms: number[] = [];
    const early: boolean[] = [];
    const version = await train(c, 0, steps, micros, 0, norms, { clip: 0, bad, early });
    expect(early).toEqual(new Array(steps).fill(true));
    expect(norms).toEqual(ref.norms);
    expect(version).toBe(steps - 1);
    const { params, adam } = await c.loop.gather(steps);
    same(params, ref.params);
    same(adam.m, ref.m);
    same(adam.v, ref.v);
    expect(adam.step).toBe(steps - 1);
    for (const w of c.workers) same(await w.params(version), ref.params);
  });

  /** One step of 2 workers on 2 shards, worker 1's gradient to shard 1 held until shard 0 has `before`. */
  async function heldStep(clip: number, before: string): Promise<{ events: string[]; early: boolean }> {
    const log = new EventLog();
    let held: ReturnType<typeof gate> | null = null;
    const c = await sliceCluster({
      totalParams: N,
      shards: 2,
      workers: 2,
      hyper: HYPER,
      wrap: (link, me, peer) => {
        if (me === 'worker 1' && peer === 'shard 1') {
          held = gate(link);
          return held;
        }
        if (me === 'worker 0')
          return watched(link, log, (h) => (h.t === 'slice' ? `slice ${h.slice} v${h.version}` : null));
        if (me === 'loop') return watched(link, log, (h) => (h.t === 'norms' ? `norms ${peer}` : null));
        return link;
      },
    });
    await c.loop.assign(init(), zeroAdam(), 0);
    await Promise.all(c.workers.map((w) => w.params(0)));
    held!.hold();
    for (const [j, w] of c.workers.entries()) w.sendGradient(0, 0, j, gradient(init(), 0, 0, treeNode(0, j, 2)));
    for (let j = 0; j < 2; j++) c.loop.commit(0, 0, j, 2, [treeNode(0, j, 2)], `w${j}`, false);
    const update = c.loop.update(0, 8, 2, clip, 0.003, 1);
    await log.until(before);
    log.push('worker 1 → shard 1 released');
    held!.release();
    const r = await update;
    await c.workers[0].params(1);
    return { events: log.events.filter((e) => !e.endsWith('v0')), early: r.early };
  }

  function sliceEvents(events: string[]): string[] {
    return events.filter((e) => !e.startsWith('norms'));
  }

  it("shard 0 publishes its slice before worker 1's slice for shard 1 is even sent", { timeout: 10_000 }, async () => {
    const { events, early } = await heldStep(0, 'slice 0 v1');
    expect(early).toBe(true);
    expect(sliceEvents(events)).toEqual(['slice 0 v1', 'worker 1 → shard 1 released', 'slice 1 v1']);
  });

  it('with clipping, shard 0 waits for the global norm: nothing is published before the held slice', {
    timeout: 10_000,
  }, async () => {
    const { events, early } = await heldStep(CLIP, 'norms shard 0');
    expect(early).toBe(false);
    expect(events.slice(0, 3)).toEqual(['norms shard 0', 'worker 1 → shard 1 released', 'norms shard 1']);
    expect(events.slice(3).sort()).toEqual(['slice 0 v1', 'slice 1 v1']);
  });

  it("a worker takes a shard's lower version as retracting its higher one", async () => {
    const total = 2 * NORM_BLOCK;
    const nets = [createLocalNetwork(), createLocalNetwork()];
    const shardEnds: Link[] = [];
    for (const n of nets)
      n.listener.onLink((l) => {
        l.onFrame(() => {});
        l.send(encodeSliceFrame({ t: 'sliceChallenge', nonce: 'n', params: total }));
        // No token: no proof to check; not claimed by a loop (slices 0): each slice's own index is checked.
        l.send(encodeSliceFrame({ t: 'sliceWelcome', proof: '', slice: 0, slices: 0 }));
        shardEnds.push(l);
      });
    const client = new SliceClient(await Promise.all(nets.map((n) => n.dial())), total, 'w0');
    const slice = (k: number, version: number, x: number) =>
      shardEnds[k].send(encodeSliceFrame({ t: 'slice', slice: k, version }, new Float32Array(NORM_BLOCK).fill(x)));
    slice(0, 0, 1);
    slice(1, 0, 2);
    expect(Array.from(new Set(await client.params(0)))).toEqual([1, 2]);
    let got: Float32Array | null = null;
    void client.params(1).then((p) => {
      got = p;
    });
    slice(0, 1, 3); // an early apply, then reverted:
    slice(0, 0, 1);
    slice(1, 1, 4); // shard 1's version 1: not complete without shard 0's again
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(got).toBeNull();
    slice(0, 1, 5);
    await client.params(1);
    expect(Array.from(new Set(got!))).toEqual([5, 4]);
  });

  it("the shards count every byte on their links, and report each shard's step", async () => {
    const frames = { total: 0, lastNorms: [0, 0] };
    const c = await sliceCluster({
      totalParams: N,
      shards: 2,
      workers: 2,
      hyper: HYPER,
      onBytes: (from, to, n) => {
        frames.total += n;
        if (to === 'loop') frames.lastNorms[Number(from.split(' ')[1])] = n; // the last frame in is its norms
      },
    });
    let reported = 0;
    let version = 0;
    await c.loop.assign(init(), zeroAdam(), 0);
    for (let s = 0; s < 3; s++) {
      await Promise.all(
        c.workers.map(async (w, j) =>
          w.sendGradient(s, 0, j, gradient(await w.params(version), s, 0, treeNode(0, j, 2))),
        ),
      );
      for (let j = 0; j < 2; j++) c.loop.commit(s, 0, j, 2, [treeNode(0, j, 2)], `w${j}`, false);
      const r = await c.loop.update(s, 8, 2, 0, 0.003, ++version);
      expect(r.shards).toHaveLength(2);
      r.shards.forEach((t, k) => {
        reported += t.bytesIn + t.bytesOut;
        for (const x of [t.wireMs, t.waitMs, t.updateMs, t.normsMs]) expect(x).toBeGreaterThanOrEqual(0);
        const { from, to } = c.loop.ranges[k];
        expect(t.bytesIn).toBeGreaterThan(2 * 4 * (to - from)); // both workers' gradient slices, at least
      });
    }
    await Promise.all(c.workers.map((w) => w.params(version)));
    // Everything but each shard's last norms frame (sent after its report) was reported.
    expect(reported).toBe(frames.total - frames.lastNorms[0] - frames.lastNorms[1]);
  });
});

describe('bytes per host link, one shard and one worker per host', () => {
  /** Bytes out of and into each host per step, with host h running shard h, worker h (and host 0 the loop). */
  // 40 whole blocks: 2 and 4 slices are equal (otherwise a slice is up to one block larger).
  const size = 40 * NORM_BLOCK;
  const params = Float32Array.from({ length: size }, (_, i) => Math.cos(i) * 0.05);
  const adam: AdamState = {
    m: new Float32Array(size),
    v: new Float32Array(size),
    accBeta1: 0.9,
    accBeta2: 0.99,
    step: 0,
  };

  async function perHost(
    hosts: number,
    steps: number,
    wireDtype: WireDtype = 'float32',
  ): Promise<{ out: number[]; in: number[] }> {
    const t = hostTraffic(hosts);
    const c = await sliceCluster({
      totalParams: size,
      shards: hosts,
      workers: hosts,
      hyper: HYPER,
      onBytes: t.onBytes,
      wireDtype,
    });
    await c.loop.assign(params, adam, 0);
    await Promise.all(c.workers.map((w) => w.params(0)));
    t.reset(); // count steps, not the start
    let version = 0;
    for (let s = 0; s < steps; s++) {
      await Promise.all(
        c.workers.map(async (w, j) => {
          w.sendGradient(s, 0, j, gradient(await w.params(version), s, 0, treeNode(0, j, hosts)));
        }),
      );
      for (let j = 0; j < hosts; j++) c.loop.commit(s, 0, j, hosts, [treeNode(0, j, hosts)], `w${j}`, false);
      if (!(await c.loop.update(s, 4 * hosts, hosts, CLIP, 0.003, version + 1)).skipped) version++;
    }
    await Promise.all(c.workers.map((w) => w.params(version))); // the last step's slices have arrived
    return { out: t.out.map((b) => b / steps), in: t.in.map((b) => b / steps) };
  }

  // A ring all-reduce moves 2·(N−1)/N of the model each way per host; the unsharded
  // coordinator's host sends (N−1) models and receives (N−1) gradients.
  it.each([2, 4])(
    'N = %i: each way, no host carries more than 2·(N−1)/N models (+1 percent headers, control)',
    async (hosts) => {
      const model = 4 * size;
      const b = await perHost(hosts, 3);
      const bound = 2 * ((hosts - 1) / hosts) * model;
      for (const x of [...b.out, ...b.in]) expect(x).toBeLessThanOrEqual(bound * 1.01);
      expect(Math.min(...b.out, ...b.in)).toBeGreaterThanOrEqual(bound * 0.99); // and the count is not vacuous
    },
  );

  it('bfloat16 on the slice links: half those bytes', async () => {
    const hosts = 2;
    const bound = 2 * ((hosts - 1) / hosts) * 2 * size; // two bytes a value
    const b = await perHost(hosts, 3, 'bfloat16');
    for (const x of [...b.out, ...b.in]) {
      expect(x).toBeLessThanOrEqual(bound * 1.01);
      expect(x).toBeGreaterThanOrEqual(bound * 0.99);
    }
  });
});

describe('16-bit slice links', () => {
  it.each(['float16', 'bfloat16'] as const)(
    "%s: workers get the shards' parameters rounded once, and the shards sum the gradients as sent",
    async (dtype) => {
      const c = await sliceCluster({ totalParams: N, shards: 3, workers: 2, hyper: HYPER, wireDtype: dtype });
      await c.loop.assign(init(), zeroAdam(), 0);
      const rounded = (x: Float32Array) => {
        const bytes = new Uint8Array(2 * x.length);
        encodeTensor(x, dtype, bytes);
        return decodeTensor(bytes, dtype, x.length);
      };
      const p0 = await c.workers[0].params(0);
      same(p0, rounded(init()));
      expect(p0.some((v, i) => v !== init()[i])).toBe(true); // rounding happened: the test can tell
      // One step, both data shards from worker 0, on the 16-bit values it holds: the reference
      // update sums the same rounded gradients.
      const u = new WholeUpdate(N, HYPER);
      u.params.set(init());
      const f = u.fold(LEAVES);
      for (let j = 0; j < DATA_SHARDS.length; j++) {
        const g = rounded(payload(p0, 0, 0, j));
        c.workers[0].sendGradient(0, 0, j, g);
        NODES[j].forEach((t, i) => {
          f.add(t, g.subarray(i * N, (i + 1) * N), 1, 4);
        });
      }
      for (let j = 0; j < DATA_SHARDS.length; j++) c.loop.commit(0, 0, j, LEAVES, NODES[j], 'w0', false);
      const r = await c.loop.update(0, 4 * LEAVES, 3, CLIP, 0.003, 1);
      const want = u.update(4 * LEAVES, 3, CLIP, 0.003);
      expect(r.gradNorm).toBe(want.gradNorm);
      same(await c.workers[1].params(1), rounded(u.params));
    },
  );

  it("refuses a gradient or parameter slice in another dtype than the job's, and state in any but float32", () => {
    const grad = encodeSliceFrame({ t: 'grad', step: 0, micro: 0, shard: 0 }, new Float32Array(4));
    expect(readSliceFrame(grad, WORKER_TO_SHARD, 8).msg.t).toBe('grad');
    const msg = expectCode(() => readSliceFrame(grad, WORKER_TO_SHARD, 8, 'bfloat16'), 'MESSAGE_INVALID');
    expect(msg).toMatch(/grad payload travels as float32, not the job's bfloat16/);
    const slice = encodeSliceFrame({ t: 'slice', slice: 0, version: 0 }, new Float32Array(4), 'float16');
    expect(readSliceFrame(slice, SHARD_TO_WORKER, 8, 'float16').payload).toHaveLength(4);
    expectCode(() => readSliceFrame(slice, SHARD_TO_WORKER, 8, 'bfloat16'), 'MESSAGE_INVALID');
    const saved = { t: 'saved' as const, step: 0, accBeta1: 0.9, accBeta2: 0.99, adamStep: 0 };
    const state16 = encodeSliceFrame(saved, new Float32Array(6), 'bfloat16');
    expectCode(() => readSliceFrame(state16, SHARD_TO_LOOP, 8, 'bfloat16'), 'MESSAGE_INVALID');
  });
});
