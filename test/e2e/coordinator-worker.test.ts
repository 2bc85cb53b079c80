/**
 * `dptrain train --coordinator-worker`: one worker inside the coordinator's process, the others
 * as processes. The run ends on the bits of the same number of worker processes, the in-process
 * worker logs to workers/worker-0.log like the others, and mistakes and failures are named.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  freePort,
  readMetrics,
  readSummary,
  readWeights,
  runCli,
  SPIRALS,
  spawnWorker,
  tempDir,
  trainSpirals,
} from '../helpers/cli.js';

/** Each worker's name → the link it joined over and how its payloads travelled, from the coordinator's log. */
function joined(out: string): Map<string, string> {
  const records = readFileSync(join(out, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { msg?: string; workerName?: string; remote?: string; payloads?: string });
  return new Map(
    records.filter((r) => r.msg === 'worker connected').map((r) => [r.workerName!, `${r.remote} ${r.payloads}`]),
  );
}

const steps = (out: string) => readMetrics(out).map((m) => [m.loss, m.gradNorm, m.workers, m.members]);

describe('dptrain train --coordinator-worker', () => {
  it.each([
    ['2 workers, shared memory', 2, [], 'memory', 'files'],
    ['2 workers, bfloat16 on the wire', 2, ['--wire-dtype', 'bfloat16'], 'memory', 'files'],
    ['1 worker, through the in-process link', 1, ['--no-shared-memory'], 'frames', 'frames'],
  ])('%s: the bits of as many worker processes', { timeout: 180_000 }, async (_, workers, flags, own, others) => {
    const inside = await trainSpirals('cw-inside', 40, [...flags, '--coordinator-worker'], workers);
    const apart = await trainSpirals('cw-apart', 40, flags, workers);
    expect(steps(inside)).toEqual(steps(apart));
    expect(Buffer.from(readWeights(inside).buffer).equals(Buffer.from(readWeights(apart).buffer))).toBe(true);
    expect(readSummary(inside)).toMatchObject({ workers, members: workers, steps: 40 });
    // worker-0 served in the coordinator's process, over the in-process link, its payloads in
    // memory; the processes are worker-1 onwards, over sockets, theirs in /dev/shm files.
    const links = joined(inside);
    expect(links.get('worker-0')).toMatch(new RegExp(`^local#\\d+ ${own}$`));
    for (let i = 1; i < workers; i++)
      expect(links.get(`worker-${i}`)).toMatch(new RegExp(`^127\\.0\\.0\\.1:\\d+ ${others}$`));
    expect(readFileSync(join(inside, 'workers', 'worker-0.log'), 'utf8')).toMatch(/\[worker-0\] job loaded/);
    for (let i = 1; i < workers; i++) expect(existsSync(join(inside, 'workers', `worker-${i}.log`))).toBe(true);
    expect(existsSync(join(inside, 'workers', `worker-${workers}.log`))).toBe(false);
  });

  it('dptrain coordinator --coordinator-worker: it and one worker joining over the network make the bits of 2 local workers', {
    timeout: 180_000,
  }, async () => {
    const out = tempDir('cw-coordinator');
    const port = await freePort();
    const running = runCli([
      'coordinator',
      '-c',
      SPIRALS,
      '--backend',
      'cpu',
      '--listen',
      `127.0.0.1:${port}`,
      '--min-workers',
      '2',
      '--steps',
      '40',
      '--coordinator-worker',
      '--out',
      out,
    ]);
    const remote = spawnWorker(`ws://127.0.0.1:${port}`, ['--name', 'remote']);
    try {
      const r = await running;
      expect(r.code, r.stderr).toBe(0);
    } finally {
      remote.kill('SIGKILL');
    }
    const local = await trainSpirals('cw-coordinator-ref', 40, ['--backend', 'cpu']);
    expect(steps(out)).toEqual(steps(local));
    expect(Buffer.from(readWeights(out).buffer).equals(Buffer.from(readWeights(local).buffer))).toBe(true);
    const links = joined(out);
    expect(links.get('worker-0')).toMatch(/^local#\d+ memory$/);
    expect(links.get('remote')).toMatch(/^127\.0\.0\.1:\d+ frames$/);
  });

  it('dptrain coordinator refuses the flags of its own worker without --coordinator-worker', async () => {
    const r = await runCli([
      'coordinator',
      '-c',
      SPIRALS,
      '--backend',
      'cpu',
      '--no-shared-memory',
      '--out',
      tempDir('cw-flags'),
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^dptrain: CONFIG_INVALID: --backend, --no-shared-memory: dptrain coordinator computes nothing itself without --coordinator-worker; .*\n$/,
    );
  });

  it.each(['launch', 'slurm'])(
    'dptrain %s refuses a config asking for a worker inside the coordinator',
    async (command) => {
      const dir = tempDir('cw-refused');
      const job = join(dir, 'job.json');
      writeFileSync(job, JSON.stringify({ ...JSON.parse(readFileSync(SPIRALS, 'utf8')), coordinatorWorker: true }));
      const args = command === 'launch' ? ['launch', '--launcher', 'local', '-c', job] : ['slurm', '-c', job];
      // Task 0 of a one-node allocation; scontrol answers for that node alone.
      writeFileSync(join(dir, 'scontrol'), '#!/bin/sh\necho localhost\n', { mode: 0o755 });
      const env = {
        ...process.env,
        PATH: `${dir}:${process.env.PATH}`,
        SLURM_JOB_ID: '7',
        SLURM_PROCID: '0',
        SLURM_NTASKS: '1',
        SLURM_JOB_NODELIST: 'localhost',
        SLURM_TASKS_PER_NODE: '1',
        DPTRAIN_TOKEN: 'a-test-token-of-enough-length',
      };
      const r = await runCli([...args, '--out', tempDir('cw-refused-run')], 30_000, env);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(
        new RegExp(`coordinatorWorker: dptrain ${command} starts every worker as a process of its own; .*\\n$`),
      );
    },
  );

  it('a fault cannot name the worker inside the coordinator', async () => {
    const out = tempDir('cw-fault');
    const r = await runCli([
      'train',
      '-c',
      SPIRALS,
      '--coordinator-worker',
      '--fault',
      'kill:worker-0@3',
      '--out',
      out,
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/fault kill:worker-0@3 names worker-0, but the worker processes are worker-1\n/);
    expect(existsSync(join(out, 'config.json'))).toBe(false); // refused before the run directory was written
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('a worker process killed mid-run leaves the one inside to finish the run', { timeout: 120_000 }, async () => {
    const out = await trainSpirals('cw-kill', 60, ['--coordinator-worker', '--fault', 'kill:worker-1@10']);
    expect(readSummary(out)).toMatchObject({ steps: 60 });
    // Both computed the first steps; the one inside computed every step after the kill alone.
    const counts = readMetrics(out).map((m) => m.workers);
    expect(counts.slice(0, 5)).toEqual([2, 2, 2, 2, 2]);
    expect(counts.slice(-20)).toEqual(Array(20).fill(1));
  });

  it('the worker inside failing to start ends the run naming it', { timeout: 120_000 }, async () => {
    const out = tempDir('cw-broken');
    // No adapter here, or only a software one, which webgpu refuses without --allow-software-gpu.
    const r = await runCli([
      'train',
      '-c',
      SPIRALS,
      '--coordinator-worker',
      '--workers',
      '1',
      '--backend',
      'webgpu',
      '--out',
      out,
    ]);
    expect(r.code).not.toBe(0);
    // One line of ours at the end (Dawn prints its own adapter warnings before it).
    expect(r.stderr).toMatch(
      /\ndptrain: WORKER_LOST: the coordinator's own worker could not start: BACKEND_UNAVAILABLE: [^\n]+\n$/,
    );
    expect(r.stderr).not.toMatch(/\n\s+at .*\.js:\d+/);
  });
});
