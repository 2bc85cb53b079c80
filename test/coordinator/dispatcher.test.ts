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

const cfg = parseConfig({ data: { name: 'xor' }, model: { layers: [{ units: 4, activation: 'tanh' }, { units: 1 }], loss: 'binaryCrossEntropy' } });
const TOTAL = 2 * 4 + 4 + 4 + 1;

let net: LocalNetwork;
afterEach(async () => {
  await net.listener.close();
});

/** A result for `work`, gradient all ones. */
function answer(w: FakeWorker, work: Pick<Work, 'step' | 'micro' | 'shard' | 'from' | 'to'>): void {
  const count = work.to - work.from;
  w.send({ t: 'result', step: work.step, micro: work.micro, shard: work.shard, lossSum: count, count, computeMs: 1, decodeMs: 0, encodeMs: 0, busyMs: 1, shm: 0 }, new Float32Array(TOTAL).fill(1));
}

async function setup() {
  net = createLocalNetwork();
  const log = pino({ level: 'silent' });
  const membership = new Membership(net.listener, { job: jobOf(cfg), jobId: 'job-test', totalParams: TOTAL, maxWorkers: 8, log, token: null });
  const dispatcher = new Dispatcher({ membership, log, totalParams: TOTAL, wireDtype: 'float32', shm: null, stepTimeoutMs: 300, noWorkerTimeoutMs: 10_000, onWasted: () => {}, outlierFactor: 0 });
  dispatcher.setParams(0, new Float32Array(TOTAL));
  const works = new Map<string, Work[]>();
  const join = async (name: string, answers: boolean) => {
    const ready = new Promise((r) => membership.once('ready', r));
    const w = await fakeWorker(net.dial, TOTAL, {
      name,
      onMessage: (msg, self) => {
        if (msg.t !== 'work') return;
        works.set(name, [...(works.get(name) ?? []), msg]);
        if (answers) answer(self, msg);
      },
    });
    await ready;
    return w;
  };
  return { membership, dispatcher, works, join };
}

describe('Dispatcher', () => {
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
});
