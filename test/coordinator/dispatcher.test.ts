/**
 * The Dispatcher over the in-process transport with scripted workers: who gets a shard, what a
 * missed deadline does, and which results count.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Dispatcher } from '../../coordinator/dispatcher.js';
import { Membership } from '../../coordinator/membership.js';
import { jobOf, parseConfig } from '../../shared/job/config.js';
import type { Work } from '../../shared/wire/protocol.js';
import { createLocalNetwork, type LocalNetwork } from '../../shared/transport/local.js';
import { fakeWorker, type FakeWorker } from '../helpers/fake-worker.js';
import { resultFor } from '../helpers/result-msg.js';
import { coverNodes, nodeSum } from '../../shared/job/shard-tree.js';

const cfg = parseConfig({
  data: { name: 'xor' },
  model: { layers: [{ units: 4, activation: 'tanh' }, { units: 1 }], loss: 'binaryCrossEntropy' },
});
const TOTAL = 2 * 4 + 4 + 4 + 1;

let net: LocalNetwork;
afterEach(async () => {
  await net.listener.close();
});

/** A result for `work`, gradient all ones. */
function answer(w: FakeWorker, work: Pick<Work, 'step' | 'micro' | 'shard' | 'from' | 'to'>): void {
  const count = work.to - work.from;
  w.send(resultFor(work, { lossSum: count, losses: [count], count }), new Float32Array(TOTAL).fill(1));
}

/** Leaf i's gradient sum, order-sensitive under float addition (1e20 swallows small terms). */
function leafGrads(i: number): Float32Array {
  const mags = [1e20, 1, -1e20, 1e8, -1e8, 3.5, 1e-3];
  return Float32Array.from({ length: TOTAL }, (_, j) => mags[(i * 5 + j * 3) % mags.length] * (1 + i / 7));
}

/** A result for `work` as a worker sends it: the sums of the tree nodes its leaves cover. */
async function answerNodes(w: FakeWorker, work: Work): Promise<void> {
  const nodes = coverNodes(work.first, work.last, work.leaves, false);
  const leaf = async (i: number) => ({ grads: leafGrads(i), lossSum: i + 0.5 });
  const sums = [];
  for (const n of nodes) sums.push(await nodeSum(n.level, n.index, work.leaves, leaf));
  const count = work.to - work.from;
  const losses = sums.map((x) => x.lossSum);
  w.send(
    resultFor(work, { lossSum: 0, losses, count }),
    sums.map((x) => x.grads),
  );
}

async function setup(leaves: number | null = null, log = pino({ level: 'silent' })) {
  net = createLocalNetwork();
  const membership = new Membership(net.listener, {
    job: jobOf(cfg),
    jobId: 'job-test',
    totalParams: TOTAL,
    maxWorkers: 8,
    log,
    token: null,
  });
  const dispatcher = new Dispatcher({
    membership,
    log,
    totalParams: TOTAL,
    wireDtype: 'float32',
    stepTimeoutMs: 300,
    noWorkerTimeoutMs: 10_000,
    onWasted: () => {},
    outlierFactor: 0,
    leaves,
  });
  dispatcher.setParams(0, new Float32Array(TOTAL));
  const works = new Map<string, Work[]>();
  const join = async (name: string, answers: boolean, nodes = false) => {
    const ready = new Promise((r) => membership.once('ready', r));
    const w = await fakeWorker(net.dial, TOTAL, {
      name,
      onMessage: (msg, self) => {
        if (msg.t !== 'work') return;
        works.set(name, [...(works.get(name) ?? []), msg]);
        if (answers) void (nodes ? answerNodes(self, msg) : answer(self, msg));
      },
    });
    await ready;
    return w;
  };
  return { membership, dispatcher, works, join };
}

