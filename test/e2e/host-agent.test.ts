/**
 * `dptrain host-agent` as processes: a coordinator, one host agent with 2 local workers behind
 * it (its own loopback listener and shared memory), virtual shards. The weights, losses and
 * norms are the bits of the same 2 workers joining the coordinator directly, and the
 * coordinator's socket carries one result per step (not one per worker).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../shared/job/config.js';
import { jobLayout } from '../../shared/job/job-layout.js';
import { CLI, freePort, readMetrics, readSummary, readWeights, runCli, tempDir } from '../helpers/cli.js';

const JOB = {
  seed: 5,
  data: { name: 'spirals', samples: 400 },
  model: { layers: [{ units: 32, activation: 'tanh' }, { units: 2 }], loss: 'softmaxCrossEntropy' },
  steps: 10,
  batchSize: 40,
  shards: 10, // 4 rows a leaf: 2 workers hold 5 each, two subtrees ([0,4)+[4,5), [5,6)+[6,8)+[8,10))
  evalEvery: 5,
  backend: 'cpu',
};
const TOTAL = jobLayout(parseConfig(JOB)).totalParams;

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGTERM');
});

function start(args: string[]): ChildProcess {
  const c = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  c.stderr!.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
  c.once('exit', (code) => {
    if (code) process.stderr.write(`${args[0]} exited ${code}: ${err}\n`);
  });
  children.push(c);
  return c;
}

/** A coordinator for `members` members; `join` starts whatever joins it. Its run directory. */
async function run(dir: string, name: string, members: number, join_: (url: string) => void): Promise<string> {
  const port = await freePort();
  const out = join(dir, name);
  const config = join(dir, 'job.json');
  const coordinator = runCli(
    ['coordinator', '-c', config, '--listen', `127.0.0.1:${port}`, '--min-workers', String(members), '--out', out],
    240_000,
  );
  join_(`ws://127.0.0.1:${port}`);
  const r = await coordinator;
  expect(r.code, r.stderr).toBe(0);
  return out;
}

const steps = (out: string) => readMetrics(out).map((m) => [m.loss, m.gradNorm, m.testLoss]);

describe('dptrain host-agent', () => {
  it("2 workers behind one agent: the bits of 2 direct workers, one result a step on the host's link", {
    timeout: 600_000,
  }, async () => {
    const dir = tempDir('hostagent');
    writeFileSync(join(dir, 'job.json'), JSON.stringify(JOB));
    const direct = await run(dir, 'direct', 2, (url) => {
      for (let w = 0; w < 2; w++) start(['worker', '--connect', url, '--backend', 'cpu', '--name', `w${w}`]);
    });
    let agent: ChildProcess | null = null;
    const agg = await run(dir, 'agent', 1, (url) => {
      agent = start(['host-agent', '--connect', url, '--workers', '2', '--backend', 'cpu']);
    });
    expect(readSummary(agg)).toMatchObject({ workers: 2, members: 1 });
    expect(steps(agg)).toEqual(steps(direct));
    expect(Buffer.from(readWeights(agg).buffer).equals(Buffer.from(readWeights(direct).buffer))).toBe(true);
    // Per step, the coordinator's socket: one params frame down and one 2-node result up (plus
    // headers), against two of each directly.
    const bytes = (out: string) =>
      readMetrics(out)
        .slice(1)
        .map((m) => m.wireBytes as number);
    for (const b of bytes(agg)) expect(b).toBeLessThan((1 + 2) * 4 * TOTAL + 4096);
    for (const b of bytes(direct)) expect(b).toBeGreaterThan((2 + 4) * 4 * TOTAL);
    // The agent ends with the run, and its workers with it.
    const code = await new Promise<number | null>((r) =>
      agent!.exitCode !== null ? r(agent!.exitCode) : agent!.once('exit', r),
    );
    expect(code).toBe(0);
    // Its workers' logs were in a temporary directory of its own: gone with a finished run.
    expect(existsSync(join(tmpdir(), `dptrain-host-agent-${agent!.pid}`))).toBe(false);
  });

  it('refuses a non-loopback --listen in one line', async () => {
    const r = await runCli(['host-agent', '--connect', 'ws://127.0.0.1:9', '--listen', '0.0.0.0:0'], 30_000);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/loopback/);
  });
});
