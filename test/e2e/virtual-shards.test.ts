/**
 * With virtual shards the result is a function of the job alone: any worker count, a worker
 * killed or stalled mid-run, a worker joining, and a resume with another worker count all end
 * on the same parameters, bit for bit. Real CLI runs (cpu backend) against one clean run.
 */
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../shared/job/config.js';
import {
  pausedByKill,
  readMetrics,
  readSummary,
  readWeights,
  runCli,
  spawnWorker,
  STALL_FLAGS,
  tempDir,
} from '../helpers/cli.js';
import { wsCoordinator } from '../helpers/ws-coordinator.js';

const JOB = {
  seed: 3,
  data: { name: 'spirals', samples: 600 },
  model: { layers: [{ units: 32, activation: 'tanh' }, { units: 2 }], loss: 'softmaxCrossEntropy' },
  steps: 24,
  batchSize: 48,
  shards: 12, // 4 rows each; 1–4 workers get 12, 6, 4 or 3 leaves, 5 or 7 a split that is not aligned
  evalEvery: 0,
  checkpointEvery: 5,
  backend: 'cpu',
};

/** Each test runs one to three CLI trainings; the machine is shared. */
const LONG = 240_000;
const dir = tempDir('vshards');
const job = join(dir, 'job.json');
let clean: Float32Array;

/** The same bytes (not merely equal numbers: −0 and 0, NaN payloads count). */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  return (
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ) === 0
  );
}

async function train(name: string, ...args: string[]): Promise<string> {
  const out = join(dir, name);
  const r = await runCli(['train', '--config', job, '--out', out, ...args]);
  expect(r.code, r.stderr).toBe(0);
  return out;
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

beforeAll(async () => {
  writeFileSync(job, JSON.stringify(JOB));
  clean = readWeights(await train('w1', '--workers', '1'));
}, LONG);

describe('virtual shards: the same parameters at any scale', () => {
  it.each([2, 3, 4, 5])(
    '%i workers end bit-identical to 1',
    async (n) => {
      const out = await train(`w${n}`, '--workers', String(n));
      expect(readSummary(out).workers).toBe(n);
      expect(sameBits(readWeights(out), clean)).toBe(true);
    },
    LONG,
  );

  it(
    'per-worker shards (the old cut) differ with the worker count: the test can tell',
    async () => {
      const a = readWeights(await train('pw2', '--workers', '2', '--shards', 'per-worker'));
      const b = readWeights(await train('pw3', '--workers', '3', '--shards', 'per-worker'));
      expect(sameBits(a, b)).toBe(false);
    },
    LONG,
  );

  it(
    'bfloat16 on the wire (every leaf sent on its own): 2 and 3 workers bit-identical',
    async () => {
      const a = readWeights(await train('bf2', '--workers', '2', '--wire-dtype', 'bfloat16'));
      const b = readWeights(await train('bf3', '--workers', '3', '--wire-dtype', 'bfloat16', '--no-shared-memory'));
      expect(sameBits(a, b)).toBe(true);
      expect(sameBits(a, clean)).toBe(false); // rounded on the wire: another result than float32's
    },
    LONG,
  );

  it(
    'kill -9 of a worker mid-run: bit-identical to the clean run',
    async () => {
      const out = await train('kill', '--workers', '3', '--fault', 'kill:worker-1@6');
      expect(readSummary(out)).toMatchObject({ steps: 24, droppedWorkers: 1, workers: 2 });
      expect(readSummary(out).reassignedShards).toBeGreaterThanOrEqual(1);
      expect(sameBits(readWeights(out), clean)).toBe(true);
    },
    LONG,
  );

  it(
    'a stalled worker, its leaves reassigned at the deadline, then back: bit-identical',
    async () => {
      const out = await train('stall', ...STALL_FLAGS);
      const s = readSummary(out);
      expect(s.reassignedShards).toBeGreaterThanOrEqual(1);
      expect(s.staleResults).toBeGreaterThanOrEqual(1);
      expect(readMetrics(out).find((x) => x.step === 10)?.workers).toBe(2);
      expect(sameBits(readWeights(out), clean)).toBe(true);
    },
    LONG,
  );

  it(
    'paused by a kill, checkpointed, resumed with 4 workers: bit-identical',
    async () => {
      const out = join(dir, 'resume');
      const r = await pausedByKill(job, out);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/checkpoint at step \d+ written/);
      const again = await runCli(['train', '--resume', out, '--workers', '4']);
      expect(again.code, again.stderr).toBe(0);
      expect(readSummary(out)).toMatchObject({ steps: 24, workers: 4 });
      expect(sameBits(readWeights(out), clean)).toBe(true);
    },
    LONG,
  );

  it(
    'a worker joining a running job: bit-identical',
    async () => {
      const steps = 60;
      const ref = readWeights(await train('join-ref', '--workers', '1', '--steps', String(steps)));
      const cfg = parseConfig({ ...JOB, steps });
      const worker = () => {
        children.push(spawnWorker(listener.address, ['--reconnect-timeout', '30']));
      };
      const workers: number[] = [];
      const { coord, listener } = await wsCoordinator(
        {
          config: cfg,
          startWorkers: 1,
          onStep: (r) => {
            workers.push(r.workers);
            if (r.step !== 2) return;
            worker();
            // Pause until the joiner is ready rather than race it: a process start takes seconds,
            // and steps here take milliseconds. Pausing moves no bits with fixed shards.
            cfg.minWorkers = 2;
          },
        },
        1 << 22,
      );
      worker();
      const summary = await coord.run();
      await listener.close();
      expect(summary.steps).toBe(steps);
      expect(workers[0]).toBe(1);
      expect(workers[workers.length - 1]).toBe(2); // the joiner took part
      expect(sameBits(coord.params, ref)).toBe(true);
    },
    LONG,
  );
});

describe('the default cut (no shards setting)', () => {
  const { shards: _, ...unset } = JOB;
  // 512 rows: four leaves of 128 (shard-tree.ts batchedAutoLeaves), shared by 1–4 workers.
  const DEFAULT_JOB = { ...unset, batchSize: 512, steps: 12, checkpointEvery: 0 };
  const file = join(dir, 'default-job.json');
  const run = async (name: string, ...args: string[]) => {
    const out = join(dir, name);
    const r = await runCli(['train', '--config', file, '--out', out, ...args]);
    expect(r.code, r.stderr).toBe(0);
    return out;
  };

  it(
    '1, 2, 3 and 4 workers end bit-identical; per-worker, asked for, does not',
    async () => {
      writeFileSync(file, JSON.stringify(DEFAULT_JOB));
      const one = readWeights(await run('d1', '--workers', '1'));
      for (const n of [2, 3, 4]) {
        const out = await run(`d${n}`, '--workers', String(n));
        expect(readSummary(out).workers).toBe(n);
        expect(sameBits(readWeights(out), one), `${n} workers`).toBe(true);
      }
      const a = readWeights(await run('dpw2', '--workers', '2', '--shards', 'per-worker'));
      const b = readWeights(await run('dpw3', '--workers', '3', '--shards', 'per-worker'));
      expect(sameBits(a, b)).toBe(false);
    },
    LONG,
  );
});
