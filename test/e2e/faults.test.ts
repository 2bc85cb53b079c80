/**
 * Failures cost seconds and change no result. Each scenario runs the real CLI with scripted
 * faults (--fault) against a fault-free run of the same job; all bounded in time.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../shared/job/config.js';
import { jobLayout } from '../../shared/job/job-layout.js';
import {
  CLI,
  pausedByKill,
  readMetrics,
  readSummary,
  readWeights,
  runCli,
  STALL_FLAGS,
  stepsReached,
  tempDir,
} from '../helpers/cli.js';
import { tensorRelDiff } from '../helpers/reference.js';

const JOB = {
  seed: 3,
  data: { name: 'spirals', samples: 600 },
  model: { layers: [{ units: 32, activation: 'tanh' }, { units: 2 }], loss: 'softmaxCrossEntropy' },
  steps: 24,
  batchSize: 48,
  evalEvery: 0,
  checkpointEvery: 5,
  backend: 'cpu',
};

const dir = tempDir('faults');
const job = join(dir, 'job.json');
const slots = (() => {
  const cfg = parseConfig(JOB);
  return jobLayout(cfg).params;
})();
let clean3: Float32Array;

beforeAll(async () => {
  writeFileSync(job, JSON.stringify(JOB));
  const r = await runCli(['train', '--config', job, '--workers', '3', '--out', join(dir, 'clean3')]);
  expect(r.code, r.stderr).toBe(0);
  clean3 = readWeights(join(dir, 'clean3'));
});

describe('worker failures', () => {
  it('kill -9 of a worker mid-step: its shard is recomputed, the run ends where a fault-free run does', async () => {
    const out = join(dir, 'kill');
    const r = await runCli(['train', '--config', job, '--workers', '3', '--fault', 'kill:worker-1@6', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const s = readSummary(out);
    expect(s).toMatchObject({ steps: 24, droppedWorkers: 1, workers: 2 });
    expect(s.reassignedShards).toBeGreaterThanOrEqual(1);
    expect(tensorRelDiff(readWeights(out), clean3, slots)).toBeLessThanOrEqual(1e-5);
    // The step in flight when the kill lands may still have been split three ways.
    expect(
      readMetrics(out)
        .filter((m) => (m.step as number) > 8)
        .every((m) => m.workers === 2),
    ).toBe(true);
  });

  it('a stalled worker is named, its shard reassigned at the deadline, and it rejoins when it resumes', async () => {
    const out = join(dir, 'stall');
    const r = await runCli(['train', '--config', job, ...STALL_FLAGS, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const log = readFileSync(join(out, 'log.jsonl'), 'utf8');
    expect(log).toMatch(/missed its deadline of 1000 ms/);
    expect(log).toMatch(/answered again \d+ ms after missing its deadline; it rejoins at the next step/);
    const s = readSummary(out);
    expect(s.reassignedShards).toBeGreaterThanOrEqual(1);
    expect(s.staleResults).toBeGreaterThanOrEqual(1);
    expect(s.droppedWorkers).toBe(0);
    const m = readMetrics(out);
    expect(m.find((x) => x.step === 10)?.workers).toBe(2); // while stalled
    expect(m.find((x) => x.step === 24)?.workers).toBe(3); // back
    expect(tensorRelDiff(readWeights(out), clean3, slots)).toBeLessThanOrEqual(1e-5);
  });

  it('below --min-workers the run pauses, then checkpoints and exits non-zero; --resume finishes it', async () => {
    const out = join(dir, 'pause');
    const r = await pausedByKill(job, out);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/training paused: 1 of 2 workers ready/);
    // The kill lands as step 9 starts; its socket may close only after step 10 was dispatched.
    const m =
      /dptrain: WORKER_LOST: paused: only 1 of 2 workers ready for 2 s; ready: worker-\d \(.+\); checkpoint at step (\d+) written, continue with --resume/.exec(
        r.stderr,
      );
    expect(m, r.stderr).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(9);
    expect(Number(m![1])).toBeLessThanOrEqual(11);
    // The run's log says how it ended too (the report and the dashboard read it).
    const ended = readFileSync(join(out, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { level: number; code?: string; msg: string })
      .filter((r) => r.msg.startsWith('run ended: '));
    expect(ended).toEqual([expect.objectContaining({ level: 50, code: 'WORKER_LOST' })]);
    expect(ended[0].msg).toMatch(/^run ended: paused: only 1 of 2 workers ready for 2 s; ready: worker-\d /);
    const again = await runCli(['train', '--resume', out, '--workers', '2']);
    expect(again.code, again.stderr).toBe(0);
    expect(readSummary(out).steps).toBe(24);
    expect(readMetrics(out).map((m) => m.step)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
  });
});

describe('coordinator failures', () => {
  it('SIGKILL of the coordinator, then --resume: parameters bit-identical to an uninterrupted run', async () => {
    const clean = join(dir, 'clean2');
    const r0 = await runCli(['train', '--config', job, '--workers', '2', '--out', clean]);
    expect(r0.code, r0.stderr).toBe(0);

    const out = join(dir, 'crash');
    const child = spawn(
      process.execPath,
      [CLI, 'train', '--config', job, '--workers', '2', '--step-timeout', '30', '--out', out],
      { stdio: 'ignore' },
    );
    // Kill it once a checkpoint exists and it has gone past it.
    await stepsReached(out, 12);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(existsSync(join(out, 'summary.json'))).toBe(false); // it really died mid-run
    const r1 = await runCli(['train', '--resume', out]);
    expect(r1.code, r1.stderr).toBe(0);
    expect(readWeights(out)).toEqual(readWeights(clean));
    expect(readSummary(out).steps).toBe(24);
  });

  it('SIGINT finishes the step in flight, writes a checkpoint and exits 130', async () => {
    const out = join(dir, 'sigint');
    const child = spawn(
      process.execPath,
      [CLI, 'train', '--config', job, '--workers', '2', '--steps', '2000', '--checkpoint-every', '0', '--out', out],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += String(d)));
    await new Promise<void>((resolve, reject) => {
      const t0 = Date.now();
      const poll = setInterval(() => {
        if (existsSync(join(out, 'metrics.jsonl'))) {
          clearInterval(poll);
          child.kill('SIGINT');
          resolve();
        } else if (Date.now() - t0 > 60_000) reject(new Error('no step within 60 s'));
      }, 20);
    });
    const code = await new Promise((r) => child.once('exit', r));
    expect(code).toBe(130);
    expect(stderr).toMatch(
      /dptrain: INTERRUPTED: SIGINT: stopped after step (\d+); checkpoint written, continue with --resume /,
    );
    const step = Number(/stopped after step (\d+)/.exec(stderr)![1]);
    expect(readdirSync(join(out, 'checkpoints'))).toEqual([`step-${String(step).padStart(8, '0')}.ckpt`]);
  });

  it('a truncated newest checkpoint is reported and the previous one used', async () => {
    const out = join(dir, 'trunc');
    const r0 = await runCli(['train', '--config', job, '--workers', '1', '--steps', '12', '--out', out]);
    expect(r0.code, r0.stderr).toBe(0);
    const ckpts = readdirSync(join(out, 'checkpoints')).sort();
    expect(ckpts).toEqual(['step-00000010.ckpt', 'step-00000012.ckpt']);
    truncateSync(join(out, 'checkpoints', 'step-00000012.ckpt'), 500);
    const r1 = await runCli(['train', '--resume', out]);
    expect(r1.code, r1.stderr).toBe(0);
    expect(r1.stderr).toMatch(/checkpoint unusable; trying the previous one.*checksum mismatch/);
    expect(r1.stderr).toMatch(/resuming from checkpoint .*step=10/);
  });

  it('--resume of a finished run is refused, and its summary stays as it was', async () => {
    const out = join(dir, 'clean3');
    const before = readFileSync(join(out, 'summary.json'), 'utf8');
    const r = await runCli(['train', '--resume', out]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(
      `dptrain: CONFIG_INVALID: --resume ${out}: the run already finished all its 24 steps; nothing to resume (start a new run to train further)`,
    );
    expect(readFileSync(join(out, 'summary.json'), 'utf8')).toBe(before);
  });

  it("a new run into a finished run's directory is refused before it writes anything", async () => {
    const out = join(dir, 'clean3');
    const before = ['summary.json', 'config.json', 'metrics.jsonl'].map((f) => readFileSync(join(out, f), 'utf8'));
    const r = await runCli(['train', '--config', job, '--steps', '3', '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(
      `dptrain: CONFIG_INVALID: --out ${out} already holds a run: continue it with --resume ${out}, or give another --out`,
    );
    expect(['summary.json', 'config.json', 'metrics.jsonl'].map((f) => readFileSync(join(out, f), 'utf8'))).toEqual(
      before,
    );
  });

  it('--resume refuses to change the job', async () => {
    const r = await runCli(['train', '--resume', join(dir, 'trunc'), '--lr', '0.5']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(
      'dptrain: CONFIG_INVALID: --lr: cannot be changed with --resume; the checkpoint fixes the job (start a new run to change it)',
    );
  });
});
