/**
 * A coordinator whose parameters live on slice shard processes (`dptrain slice-shard`, `coordinator
 * --slice-shard`, `worker --slice-shard`) trains to the same bits as the unsharded coordinator with the
 * same workers: the weights it saves, and every step's loss and gradient norm. Clipping and
 * weight decay are on, so the one global value (the norm) matters; and without clipping, where
 * each shard applies Adam as soon as its own sums are complete.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, freePort, readMetrics, readSummary, readWeights, runCli, tempDir } from '../helpers/cli.js';

const JOB = {
  seed: 11,
  data: { name: 'spirals', samples: 400, noise: 0.05 },
  model: {
    layers: [
      { units: 128, activation: 'tanh' },
      { units: 96, activation: 'relu' },
      { units: 2, activation: 'linear' },
    ],
    loss: 'softmaxCrossEntropy',
  }, // 12,962 parameters: 4 blocks of 4096, so up to 4 slices
  steps: 8,
  batchSize: 40,
  evalEvery: 0,
  optimizer: { lr: 0.01, clipNorm: 0.3, weightDecay: 0.01 },
};

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGTERM');
});

function start(args: string[]): ChildProcess {
  const c = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(c);
  return c;
}

/** A shard process, once it listens. */
async function shard(config: string): Promise<string> {
  const port = await freePort();
  const c = start(['slice-shard', '-c', config, '--listen', `127.0.0.1:${port}`]);
  let out = '';
  await new Promise<void>((res, rej) => {
    const seen = (b: Buffer) => {
      out += b.toString();
      if (out.includes('slice shard listening')) res();
    };
    c.stdout!.on('data', seen);
    c.stderr!.on('data', seen);
    c.once('exit', (code) => rej(new Error(`shard exited (${code}): ${out}`)));
  });
  return `ws://127.0.0.1:${port}`;
}

/**
 * A coordinator with 2 workers, on `k` shards (0: unsharded); its run directory. `inside`: one
 * of the two is the coordinator's own (--coordinator-worker); `agent`: both behind one host agent.
 */
async function run(
  dir: string,
  config: string,
  k: number,
  how: 'workers' | 'inside' | 'agent' = 'workers',
): Promise<string> {
  const urls = await Promise.all(Array.from({ length: k }, () => shard(config)));
  const sharded = k ? ['--slice-shard', ...urls] : [];
  const port = await freePort();
  const out = join(dir, `k${k}-${how}`);
  const own = how === 'inside' ? ['--coordinator-worker', '--backend', 'cpu'] : [];
  const members = how === 'agent' ? '1' : '2';
  const listen = ['--listen', `127.0.0.1:${port}`, '--min-workers', members, '--out', out];
  const coordinator = runCli(['coordinator', '-c', config, ...listen, ...own, ...sharded], 180_000);
  const url = `ws://127.0.0.1:${port}`;
  if (how === 'agent')
    start([
      'host-agent',
      '--connect',
      url,
      '--workers',
      '2',
      '--backend',
      'cpu',
      '--log-dir',
      join(out, 'agent'),
      ...sharded,
    ]);
  else
    for (let w = how === 'inside' ? 1 : 0; w < 2; w++)
      start(['worker', '--connect', url, '--backend', 'cpu', '--name', `w${w}`, ...sharded]);
  const r = await coordinator;
  expect(r.code, r.stderr).toBe(0);
  return out;
}

const steps = (out: string) => readMetrics(out).map((m) => [m.loss, m.gradNorm]);

const PARAMS = 12_962;

/**
 * The parameters went by the shards, and wireBytes counts them: after the first step (which
 * also carries the shards' assignment), each of the 2 workers sends at least one gradient and
 * gets one copy of the parameters per step, through the slice links. The run's summary has
 * each shard's step.
 */
function expectSliceTraffic(out: string, k: number): void {
  const metrics = readMetrics(out);
  for (const m of metrics.slice(1)) {
    expect(m.wireBytes as number).toBeGreaterThanOrEqual(2 * 2 * 4 * PARAMS);
    expect((m.shardTimeline as unknown[]).length).toBe(k);
  }
  expect(readSummary(out).shardTimeline).toHaveLength(k);
}

