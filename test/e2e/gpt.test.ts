/**
 * A gpt run end to end on a small text: tokens/s in the summary, the model saved with its
 * alphabet, `dptrain sample` continuing a prompt from it, and `plan --from-run` counting the
 * run's FLOPs per token as the run did.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readSummary, runCli, tempDir } from '../helpers/cli.js';
import { equivGptJob } from '../helpers/equivalence-job.js';
import { tinyTextFile } from '../helpers/fixtures.js';
import { sampleCommand } from '../../cli/sample-cmd.js';

describe('a gpt run', () => {
  const dir = tempDir('gpt-run');
  const out = join(dir, 'run');
  const config = join(dir, 'job.json');
  const job = { ...equivGptJob(tinyTextFile()), steps: 8, evalEvery: 4 };
  let train: Awaited<ReturnType<typeof runCli>>;

  beforeAll(async () => {
    writeFileSync(config, JSON.stringify(job));
    train = await runCli(['train', '--config', config, '--workers', '2', '--backend', 'wasm', '--out', out]);
  });

  it('trains on wasm and reports tokens/s = samples/s × seq, and the test loss in bits per token', () => {
    expect(train.code, train.stderr).toBe(0);
    const s = readSummary(out);
    expect(s.samplesPerSec).toBeGreaterThan(0);
    expect(s.tokensPerSec).toBeCloseTo(s.samplesPerSec! * 8, 6);
    // each step's record too (the dashboard's tokens/s chart reads them)
    const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { step?: number; samplesPerSec?: number; tokensPerSec?: number })
      .filter((r) => r.step !== undefined && r.samplesPerSec !== undefined);
    expect(steps.length).toBeGreaterThan(0);
    for (const r of steps) expect(r.tokensPerSec).toBeCloseTo(r.samplesPerSec! * 8, 6);
    expect(s.testAccuracy).toBeNull();
    expect(s.testLoss).toBeGreaterThan(0);
    expect(train.stdout).toMatch(/tokens\/s\s+[\d,]+ \(median after warm-up\)/);
    expect(train.stdout).toMatch(/test loss\s+[\d.]+ \([\d.]+ bits per token\)/);
    // model FLOPs = steps × batch × seq × (6·N + 12·L·H·Q·T)
    expect(s.totalFlops).toBe(8 * 12 * 8 * (6 * s.params + 12 * 2 * 2 * 8 * 8));
  });

  it('dptrain sample continues the prompt with characters of the training text', async () => {
    const r = await runCli(['sample', out, '--prompt', 'And the', '--tokens', '40', '--seed', '3', '--backend', 'cpu']);
    expect(r.code, r.stderr).toBe(0);
    const text = r.stdout.replace(/\n$/, '');
    expect(text.startsWith('And the')).toBe(true);
    expect([...text].length).toBe(7 + 40);
    const alphabet = new Set(
      'In the beginning God created the heaven and the earth. And the earth was without form, and void — ',
    );
    for (const c of text) expect(alphabet.has(c), c).toBe(true);
    const again = await runCli([
      'sample',
      out,
      '--prompt',
      'And the',
      '--tokens',
      '40',
      '--seed',
      '3',
      '--backend',
      'cpu',
    ]);
    expect(again.stdout).toBe(r.stdout); // seeded
    // Streamed as it is made: the pieces, prompt first, are the whole text.
    const pieces: string[] = [];
    const flags = { prompt: 'And the', tokens: 40, seed: 3, temperature: 1, backend: 'cpu' as const };
    const whole = await sampleCommand(out, flags, (t) => pieces.push(t));
    expect(pieces[0]).toBe('And the');
    expect(pieces).toHaveLength(41);
    expect(pieces.join('')).toBe(whole);
    expect(`${whole}\n`).toBe(r.stdout);
  });

  it('sample at temperature 0 takes the likeliest token: the limit of small temperatures, whatever the seed', async () => {
    const flags = { prompt: 'And the', tokens: 20, seed: 3, temperature: 0, backend: 'cpu' as const };
    const greedy = await sampleCommand(out, flags);
    expect(await sampleCommand(out, { ...flags, seed: 11 })).toBe(greedy);
    expect(await sampleCommand(out, { ...flags, temperature: 1e-4 })).toBe(greedy);
    const r = await runCli(['sample', out, '--prompt', 'And the', '--tokens', '5', '--temperature', '-1']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('--temperature must be ≥ 0');
  });

  it('sample refuses, in one line: a prompt with a character outside the alphabet, a run that is not a gpt', async () => {
    const r = await runCli(['sample', out, '--prompt', 'Zebra', '--tokens', '5']);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`the character "Z" is not in the training text's alphabet`);
    const none = await runCli(['sample', dir, '--prompt', 'a']);
    expect(none.stderr).toContain('no model/dptrain-model.json');
  });

  it("plan --from-run uses the run's MFU with the same FLOPs per token", async () => {
    const r = await runCli(['plan', '--model', config, '--from-run', out, '--tokens', '1e6', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const p = JSON.parse(r.stdout) as { flopsPerToken: number; mfu: number; params: number };
    const s = readSummary(out);
    expect(p.flopsPerToken).toBe(6 * s.params + 12 * 2 * 2 * 8 * 8);
    expect(p.mfu).toBeGreaterThan(0);
    expect(p.mfu).toBe(s.mfu);
  });
});
