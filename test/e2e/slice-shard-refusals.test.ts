/**
 * Slice shard processes set up wrongly, as a user would: each mistake ends the process that
 * made it with one line naming what to fix, before any step — a worker without --slice-shard,
 * one listing the shards in another order, a coordinator dialling a shard of another model —
 * and a shard stopped by SIGTERM says so.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, exited, freePort, runCli, tempDir } from '../helpers/cli.js';

const JOB = {
  seed: 3,
  data: { name: 'spirals', samples: 200, noise: 0.05 },
  model: {
    layers: [
      { units: 2048, activation: 'tanh' },
      { units: 2, activation: 'linear' },
    ],
    loss: 'softmaxCrossEntropy',
  },
  steps: 4,
  batchSize: 20,
  evalEvery: 0,
}; // 10,242 parameters: 3 norm blocks, so 2 slices of it are both non-empty
const SMALL = { ...JOB, model: { ...JOB.model, layers: [{ units: 8, activation: 'tanh' }, JOB.model.layers[1]] } };

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGTERM');
});

/** A process and everything it printed so far. */
function start(args: string[]): { c: ChildProcess; out: () => string } {
  const c = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(c);
  let out = '';
  c.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  c.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  return { c, out: () => out };
}

/** The one line a refusal ends with (log lines before it are the run's), and no stack. */
function lastLine(stderr: string): string {
  expect(stderr).not.toMatch(/^\s+at /m);
  const lines = stderr.trim().split('\n');
  expect(lines.filter((l) => l.startsWith('dptrain:'))).toHaveLength(1);
  return lines.at(-1)!;
}

/** A shard process, once it listens: its URL and process. */
async function shard(config: string): Promise<{ url: string; c: ChildProcess; out: () => string }> {
  const port = await freePort();
  const s = start(['slice-shard', '-c', config, '--listen', `127.0.0.1:${port}`]);
  while (!s.out().includes('slice shard listening')) {
    if (s.c.exitCode !== null) throw new Error(`shard exited: ${s.out()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url: `ws://127.0.0.1:${port}`, ...s };
}

describe('slice shard processes set up wrongly', () => {
  it('workers without --slice-shard, or with the shards in another order: refused at join, one line each', {
    timeout: 240_000,
  }, async () => {
    const dir = tempDir('shard-refusals');
    const config = join(dir, 'job.json');
    writeFileSync(config, JSON.stringify(JOB));
    const [a, b] = [await shard(config), await shard(config)];
    const port = await freePort();
    const url = `ws://127.0.0.1:${port}`;
    const listen = ['--listen', `127.0.0.1:${port}`, '--min-workers', '1', '--out', join(dir, 'run')];
    start(['coordinator', '-c', config, ...listen, '--slice-shard', a.url, b.url]);
    const worker = (flags: string[]) => runCli(['worker', '--connect', url, '--backend', 'cpu', ...flags], 120_000);

    const plain = await worker([]);
    expect(plain.code, plain.stderr).not.toBe(0);
    expect(lastLine(plain.stderr)).toMatch(
      /sliced job: start the worker with --slice-shard URL… in the coordinator's order$/,
    );

    const reversed = await worker(['--slice-shard', b.url, a.url]);
    expect(reversed.code, reversed.stderr).toBe(2);
    expect(lastLine(reversed.stderr)).toBe(
      `dptrain: CONFIG_INVALID: --slice-shard order differs from the coordinator's: shard 0 is ${a.url} (pass --slice-shard ${a.url} ${b.url})`,
    );
  });

  it('a coordinator dialling a shard of another model: refused at its start (exit 2), naming --config', {
    timeout: 120_000,
  }, async () => {
    const dir = tempDir('shard-config');
    const config = join(dir, 'job.json');
    const small = join(dir, 'small.json');
    writeFileSync(config, JSON.stringify(JOB));
    writeFileSync(small, JSON.stringify(SMALL));
    const s = await shard(small);
    const port = await freePort();
    const r = await runCli(
      ['coordinator', '-c', config, '--listen', `127.0.0.1:${port}`, '--out', join(dir, 'run'), '--slice-shard', s.url],
      60_000,
    );
    expect(r.code, r.stderr).toBe(2);
    expect(lastLine(r.stderr)).toMatch(
      new RegExp(
        `^dptrain: CONFIG_INVALID: slice shard 0 \\(${s.url}\\) was started for a model of \\d+ parameters, this job's has \\d+: restart it with this job's --config`,
      ),
    );
  });

  it('a shard stopped by SIGTERM says so, in one line', { timeout: 60_000 }, async () => {
    const dir = tempDir('shard-term');
    const config = join(dir, 'job.json');
    writeFileSync(config, JSON.stringify(JOB));
    const s = await shard(config);
    const before = s.out().split('\n').length;
    s.c.kill('SIGTERM');
    expect(await exited(s.c)).toBe(0);
    const after = s
      .out()
      .trim()
      .split('\n')
      .slice(before - 1);
    expect(after).toHaveLength(1);
    expect(after[0]).toMatch(/SIGTERM: slice shard stopping/);
  });
});