describe('slice shard processes', () => {
  it("K = 2 and 3 shards: the unsharded run's bits", { timeout: 600_000 }, async () => {
    const dir = tempDir('shards');
    const config = join(dir, 'job.json');
    writeFileSync(config, JSON.stringify(JOB));
    const whole = await run(dir, config, 0);
    const norms = steps(whole).map(([, norm]) => norm as number);
    // Clipping took part:
    expect(norms.filter((n) => n > JOB.optimizer.clipNorm).length, `norms ${norms}`).toBeGreaterThan(0);
    for (const k of [2, 3]) {
      const out = await run(dir, config, k);
      expect(steps(out)).toEqual(steps(whole));
      expect(
        Buffer.from(readWeights(out).buffer).equals(Buffer.from(readWeights(whole).buffer)),
        `K = ${k}: weights`,
      ).toBe(true);
      expectSliceTraffic(out, k);
    }
  });

  it("no clipping (Adam early on each shard): K = 2, the unsharded run's bits", { timeout: 600_000 }, async () => {
    const dir = tempDir('shards-early');
    const config = join(dir, 'job.json');
    writeFileSync(config, JSON.stringify({ ...JOB, optimizer: { ...JOB.optimizer, clipNorm: 0 } }));
    const whole = await run(dir, config, 0);
    const out = await run(dir, config, 2);
    expect(steps(out)).toEqual(steps(whole));
    expect(Buffer.from(readWeights(out).buffer).equals(Buffer.from(readWeights(whole).buffer))).toBe(true);
    for (const m of readMetrics(out)) expect(m.earlyAdam).toBe(true);
    expectSliceTraffic(out, 2);
  });

  it("bfloat16 on the slice links: K = 2 gives the unsharded bfloat16 run's bits", { timeout: 600_000 }, async () => {
    // Workers round gradients to bfloat16 and receive bfloat16 parameters either way; the shards
    // sum the same values in the same order and run the same Adam on float32 masters.
    const dir = tempDir('shards-bf16');
    const config = join(dir, 'job.json');
    writeFileSync(config, JSON.stringify({ ...JOB, wireDtype: 'bfloat16' }));
    const whole = await run(dir, config, 0);
    const out = await run(dir, config, 2);
    expect(steps(out)).toEqual(steps(whole));
    expect(Buffer.from(readWeights(out).buffer).equals(Buffer.from(readWeights(whole).buffer))).toBe(true);
    // And they are not the float32 run's: the links did round.
    const other = tempDir('shards-f32');
    const f32 = join(other, 'job.json');
    writeFileSync(f32, JSON.stringify(JOB));
    expect(steps(await run(other, f32, 2))).not.toEqual(steps(whole));
  });

  it("a worker inside the coordinator takes its parameters from the shards too: K = 2, the unsharded run's bits", {
    timeout: 600_000,
  }, async () => {
    const dir = tempDir('shards-inside');
    const config = join(dir, 'job.json');
    writeFileSync(config, JSON.stringify(JOB));
    const whole = await run(dir, config, 0);
    const out = await run(dir, config, 2, 'inside');
    expect(steps(out)).toEqual(steps(whole));
    expect(Buffer.from(readWeights(out).buffer).equals(Buffer.from(readWeights(whole).buffer))).toBe(true);
    expectSliceTraffic(out, 2);
  });

  it("2 workers behind a host agent: K = 2 gives the unsharded agent's bits", { timeout: 600_000 }, async () => {
    const dir = tempDir('shards-agent');
    const config = join(dir, 'job.json');
    writeFileSync(config, JSON.stringify(JOB));
    const whole = await run(dir, config, 0, 'agent');
    const out = await run(dir, config, 2, 'agent');
    expect(readSummary(out)).toMatchObject({ workers: 2, members: 1 });
    expect(steps(out)).toEqual(steps(whole));
    expect(Buffer.from(readWeights(out).buffer).equals(Buffer.from(readWeights(whole).buffer))).toBe(true);
    // The parameters went by the shards: the host's link carries each step's copy and its sums.
    for (const m of readMetrics(out).slice(1)) {
      expect(m.wireBytes as number).toBeGreaterThanOrEqual(2 * 4 * PARAMS);
      expect((m.shardTimeline as unknown[]).length).toBe(2);
    }
  });

  it('refuses to listen beyond loopback without the job token, in one line', async () => {
    const dir = tempDir('shards');
    const config = join(dir, 'job.json');
    writeFileSync(config, JSON.stringify(JOB));
    const r = await runCli(['slice-shard', '-c', config, '--listen', '0.0.0.0:0'], 60_000, {
      ...process.env,
      DPTRAIN_TOKEN: '',
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/needs the job token/);
  });
});