describe('Dispatcher', () => {
  it('says once per worker count when fewer leaves than workers leave some waiting, naming the fix', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) });
    const { dispatcher, works, join } = await setup(2, log);
    for (const name of ['a', 'b', 'c']) await join(name, true, true);
    for (const step of [0, 1]) await dispatcher.work(step, 0, 8 * step, 8 * step + 8, new Float64Array(TOTAL));
    const said = lines.map((l) => JSON.parse(l) as { msg: string }).filter((l) => l.msg.includes('virtual shards'));
    expect(said.map((l) => l.msg)).toEqual([
      '3 workers ready, but a batch of 8 is cut into 2 virtual shards: 1 worker waits; set shards (--shards) to 3 or more, or per-worker',
    ]);
    expect([...works.values()].flat()).toHaveLength(4); // two shards a step
  });

  it('splits a step over the ready workers and sums what they return', async () => {
    const { dispatcher, works, join } = await setup();
    await join('a', true);
    await join('b', true);
    const acc = new Float64Array(TOTAL);
    const r = await dispatcher.work(0, 0, 0, 10, acc);
    expect(r.count).toBe(10);
    expect(r.lossSum).toBe(10);
    expect([...acc.slice(0, 3)]).toEqual([2, 2, 2]); // one per shard
    expect([...works.values()].map((ws) => ws[0].to - ws[0].from)).toEqual([5, 5]);
  });

  it('per-worker shards over 3 workers: one leaf each, all folded (the last one sent as a level-1 node)', async () => {
    const { dispatcher, works, join } = await setup();
    for (const name of ['a', 'b', 'c']) await join(name, true);
    const acc = new Float64Array(TOTAL);
    const r = await dispatcher.work(0, 0, 0, 9, acc);
    expect(r.count).toBe(9);
    expect([...acc.slice(0, 3)]).toEqual([3, 3, 3]);
    const got = [...works.values()].map((ws) => [ws[0].first, ws[0].last, ws[0].leaves]);
    expect(got).toEqual([
      [0, 1, 3],
      [1, 2, 3],
      [2, 3, 3],
    ]);
  });

  it('a worker that misses its deadline lags; a stale or forged result does not bring it back, its own late answer does', async () => {
    const { membership, dispatcher, works, join } = await setup();
    const slow = await join('slow', false);
    await join('quick', true);
    const acc = new Float64Array(TOTAL);
    const r = await dispatcher.work(0, 0, 0, 10, acc); // slow's shard goes to quick after 300 ms
    expect(r.count).toBe(10);
    const session = [...membership.workers.values()].find((w) => w.name === 'slow')!;
    expect(session.lagging).toBe(true);
    const owed = works.get('slow')![0];
    // A result for a step never sent to it: ignored, still lagging.
    answer(slow, { ...owed, step: 7 });
    await new Promise((res) => setTimeout(res, 20));
    expect(session.lagging).toBe(true);
    // Its own answer, late: back.
    answer(slow, owed);
    await new Promise((res) => setTimeout(res, 20));
    expect(session.lagging).toBe(false);
    expect(dispatcher.counters.stale).toBe(2); // both came after the phase: neither was added
  });

  const bits = (a: Float64Array) => Array.from(new BigUint64Array(a.buffer.slice(0)), String);

  it('virtual shards: 1, 2, 3 and 4 workers give the same bits; each gets a contiguous range of leaves', async () => {
    const sums: string[][] = [];
    for (const n of [1, 2, 3, 4]) {
      const { dispatcher, works, join } = await setup(6);
      for (let k = 0; k < n; k++) await join(`w${k}`, true, true);
      const acc = new Float64Array(TOTAL);
      const r = await dispatcher.work(0, 0, 100, 130, acc);
      expect(r).toMatchObject({ count: 30, lossSum: 0.5 + 1.5 + 2.5 + 3.5 + 4.5 + 5.5 });
      const got = [...works.values()].flat().map((w) => [w.first, w.last, w.from, w.to]);
      // 30 rows in 6 leaves of 5; ranges of leaves split as evenly as the worker count allows.
      const want = {
        1: [[0, 6, 100, 130]],
        2: [
          [0, 3, 100, 115],
          [3, 6, 115, 130],
        ],
        3: [
          [0, 2, 100, 110],
          [2, 4, 110, 120],
          [4, 6, 120, 130],
        ],
      }[n];
      if (want) expect(got).toEqual(want);
      else expect(got.length).toBe(4);
      sums.push(bits(acc));
      await net.listener.close();
    }
    for (const s of sums.slice(1)) expect(s).toEqual(sums[0]);
  });

  it("virtual shards: a stalled worker's leaves go to another, and the sum is the same bits", async () => {
    const ref = await (async () => {
      const { dispatcher, join } = await setup(6);
      await join('a', true, true);
      const acc = new Float64Array(TOTAL);
      await dispatcher.work(0, 0, 0, 30, acc);
      await net.listener.close();
      return bits(acc);
    })();
    const { dispatcher, works, join } = await setup(6);
    await join('quick', true, true);
    await join('stalled', false);
    await join('quick2', true, true);
    const acc = new Float64Array(TOTAL);
    await dispatcher.work(0, 0, 0, 30, acc); // the stalled one's leaves are reassigned after 300 ms
    expect(dispatcher.counters.reassigned).toBe(1);
    expect(works.get('stalled')!.map((w) => [w.first, w.last])).toEqual([[2, 4]]);
    expect(bits(acc)).toEqual(ref);
  });

  it('virtual shards: a result carrying the wrong number of tree nodes drops its worker', async () => {
    const { membership, dispatcher, works, join } = await setup(6);
    await join('a', true, true);
    await join('liar', true); // one payload for leaves [3, 6), which are two nodes: leaf 3 and leaves 4–5
    const acc = new Float64Array(TOTAL);
    const r = await dispatcher.work(0, 0, 0, 12, acc);
    expect(r.count).toBe(12);
    expect(works.get('liar')?.length).toBe(1);
    expect(membership.ready().map((w) => w.name)).toEqual(['a']); // the liar was dropped, its leaves went to a
  });
});
