/**
 * Phase over the in-process transport with scripted workers: how a range is cut and handed out,
 * and where a shard goes when its worker leaves, stalls, or when nobody is there yet.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Membership, type WorkerSession } from '../../coordinator/membership.js';
import { Phase, type PhasePlan } from '../../coordinator/phase.js';
import { splitRange } from '../../coordinator/scheduler.js';
import { jobOf, parseConfig } from '../../shared/job/config.js';
import { DptrainError } from '../../shared/util/errors.js';
import type { Work } from '../../shared/wire/protocol.js';
import { createLocalNetwork, type LocalNetwork } from '../../shared/transport/local.js';
import { fakeWorker, type FakeWorker } from '../helpers/fake-worker.js';

const cfg = parseConfig({
  data: { name: 'xor' },
  model: { layers: [{ units: 4, activation: 'tanh' }, { units: 1 }], loss: 'binaryCrossEntropy' },
});
const TOTAL = 2 * 4 + 4 + 4 + 1;
const log = pino({ level: 'silent' });

let net: LocalNetwork;
afterEach(async () => {
  await net.listener.close();
});

function setup() {
  net = createLocalNetwork();
  const membership = new Membership(net.listener, {
    job: jobOf(cfg),
    jobId: 'job-test',
    totalParams: TOTAL,
    maxWorkers: 8,
    log,
    token: null,
  });
  const got: Array<{ worker: string; work: Work }> = [];
  const join = async (name: string, onWork?: (w: Work, self: FakeWorker) => void) => {
    const ready = new Promise((r) => membership.once('ready', r));
    const f = await fakeWorker(net.dial, TOTAL, {
      name,
      onMessage: (msg, self) => {
        if (msg.t !== 'work') return;
        got.push({ worker: name, work: msg });
        onWork?.(msg, self);
      },
    });
    await ready;
    return f;
  };
  /** A phase over [from, to) whose results the test settles by hand through `settle`. */
  const phase = (from: number, to: number, deadlineMs = 10_000, noWorkerTimeoutMs = 10_000) => {
    const plan: PhasePlan = {
      key: 'work:0:0',
      cut: (workers) => splitRange(from, to, workers),
      rows: (s) => s.to - s.from,
      begin: () => {},
      message: (s) => ({
        t: 'work',
        step: 0,
        micro: 0,
        shard: s.shard,
        version: 0,
        from: s.from,
        to: s.to,
        leaves: 1,
        first: 0,
        last: 1,
        batch: s.to - s.from,
        shmRead: 0,
      }),
    };
    const p = new Phase({ membership, log, ensureParams: () => {}, noWorkerTimeoutMs, deadlineMs }, plan);
    // As the Dispatcher wires it: membership changes reach the phase in flight.
    membership.on('gone', (w) => p.workerGone(w));
    membership.on('ready', (w) => p.workerReady(w));
    return { p, done: p.run() };
  };
  const session = (name: string) => [...membership.workers.values()].find((w) => w.name === name) as WorkerSession;
  const settle = (p: Phase, name: string, shard: number) => {
    p.accept(session(name), shard, { computeMs: 1 });
    p.settleCheck();
  };
  return { membership, got, join, phase, session, settle };
}

const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

describe('Phase', () => {
  it('cuts the range into one contiguous shard per ready worker, in join order', async () => {
    const t = setup();
    await t.join('a');
    await t.join('b');
    await t.join('c');
    const { p, done } = t.phase(100, 110);
    await tick();
    expect(t.got.map((g) => [g.worker, g.work.shard, g.work.from, g.work.to])).toEqual([
      ['a', 0, 100, 104],
      ['b', 1, 104, 107],
      ['c', 2, 107, 110],
    ]);
    for (const [name, shard] of [
      ['a', 0],
      ['b', 1],
      ['c', 2],
    ] as const)
      t.settle(p, name, shard);
    await done;
    expect(p.stats.samples).toEqual({ [t.session('a').id]: 4, [t.session('b').id]: 3, [t.session('c').id]: 3 });
  });

  it('a worker that leaves: its shard goes to the least-loaded other worker', async () => {
    const t = setup();
    const a = await t.join('a');
    await t.join('b');
    const { p, done } = t.phase(0, 8);
    await tick();
    a.link.close('gone');
    await tick();
    expect(t.got.filter((g) => g.worker === 'b').map((g) => g.work.shard)).toEqual([1, 0]);
    expect(p.stats.reassigned).toBe(1);
    t.settle(p, 'b', 1);
    t.settle(p, 'b', 0);
    await done;
  });

  it('a worker that misses its deadline lags, and its shard moves on', async () => {
    const t = setup();
    await t.join('slow');
    await t.join('quick');
    const busy: boolean[] = [];
    t.session('slow').link.setBusy = (b) => busy.push(b);
    const { p, done } = t.phase(0, 8, 150);
    await tick(300);
    expect(t.session('slow').lagging).toBe(true);
    // Computing its shard it was excused from pings; past its deadline it is not (a stalled worker is cut).
    expect(busy).toEqual([true, false]);
    expect(t.got.filter((g) => g.worker === 'quick').map((g) => g.work.shard)).toEqual([1, 0]);
    t.settle(p, 'quick', 1);
    t.settle(p, 'quick', 0);
    await done;
  });

  it('a lone worker past its deadline keeps its shard, but its silence counts again', async () => {
    const t = setup();
    await t.join('alone');
    const busy: boolean[] = [];
    t.session('alone').link.setBusy = (b) => busy.push(b);
    const { p, done } = t.phase(0, 4, 150);
    await tick(300);
    expect(t.session('alone').lagging).toBe(false); // nobody to give its shard to
    expect(busy).toEqual([true, false]); // but the heartbeat may cut it, should it be gone
    t.settle(p, 'alone', 0);
    await done;
  });

  it('with nobody ready, shards wait; the first worker to be ready takes them all', async () => {
    const t = setup();
    const { p, done } = t.phase(0, 6);
    await tick();
    await t.join('late');
    await tick();
    expect(t.got.map((g) => [g.worker, g.work.from, g.work.to])).toEqual([['late', 0, 6]]);
    t.settle(p, 'late', 0);
    await done;
  });

  it('and if nobody comes, it fails with WORKER_LOST', async () => {
    const t = setup();
    const { done } = t.phase(0, 6, 10_000, 100);
    const e = await done.catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DptrainError);
    expect((e as DptrainError).code).toBe('WORKER_LOST');
  });

  it('a non-finite result is recomputed once by another worker, not twice', async () => {
    const t = setup();
    await t.join('a');
    await t.join('b');
    const { p, done } = t.phase(0, 4);
    await tick();
    expect(p.retry(t.session('a'), 0)).toBe(true);
    await tick();
    expect(t.got.filter((g) => g.worker === 'b').map((g) => g.work.shard)).toEqual([1, 0]);
    expect(p.retry(t.session('b'), 0)).toBe(false); // retried already: the caller takes the result
    t.settle(p, 'b', 0);
    t.settle(p, 'b', 1);
    await done;
  });
});
