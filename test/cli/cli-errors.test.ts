/**
 * Mistakes on the command line, as a user meets them through the built CLI: every bad flag,
 * unknown flag or unknown command exits 2 with one line `dptrain: CONFIG_INVALID: …` naming it
 * (README, Exit status), whether commander or dptrain refuses it; --help and --version still
 * print and exit 0; and plan, profile and scale refuse values they cannot use before working.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { profileCommand } from '../../cli/profile-cmd.js';
import { DptrainError } from '../../shared/util/errors.js';
import { type CliResult, runCli, tempDir } from '../helpers/cli.js';

const XOR = resolve(__dirname, '../../examples/xor.json');

/** Exit 2, nothing on stdout, and all of stderr one CONFIG_INVALID line matching `pattern`. */
function refused(r: CliResult, pattern: RegExp): string {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^dptrain: CONFIG_INVALID: /);
  expect(lines[0]).toMatch(pattern);
  return lines[0];
}

describe("commander's refusals are flag errors: exit 2, one line", () => {
  it.each([
    [['train', '--workers', '-1'], /--workers -1: expected an integer ≥ 1 \(see dptrain train --help\)$/],
    [['coordinator', '--join-timeout', '0'], /--join-timeout 0: expected an integer ≥ 1/],
    [['slice-shard'], /required option '-c, --config <file>' not specified/], // else sized for the default model
    [['train', '--backend', 'foo'], /--backend foo: allowed choices are auto, .*cpu/],
    [['train', '--unknown-flag'], /unknown option '--unknown-flag' \(see dptrain train --help\)$/],
    [['train', '--stpes', '3'], /unknown option '--stpes' \(Did you mean --steps\?\)/],
    [['train', '--lr', 'NaN'], /--lr NaN: expected a number/],
    [['train', '--checkpoint-every', '-1'], /--checkpoint-every -1: expected a non-negative integer/],
    [['train', '--workers'], /option '-w, --workers <n>' argument missing/],
    [['coordinator', '--listen', 'nonsense'], /--listen nonsense: expected HOST:PORT/],
    [['frobnicate'], /unknown command 'frobnicate' \(see dptrain --help\)$/],
    [['report', 'some-run'], /required option '--out <file>' not specified/],
    [['host-agent', '--workers', '0'], /--workers 0: expected an integer ≥ 1/],
  ])('%j', async (args, pattern) => {
    refused(await runCli(args), pattern);
  });

  it('--workers 0 and --workers -1 get the same refusal', async () => {
    const zero = refused(await runCli(['train', '--workers', '0']), /--workers 0:/);
    const minus = refused(await runCli(['train', '--workers', '-1']), /--workers -1:/);
    expect(zero.replace(' 0:', ' N:')).toBe(minus.replace(' -1:', ' N:'));
  });

  it('--help and --version print on stdout and exit 0', async () => {
    const version = (JSON.parse(readFileSync(resolve(__dirname, '../../package.json'), 'utf8')) as { version: string })
      .version;
    for (const flag of ['--version', '-V']) {
      const r = await runCli([flag]);
      expect([r.code, r.stdout, r.stderr]).toEqual([0, `${version}\n`, '']);
    }
    for (const args of [['--help'], ['train', '--help'], ['help', 'plan']]) {
      const r = await runCli(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/^Usage: dptrain/);
      expect(r.stderr).toBe('');
    }
  });

  it('a model that does not fit its data is a config error: exit 2, one MODEL_INVALID line, at plan and at train', async () => {
    const dir = tempDir('model-invalid');
    const job = join(dir, 'job.json');
    writeFileSync(
      job,
      JSON.stringify({
        data: { name: 'spirals', samples: 200 },
        model: { layers: [{ units: 3 }], loss: 'softmaxCrossEntropy' },
      }),
    );
    for (const args of [
      ['plan', '--config', job],
      ['train', '--config', job, '--workers', '1', '--out', join(dir, 'run')],
    ]) {
      const r = await runCli(args);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toBe('dptrain: MODEL_INVALID: model.layers[0].units is 3 but the dataset has 2 outputs\n');
    }
    expect(existsSync(join(dir, 'run'))).toBe(false);
  });

  it('runtime errors keep their own exit statuses', async () => {
    const r = await runCli(['train', '--resume', join(tempDir('noresume'), 'none')]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^dptrain: CHECKPOINT_MISSING: /);
  });
});

