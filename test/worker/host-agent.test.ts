/**
 * Host agents over the in-process transport (test/helpers/host-cluster.ts): a real coordinator,
 * agents and cpu workers in one process. With virtual shards, workers behind agents give the
 * bits of the same workers on the coordinator directly, and each host link carries one
 * parameter frame per version and one result per shard; a worker lost behind an agent, and an
 * agent lost, leave the bits as they were. Per-worker shards agree to float32 rounding.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../shared/job/config.js';
import { jobLayout } from '../../shared/job/job-layout.js';
import { hostRun } from '../helpers/host-cluster.js';
import { tensorRelDiff } from '../helpers/reference.js';

const JOB = {
  seed: 3,
  data: { name: 'spirals', samples: 400 },
  model: { layers: [{ units: 16, activation: 'tanh' }, { units: 2 }], loss: 'softmaxCrossEntropy' },
  steps: 8,
  batchSize: 48,
  shards: 12, // 4 rows a leaf; 2 hosts get 6 leaves each, 3 workers of a host 2 each, 2 workers 3 (two subtrees)
  evalEvery: 4,
  backend: 'cpu',
};
const cfg = parseConfig(JOB);
const TOTAL = jobLayout(cfg).totalParams;
const pw = parseConfig({ ...JOB, shards: 'per-worker' });
const LONG = 120_000;

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return (
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ) === 0
  );
}

describe('host agents, virtual shards', () => {
  let plain: Awaited<ReturnType<typeof hostRun>>;
  let direct: Float32Array;
  beforeAll(async () => {
    plain = await hostRun(cfg, { hosts: [], direct: 4 });
    direct = plain.params;
  }, LONG);

  it(
    '2 hosts of 2 workers behind agents end on the bits of 4 workers on the coordinator',
    async () => {
      const agg = await hostRun(cfg, { hosts: [2, 2], direct: 0 });
      expect(agg.summary.steps).toBe(JOB.steps);
      expect(agg.summary.members).toBe(2); // the coordinator sees one member per host
      expect(agg.summary.workers).toBe(4); // and counts the workers behind them
      expect(sameBits(agg.params, direct)).toBe(true);
      // The losses and norms the coordinator logged are the same numbers too.
      expect(agg.records.map((r) => [r.loss, r.gradNorm])).toEqual(plain.records.map((r) => [r.loss, r.gradNorm]));
      expect(agg.records.map((r) => r.testLoss)).toEqual(plain.records.map((r) => r.testLoss));
      for (const o of await agg.outcomes) expect(o.finished).toBe(true);
    },
    LONG,
  );

  it(
    "a job-wide declared peak counts each worker behind an agent as a device (MFU's denominator)",
    async () => {
      const agg = await hostRun(parseConfig({ ...JOB, compute: { peakFlops: 1e9 } }), { hosts: [2, 1], direct: 1 });
      expect(agg.summary.workers).toBe(4);
      expect(agg.summary.peakFlops).toBe(4e9);
      for (const r of agg.records) expect(r.peakFlops).toBe(4e9);
    },
    LONG,
  );

  it(
    'each host link carries one parameter frame per version and one result per shard',
    async () => {
      const agg = await hostRun(cfg, { hosts: [2, 3], direct: 0 });
      expect(sameBits(agg.params, direct)).toBe(true);
      for (const t of agg.hostLinks) {
        expect(t.up.result.frames).toBe(JOB.steps); // one shard per host per step (accumulate 1)
        expect(t.down.work.frames).toBe(JOB.steps);
        expect(t.down.params.frames).toBeLessThanOrEqual(JOB.steps + 1);
        // Leaves [0, 6) and [6, 12) of 12: two subtrees each ([0,4)+[4,6), [6,8)+[8,12)), whatever the host's worker count.
        const perResult = t.up.result.bytes / t.up.result.frames;
        expect(perResult).toBeGreaterThan(2 * 4 * TOTAL);
        expect(perResult).toBeLessThan(2 * 4 * TOTAL + 512);
      }
    },
    LONG,
  );

  it(
    "through the agent's shared memory: the same bits, and the workers' sockets carry headers only",
    async () => {
      const root = mkdtempSync(join(tmpdir(), 'dptrain-hostagent-shm-'));
      try {
        const agg = await hostRun(cfg, { hosts: [2, 2], direct: 0, shmRoot: root });
        expect(sameBits(agg.params, direct)).toBe(true);
        for (const t of agg.localLinks.flat()) {
          expect(t.up.result.frames).toBeGreaterThan(0);
          expect(t.up.result.bytes / t.up.result.frames).toBeLessThan(512);
          expect(t.down.params.bytes / t.down.params.frames).toBeLessThan(512);
        }
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    },
    LONG,
  );

  it(
    "a worker lost behind an agent: its shard goes to the host's other worker, same bits",
    async () => {
      const agg = await hostRun(cfg, {
        hosts: [2, 2],
        direct: 0,
        onStep: (r, run) => {
          if (r.step === 3) run.workerLinks[1][0].close('killed by the test', 'lost');
        },
      });
      expect(agg.summary.steps).toBe(JOB.steps);
      expect(agg.summary.members).toBe(2);
      expect(agg.summary.droppedWorkers).toBe(0); // the coordinator lost no member
      expect(agg.summary.workers).toBe(3); // but counts the host's workers anew (members)
      expect(sameBits(agg.params, direct)).toBe(true);
      const outcomes = await agg.outcomes; // agent 0, its 2 workers, agent 1, its 2 workers
      expect(outcomes.map((o) => o.finished)).toEqual([true, true, true, true, false, true]);
    },
    LONG,
  );

  it(
    'a worker lost behind an agent and another joining later: the coordinator counts each change, same bits',
    async () => {
      const agg = await hostRun(cfg, {
        hosts: [2, 2],
        direct: 0,
        onStep: (r, run) => {
          if (r.step === 2) run.workerLinks[1][0].close('killed by the test', 'lost');
          if (r.step === 4) run.joinHost(1);
        },
      });
      expect(agg.summary.steps).toBe(JOB.steps);
      const counts = agg.records.map((r) => r.workers);
      expect(counts[0]).toBe(4);
      expect(counts).toContain(3); // between the loss and the new worker's ready
      expect(agg.summary.workers).toBe(4);
      expect(agg.summary.members).toBe(2);
      expect(sameBits(agg.params, direct)).toBe(true);
    },
    LONG,
  );

  it(
    'an agent lost: the coordinator drops the host and the other members finish, same bits',
    async () => {
      const agg = await hostRun(cfg, {
        hosts: [2],
        direct: 1,
        onStep: (r, run) => {
          if (r.step === 3) run.agentLinks[0].close('agent killed by the test', 'lost');
        },
      });
      expect(agg.summary.steps).toBe(JOB.steps);
      expect(agg.summary.droppedWorkers).toBe(1);
      expect(sameBits(agg.params, direct)).toBe(true);
      const [agent, w0, w1] = await agg.outcomes;
      expect(agent.finished).toBe(false);
      expect([w0.finished, w1.finished]).toEqual([false, false]); // told to reconnect, not that the run ended
    },
    LONG,
  );

  it(
    'every worker behind an agent lost: the agent leaves, the coordinator gives its shards to others',
    async () => {
      const agg = await hostRun(cfg, {
        hosts: [1],
        direct: 1,
        onStep: (r, run) => {
          if (r.step === 2) run.workerLinks[0][0].close('killed by the test', 'lost');
        },
      });
      expect(agg.summary.steps).toBe(JOB.steps);
      expect(agg.summary.droppedWorkers).toBe(1);
      expect(sameBits(agg.params, direct)).toBe(true);
      const [agent] = await agg.outcomes;
      expect(agent).toMatchObject({ finished: false, fatal: null });
      expect(agent.reason).toMatch(/every worker on the host is gone/);
    },
    LONG,
  );
});

describe('host agents, 16-bit wire', () => {
  it(
    'bfloat16: leaves pass through the agent unsummed (a rounded partial sum would differ), same bits',
    async () => {
      const bf = parseConfig({ ...JOB, wireDtype: 'bfloat16' });
      const plain = await hostRun(bf, { hosts: [], direct: 4 });
      const agg = await hostRun(bf, { hosts: [2, 2], direct: 0 });
      expect(sameBits(agg.params, plain.params)).toBe(true);
      // 6 leaves a host, 2 bytes a value: one frame a step, no smaller than its leaves.
      for (const t of agg.hostLinks) expect(t.up.result.bytes / t.up.result.frames).toBeGreaterThan(6 * 2 * TOTAL);
    },
    LONG,
  );
});

describe('host agents, per-worker shards', () => {
  it(
    'one worker a host: the bits of the same workers on the coordinator (the agent passes its sum on unrounded)',
    async () => {
      const plain = await hostRun(pw, { hosts: [], direct: 2 });
      const agg = await hostRun(pw, { hosts: [1, 1], direct: 0 });
      expect(sameBits(agg.params, plain.params)).toBe(true);
    },
    LONG,
  );

  it(
    'one host of 2 workers agrees with 2 workers on the coordinator to float32 rounding',
    async () => {
      const plain = await hostRun(pw, { hosts: [], direct: 2 });
      const agg = await hostRun(pw, { hosts: [2], direct: 0 });
      expect(agg.hostLinks[0].up.result.frames).toBe(JOB.steps);
      expect(agg.hostLinks[0].up.result.bytes / JOB.steps).toBeLessThan(4 * TOTAL + 512); // one gradient a step
      expect(tensorRelDiff(agg.params, plain.params, jobLayout(pw).params)).toBeLessThanOrEqual(1e-5);
    },
    LONG,
  );
});
