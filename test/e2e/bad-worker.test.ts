/**
 * A worker that sends a malformed or invalid frame mid-run is dropped with a logged reason,
 * its shard goes to an honest worker, and the run finishes. The coordinator runs in-process
 * here (to read its summary and log); the honest worker is a real `dptrain worker` process.
 */
import type { ChildProcess } from 'node:child_process';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '../../coordinator/coordinator.js';
import { encodeFrame } from '../../shared/wire/codec.js';
import { parseConfig } from '../../shared/job/config.js';
import { fakeWorker } from '../helpers/fake-worker.js';
import { spawnWorker } from '../helpers/cli.js';
import { evalResultFor, resultFor } from '../helpers/result-msg.js';
import { SPIRALS_NET, wsCoordinator } from '../helpers/ws-coordinator.js';

const JOB = {
  ...SPIRALS_NET,
  steps: 15,
  batchSize: 40,
  evalEvery: 5,
  workers: 2,
};

/** A well-formed result header for step 0's second shard. */
const SHARD1 = resultFor({ step: 0, micro: 0, shard: 1 }, { lossSum: 1, losses: [1], count: 20 });

type Sabotage = (totalParams: number) => Uint8Array;
const SABOTAGE: Record<string, Sabotage> = {
  'a truncated frame': (n) => encodeFrame(SHARD1, new Float32Array(n)).subarray(0, 40),
  'a payload of the wrong size': (n) => encodeFrame(SHARD1, new Float32Array(n - 1)),
  'random bytes': () => Uint8Array.from({ length: 300 }, (_, i) => (i * 73 + 11) & 0xff),
  'a message of the wrong direction': () => encodeFrame({ t: 'bye', reason: 'no' }),
  // Gradients "in shared memory" from a worker that was never granted it (its hello said no).
  'a shared-memory result it was not granted': () => encodeFrame({ ...SHARD1, shm: 1 }),
};

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

describe('a worker that sends a bad frame is dropped and the run finishes', () => {
  it.each(Object.keys(SABOTAGE))(
    '%s',
    async (kind) => {
      const cfg = parseConfig(JOB);
      const lines: string[] = [];
      const log = pino(
        { level: 'debug' },
        new Writable({
          write: (c, _e, cb) => {
            lines.push(String(c));
            cb();
          },
        }),
      );
      const { coord, listener } = await wsCoordinator({ config: cfg, log, startWorkers: 2 });
      const run = coord.run();

      children.push(spawnWorker(listener.address, ['--name', 'honest']));

      let sabotaged = false;
      await fakeWorker(listener.address, coord.layout.totalParams, {
        name: 'rogue',
        onMessage: (msg, w) => {
          if (msg.t === 'work' && !sabotaged) {
            sabotaged = true;
            w.link.send(SABOTAGE[kind](coord.layout.totalParams));
          }
        },
      });

      const summary = await run;
      await listener.close();
      expect(sabotaged).toBe(true);
      expect(summary.steps).toBe(15);
      expect(summary.droppedWorkers).toBe(1);
      expect(summary.reassignedShards).toBeGreaterThanOrEqual(1);
      expect(summary.testAccuracy).not.toBeNull();
      const drop = lines
        .map((l) => JSON.parse(l) as { msg: string; reason?: string })
        .find((r) => r.msg === 'worker dropped');
      expect(drop?.reason).toMatch(/^invalid message: (FRAME_MALFORMED|MESSAGE_INVALID): /);
    },
    60_000,
  );
});

/** A scripted worker: the first shard it computes is NaN, later ones are zero gradients. */
async function oddWorker(address: string, coord: Coordinator): Promise<void> {
  let first = true;
  await fakeWorker(address, coord.layout.totalParams, {
    name: 'odd',
    onMessage: (msg, w) => {
      if (msg.t === 'work') {
        const lossSum = first ? NaN : 0;
        const grads = new Float32Array(coord.layout.totalParams).fill(first ? NaN : 0);
        first = false;
        w.send(resultFor(msg, { lossSum, losses: [lossSum], count: msg.to - msg.from }), grads);
      }
      if (msg.t === 'evaluate') w.send(evalResultFor(msg));
    },
  });
}

describe('a non-finite shard result', () => {
  it('is recomputed by another worker; the step is applied and nobody is dropped', async () => {
    const cfg = parseConfig({ ...JOB, steps: 6 });
    const { coord, listener } = await wsCoordinator({ config: cfg, startWorkers: 2 });
    const run = coord.run();
    children.push(spawnWorker(listener.address));
    await oddWorker(listener.address, coord);
    const summary = await run;
    await listener.close();
    expect(summary).toMatchObject({ steps: 6, recomputedShards: 1, skippedSteps: 0, droppedWorkers: 0 });
  }, 60_000);

  it('with no other worker to recompute it, skips that step (parameters untouched) and goes on', async () => {
    const cfg = parseConfig({ ...JOB, steps: 4 });
    const steps: Array<{ step: number; skipped?: boolean }> = [];
    const { coord, listener } = await wsCoordinator({ config: cfg, startWorkers: 1, onStep: (r) => steps.push(r) });
    const before = coord.params.slice();
    const run = coord.run();
    await oddWorker(listener.address, coord);
    const summary = await run;
    await listener.close();
    expect(summary).toMatchObject({ steps: 4, skippedSteps: 1, recomputedShards: 0 });
    expect(steps.filter((s) => s.skipped).map((s) => s.step)).toEqual([1]);
    // Later steps had zero gradients: Adam with m = v = 0 leaves the parameters where they were.
    expect(coord.params).toEqual(before);
  }, 60_000);
});

describe('a token holder sending wrong but well-formed gradients', () => {
  it('--reject-outliers: shards with outlying gradient norms are recomputed by other workers', async () => {
    const cfg = parseConfig({ ...JOB, steps: 40, outlierFactor: 10 });
    const { coord, listener } = await wsCoordinator({ config: cfg, startWorkers: 3 });
    const run = coord.run();
    for (let i = 0; i < 2; i++) children.push(spawnWorker(listener.address));
    let sent = 0;
    await fakeWorker(listener.address, coord.layout.totalParams, {
      name: 'poisoner',
      onMessage: (msg, w) => {
        if (msg.t === 'work') {
          sent++;
          const n = msg.to - msg.from;
          const grads = new Float32Array(coord.layout.totalParams).fill(50 * n);
          w.send(resultFor(msg, { lossSum: 0.1 * n, losses: [0.1 * n], count: n }), grads);
        }
        if (msg.t === 'evaluate') w.send(evalResultFor(msg));
      },
    });
    const summary = await run;
    await listener.close();
    expect(sent).toBeGreaterThan(30);
    // Until 10 shard norms form a baseline, the poisoner's first shards get through; after that, none.
    expect(summary.outlierShards).toBeGreaterThanOrEqual(sent - 5);
    expect(summary.droppedWorkers).toBe(0);
  }, 60_000);
});