describe('dptrain profile refuses what it cannot time, up front', () => {
  it('--steps 0 and --batch 0: one line each, before a backend loads', async () => {
    refused(await runCli(['profile', '--config', XOR, '--steps', '0']), /--steps 0: expected an integer ≥ 1/);
    refused(await runCli(['profile', '--config', XOR, '--batch', '0']), /--batch 0: expected an integer ≥ 1/);
  });

  it('and so does the module, for callers other than the command line', async () => {
    const base = { config: XOR, backend: 'cpu' as const };
    for (const [f, pattern] of [
      [{ ...base, steps: 0 }, /--steps 0: expected an integer ≥ 1/],
      [{ ...base, steps: 1, batch: 0 }, /--batch 0: expected an integer from 1 to/],
      [{ ...base, steps: 1, batch: 2 ** 21 }, /--batch 2097152: expected an integer from 1 to 1048576/],
    ] as const) {
      const e = await profileCommand(f).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(DptrainError);
      expect((e as DptrainError).code).toBe('CONFIG_INVALID');
      expect((e as DptrainError).message).toMatch(pattern);
    }
  });
});

describe('dptrain plan refuses nonsense numbers and counts in the unit given', () => {
  const model = ['plan', '--params', '1e9', '--tokens', '1e9'];
  it.each([
    [['plan', '--params', '-5', '--tokens', '1e9', '--device', 'a100'], /--params -5: expected a number > 0/],
    [[...model, '--epochs', '-1'], /--epochs -1: expected a number > 0/],
    [[...model, '--devices', '0', '--device', 'a100'], /--devices 0: expected an integer ≥ 1/],
    [[...model, '--peak', '-1e12'], /--peak -1e12: expected a number > 0/],
    [['plan', '--params', '1e9', '--budget', '-5'], /--budget -5: expected a number > 0/],
    [['plan', '--params', '1e9', '--tokens', '0'], /--tokens 0: expected a number > 0/],
    [
      ['plan', '--params', '1e9', '--device', 'a200'],
      /--device a200 is not in the device table .*; give --peak instead$/,
    ],
    [['plan', '--config', XOR, '--tokens', '100'], /--tokens: the model of .*xor\.json counts samples; give --samples/],
    [
      ['plan', '--layers', '2', '--d-model', '8', '--heads', '2', '--seq', '4', '--vocab', '10', '--samples', '5'],
      /--samples: a transformer shape counts tokens; give --tokens/,
    ],
    [['plan', '--params', '1e6', '--tokens', '5', '--observed-samples-per-sec', '4'], /not both/],
  ])('%j', async (args, pattern) => {
    refused(await runCli(args), pattern);
  });

  it('--params with --samples counts per sample, in the table and in JSON', async () => {
    const t = await runCli(['plan', '--params', '1e6', '--samples', '1e6']);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/6·N FLOPs per sample/);
    expect(t.stdout).toMatch(/FLOPs per sample\s+6,000,000/);
    expect(t.stdout).toMatch(/\n\s+samples\s+1\.00 M/);
    expect(t.stdout).not.toMatch(/token/);
    const j = await runCli(['plan', '--params', '1e6', '--samples', '1e6', '--json']);
    expect(j.code, j.stderr).toBe(0);
    const out = JSON.parse(j.stdout) as Record<string, unknown>;
    expect(out.unit).toBe('sample');
    expect(out.flopsPerSample).toBe(6e6);
    expect(out).not.toHaveProperty('flopsPerToken');
  });
});

describe('dptrain scale refuses points that cannot work before running any', () => {
  it('--steps 0, or a config of 0 steps: one line, nothing written', async () => {
    const out = join(tempDir('scale-s0'), 'out');
    refused(
      await runCli(['scale', '--workers', '1', '--config', XOR, '--steps', '0', '--out', out]),
      /--steps 0: expected an integer ≥ 1/,
    );
    const job = join(tempDir('scale-s0-job'), 'job.json');
    writeFileSync(job, JSON.stringify({ ...JSON.parse(readFileSync(XOR, 'utf8')), steps: 0 }));
    refused(
      await runCli(['scale', '--workers', '1', '--config', job, '--out', out]),
      /steps 0: each scaling point must train at least one step; give --steps N ≥ 1/,
    );
    expect(existsSync(out)).toBe(false);
  });

  it("a weak point whose global batch is beyond a job's: named, nothing written", async () => {
    const out = join(tempDir('scale-big'), 'out');
    const args = ['scale', '--workers', '1,4', '--config', XOR, '--per-worker-batch', '600000', '--steps', '2'];
    refused(
      await runCli([...args, '--out', out]),
      /the point of 4 workers, 600000 per worker: batchSize must be an integer ≥ 1 and ≤ 1048576, got 2400000/,
    );
    expect(existsSync(out)).toBe(false);
  });
});
