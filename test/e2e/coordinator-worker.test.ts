/**
 * `dptrain train --coordinator-worker`: one worker inside the coordinator's process, the others
 * as processes. The run ends on the bits of the same number of worker processes, the in-process
 * worker logs to workers/worker-0.log like the others, and mistakes and failures are named.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readMetrics, readSummary, readWeights, runCli, SPIRALS, tempDir, trainSpirals } from '../helpers/cli.js';

/** Each worker's name → the link it joined over, from the coordinator's log. */
function joined(out: string): Map<string, string> {
  const records = readFileSync(join(out, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { msg?: string; workerName?: string; remote?: string });
  return new Map(records.filter((r) => r.msg === 'worker connected').map((r) => [r.workerName!, r.remote!]));
}

const steps = (out: string) => readMetrics(out).map((m) => [m.loss, m.gradNorm, m.workers, m.members]);

describe('dptrain train --coordinator-worker', () => {
  it.each([
    ['2 workers, shared memory', 2, []],
    ['1 worker, through the in-process link', 1, ['--no-shared-memory']],
  ])('%s: the bits of as many worker processes', { timeout: 180_000 }, async (_, workers, flags) => {
    const inside = await trainSpirals('cw-inside', 40, [...flags, '--coordinator-worker'], workers);
    const apart = await trainSpirals('cw-apart', 40, flags, workers);
    expect(steps(inside)).toEqual(steps(apart));
    expect(Buffer.from(readWeights(inside).buffer).equals(Buffer.from(readWeights(apart).buffer))).toBe(true);
    expect(readSummary(inside)).toMatchObject({ workers, members: workers, steps: 40 });
    // worker-0 served in the coordinator's process, over the in-process link; the processes
    // are worker-1 onwards, over sockets.
    const links = joined(inside);
    expect(links.get('worker-0')).toMatch(/^local#\d+$/);
    for (let i = 1; i < workers; i++) expect(links.get(`worker-${i}`)).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(readFileSync(join(inside, 'workers', 'worker-0.log'), 'utf8')).toMatch(/\[worker-0\] job loaded/);
    for (let i = 1; i < workers; i++) expect(existsSync(join(inside, 'workers', `worker-${i}.log`))).toBe(true);
    expect(existsSync(join(inside, 'workers', `worker-${workers}.log`))).toBe(false);
  });

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
    expect(r.stderr).toMatch(/--fault names worker-0, but the workers are worker-1\n/);
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
