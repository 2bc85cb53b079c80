/**
 * dptrain on a real Slurm (slurmctld and three slurmd on this machine, test/helpers/slurm.ts),
 * submitted with examples/slurm/train.sbatch: the job trains to the parameters of a local run
 * with as many workers, and so does one with a host agent of 2 workers a node (--host-agents);
 * a task killed mid-run is named and the others finish the run; a requeued
 * job resumes from its run directory's checkpoint and still lands on the same parameters.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, readSummary, readWeights, runCli, stepsReached } from '../helpers/cli.js';
import { equivalenceSetup, EQUIV_JOB } from '../helpers/equivalence-job.js';
import { tensorRelDiff } from '../helpers/reference.js';
import { slurmSkip, startSlurm, type SlurmCluster } from '../helpers/slurm.js';

const SBATCH = resolve(__dirname, '../../examples/slurm/train.sbatch');
const TOKEN = 'slurm-test-token-0123456789abcdef';

interface Job {
  id: string;
  out: string;
  log: string;
}

describe.skipIf(slurmSkip !== null)(`dptrain on Slurm${slurmSkip ? ` (skipped: ${slurmSkip})` : ''}`, () => {
  let slurm: SlurmCluster;
  const job = equivalenceSetup('slurm-job');

  beforeAll(async () => {
    slurm = await startSlurm(3);
  }, 60_000);
  afterAll(async () => {
    await slurm?.stop();
  });

  function submit(tag: string, config: string, nodes: number, extra = ''): Job {
    const out = join(job.dir, tag);
    const log = join(job.dir, `${tag}.out`);
    const env = `ALL,DPTRAIN=${process.execPath} ${CLI},CONFIG=${config},DPTRAIN_TOKEN=${TOKEN},DPTRAIN_ARGS=--backend cpu --out ${out}${extra}`;
    const said = slurm.client('sbatch', [
      '--parsable',
      `--nodes=${nodes}`,
      `--chdir=${job.dir}`,
      `--output=${log}`,
      '--open-mode=append',
      `--export=${env}`,
      SBATCH,
    ]);
    return { id: said.trim().split(';')[0], out, log };
  }

  const jobState = (id: string): Record<string, string> =>
    Object.fromEntries(
      slurm
        .client('scontrol', ['show', 'job', id])
        .split(/\s+/)
        .filter((kv) => kv.includes('='))
        .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
    );

  async function finished(id: string, timeoutMs = 240_000): Promise<Record<string, string>> {
    const t0 = Date.now();
    for (;;) {
      const s = jobState(id);
      if (['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL'].includes(s.JobState)) return s;
      if (Date.now() - t0 > timeoutMs) throw new Error(`job ${id} still ${s.JobState} after ${timeoutMs / 1000} s`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  it('a 3-node job trains to the parameters of dptrain train --workers 3', async () => {
    const local = join(job.dir, 'local');
    const rl = await runCli(['train', '--config', job.file, '--workers', '3', '--backend', 'cpu', '--out', local]);
    expect(rl.code, rl.stderr).toBe(0);
    const t0 = Date.now();
    const j = submit('equiv', job.file, 3);
    const s = await finished(j.id);
    const elapsed = (Date.now() - t0) / 1000;
    expect(s.JobState, readFileSync(j.log, 'utf8')).toBe('COMPLETED');
    const sum = readSummary(j.out);
    expect(sum.workers).toBe(3);
    const diff = tensorRelDiff(readWeights(j.out), readWeights(local), job.slots);
    console.log(
      `slurm job ${j.id} (3 nodes): submit to end ${elapsed.toFixed(1)} s, RunTime ${s.RunTime}, training wall ${sum.wallSeconds.toFixed(2)} s; ` +
        `local train --workers 3: ${readSummary(local).wallSeconds.toFixed(2)} s; tensor-relative max diff ${diff.toExponential(2)}`,
    );
    expect(diff).toBeLessThanOrEqual(1e-5);
    const log = readFileSync(j.log, 'utf8');
    expect(log).toMatch(/slurm task 0: coordinator at ws:\/\/127\.0\.0\.1:\d+/);
  }, 300_000);

  it('--host-agents: a host agent of 2 workers on each of 2 nodes ends on the bits of dptrain train --workers 4', async () => {
    const shards = ' --shards 10'; // virtual shards: through agents, the bits of direct workers
    const local = join(job.dir, 'local4');
    const rl = await runCli([
      'train',
      '--config',
      job.file,
      '--workers',
      '4',
      '--backend',
      'cpu',
      '--shards',
      '10',
      '--out',
      local,
    ]);
    expect(rl.code, rl.stderr).toBe(0);
    const j = submit('agents', job.file, 2, `${shards} --host-agents --agent-workers 2`);
    const s = await finished(j.id);
    const log = readFileSync(j.log, 'utf8');
    expect(s.JobState, log).toBe('COMPLETED');
    expect(log).toMatch(/every task runs a host agent of 2 workers/);
    expect(readSummary(j.out)).toMatchObject({ workers: 4, members: 2 });
    const joined = readFileSync(join(j.out, 'log.jsonl'), 'utf8');
    for (const a of ['agent0@n1', 'agent1@n2']) expect(joined).toContain(`"workerName":"${a}"`);
    expect(Buffer.from(readWeights(j.out).buffer).equals(Buffer.from(readWeights(local).buffer))).toBe(true);
  }, 300_000);

  it('a task killed mid-run is named, and the other tasks finish the run', async () => {
    const long = join(job.dir, 'long.json');
    writeFileSync(long, JSON.stringify({ ...EQUIV_JOB, steps: 400 }));
    const j = submit('kill', long, 3);
    await stepsReached(j.out, 3, 120_000);
    const victim = taskPid(j.id, 2);
    expect(victim, 'task 2 of the job').not.toBeNull();
    process.kill(victim!, 'SIGKILL');
    const s = await finished(j.id);
    const log = readFileSync(j.log, 'utf8');
    expect(readSummary(j.out).steps).toBe(400);
    expect(log).toMatch(/task 2: Killed/);
    expect(readFileSync(join(j.out, 'log.jsonl'), 'utf8')).toMatch(/"workerName":"rank2@n3".*worker disconnected/);
    console.log(`slurm job ${j.id} with task 2 killed: ${s.JobState} ${s.ExitCode}, 400 steps done by the other two`);
  }, 300_000);

  it('a requeued job resumes from its checkpoint and lands on the uninterrupted parameters', async () => {
    const cfg = { ...EQUIV_JOB, steps: 300, checkpointEvery: 10 };
    const file = join(job.dir, 'requeue.json');
    writeFileSync(file, JSON.stringify(cfg));
    const whole = join(job.dir, 'whole');
    const rl = await runCli(['train', '--config', file, '--workers', '2', '--backend', 'cpu', '--out', whole]);
    expect(rl.code, rl.stderr).toBe(0);
    const j = submit('requeue', file, 2);
    await stepsReached(j.out, 25, 120_000);
    slurm.client('scontrol', ['requeue', j.id]);
    // A requeued job waits before it is eligible again; start it now.
    await waitUntil(() => jobState(j.id).JobState === 'PENDING', 60_000);
    slurm.client('scontrol', ['update', `JobId=${j.id}`, 'StartTime=now']);
    const s = await finished(j.id);
    const log = readFileSync(j.log, 'utf8');
    expect(s.JobState, log).toBe('COMPLETED');
    expect(Number(s.Restarts)).toBeGreaterThanOrEqual(1);
    const resumed = /"step":(\d+)[^\n]*"msg":"resuming from checkpoint"/.exec(
      readFileSync(join(j.out, 'log.jsonl'), 'utf8'),
    );
    expect(resumed, 'the requeued run resumed').not.toBeNull();
    expect(Number(resumed![1])).toBeGreaterThanOrEqual(20); // not from the start
    expect(readSummary(j.out).steps).toBe(300);
    const diff = tensorRelDiff(readWeights(j.out), readWeights(whole), job.slots);
    console.log(
      `slurm job ${j.id} requeued, resumed at step ${resumed![1]}: tensor-relative max diff to the uninterrupted run ${diff.toExponential(2)}`,
    );
    expect(diff).toBeLessThanOrEqual(1e-5);
  }, 300_000);

  it("task 0's config error ends the other tasks at once with it, not with CONNECT_FAILED at the join timeout", async () => {
    const bad = join(job.dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ ...EQUIV_JOB, batchSize: 0 }));
    // Only task 0 reads the config; the others would dial its coordinator for --join-timeout.
    const j = submit('bad-config', bad, 2, ' --join-timeout 600');
    const s = await finished(j.id, 120_000);
    const log = readFileSync(j.log, 'utf8');
    expect(s.JobState, log).toBe('FAILED');
    expect(log).toMatch(/dptrain: CONFIG_INVALID: batchSize must be/);
    expect(log).toMatch(/dptrain: CONFIG_INVALID: task 0 did not start the coordinator: batchSize must be/);
    expect(log).not.toMatch(/CONNECT_FAILED/);
  }, 300_000);

  /** The pid of task `rank` of job `id` (its environment says SLURM_JOB_ID and SLURM_PROCID). */
  function taskPid(id: string, rank: number): number | null {
    for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      try {
        const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        if (
          cmd.includes('slurm') &&
          cmd.includes(CLI) &&
          env.includes(`SLURM_JOB_ID=${id}`) &&
          env.includes(`SLURM_PROCID=${rank}`)
        )
          return Number(pid);
      } catch {
        // gone, or not ours to read
      }
    }
    return null;
  }
});

async function waitUntil(ok: () => boolean, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`not within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
