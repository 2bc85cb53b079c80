/** `dptrain plan`: the calculator through its command line and its module. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { planCommand, type PlanFlags } from '../../cli/plan-cmd.js';
import { deviceNames } from '../../shared/accounting/devices.js';
import { expectCode } from '../helpers/expect-code.js';
import { runCli, tempDir } from '../helpers/cli.js';

const base: PlanFlags = { bias: true, tied: true, epochs: 1, precision: 'bf16' };

describe('dptrain plan', () => {
  it('--json for GPT-3 175B on 300B tokens on 1024 A100s at 40% MFU', async () => {
    const r = await runCli([
      'plan',
      '--params',
      '174.6e9',
      '--tokens',
      '300e9',
      '--device',
      'a100',
      '--devices',
      '1024',
      '--mfu',
      '0.4',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.flopsPerToken).toBe(6 * 174.6e9);
    expect(Number(j.trainingFlops.toPrecision(3))).toBe(3.14e23);
    expect(Number(j.pfDays.toPrecision(3))).toBe(3640);
    // device-hours = 3.1428e23 / (312e12 · 0.4) / 3600 = 699,519; wall = that / 1024 hours
    expect(j.deviceHours).toBeCloseTo(3.1428e23 / (312e12 * 0.4) / 3600, 6);
    expect(j.wallSeconds).toBeCloseTo((j.deviceHours * 3600) / 1024, 6);
    expect(j.mfu).toBe(0.4);
    for (const k of ['trainingFlops', 'pfDays', 'deviceHours', 'wallSeconds', 'mfu']) expect(j).toHaveProperty(k);
    expect(j.optimal).toBeNull();
  });

  it('a transformer shape: nanoGPT GPT-2 124M per-token FLOPs, and a budget gives the compute-optimal split', () => {
    const { result, text } = planCommand({
      ...base,
      layers: 12,
      dModel: 768,
      heads: 12,
      seq: 1024,
      vocab: 50257,
      bias: false,
      tokens: 9e9,
      device: 'h100',
      budget: 1.2e21,
    });
    expect(result.flopsPerItem).toBe(859_272_192);
    expect(result.params).toBe(124_337_664);
    // N = √(1.2e21 / 120) = 3.162e9; D = 20·N
    expect(result.optimal!.params).toBeCloseTo(Math.sqrt(1e19), 0);
    expect(result.optimal!.tokens).toBeCloseTo(20 * Math.sqrt(1e19), -1);
    expect(text).toMatch(/compute-optimal\s+3\.16 G parameters on 63\.2 G tokens/);
  });

  it('MFU from an observed throughput (PaLM 540B at 6·N per token: 45.7%, PaLM App. B)', () => {
    const { result, text } = planCommand({
      ...base,
      params: 540e9,
      observedTokensPerSec: 238.3e3,
      devices: 6144,
      peak: 275e12,
    });
    expect((result.mfu! * 100).toFixed(1)).toBe('45.7');
    expect(text).toMatch(/MFU\s+45\.7% \(from the observed throughput\)/);
  });

  it('a dptrain job config: FLOPs per sample of its dense model', () => {
    const dir = tempDir('plan');
    const file = join(dir, 'job.json');
    writeFileSync(file, JSON.stringify({}));
    const { result } = planCommand({ ...base, model: file, samples: 8500, epochs: 15, peak: 1e10, mfu: 0.5 });
    expect(result.unit).toBe('sample');
    expect(result.flopsPerItem).toBe(1_410_876); // the default MNIST MLP, hand-counted in flops.test.ts
    expect(result.trainingFlops).toBe(1_410_876 * 8500 * 15);
  });

  it('--config alone plans the job as configured: its steps × batch, declared hardware and budget', async () => {
    const file = join(tempDir('plan-job'), 'job.json');
    const compute = { device: 't4', precision: 'fp32', budgetDeviceHours: 2 };
    writeFileSync(file, JSON.stringify({ steps: 300, batchSize: 64, accumulate: 2, compute }));
    const r = await runCli(['plan', '--config', file, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    const samples = 300 * 64 * 2;
    expect(j.flopsPerItem).toBe(1_410_876);
    expect(j.trainingFlops).toBe(1_410_876 * samples);
    expect(j.peakFlops).toBe(8.1e12); // T4 fp32, the device table
    expect(j.budget).toBe(2 * 3600 * 8.1e12);
    const { text } = planCommand({ ...base, config: file });
    expect(text).toMatch(/samples\s+38\.4 k \(the job's 300 steps × batch 128\)/);
    expect(text).toMatch(/hardware\s+1 × 8\.10 TFLOP\/s peak \(.*job\.json: compute\)/);
    // Flags still win over the job: a sample count, a device, a budget.
    const given = planCommand({ ...base, config: file, samples: 1000, device: 'h100', budget: 1e18 }).result;
    expect(given.trainingFlops).toBe(1_410_876 * 1000);
    expect(given.peakFlops).toBe(989e12);
    expect(given.budget).toBe(1e18);
    // --model, the older name, reads the same file.
    expect(planCommand({ ...base, model: file }).result.trainingFlops).toBe(1_410_876 * samples);
  });

  it('--from-run takes the measured MFU and the hardware of a finished run', () => {
    const dir = join(tempDir('fromrun'), 'run');
    mkdirSync(dir);
    writeFileSync(join(dir, 'summary.json'), JSON.stringify({ mfu: 0.123, workers: 2, peakFlops: 4e10 }));
    const { result, text } = planCommand({ ...base, params: 1e6, tokens: 1e9, fromRun: dir });
    expect(result.mfu).toBe(0.123);
    expect(result.devices).toBe(2);
    expect(result.peakFlops).toBe(2e10);
    expect(text).toMatch(/MFU\s+12\.3% \(measured in/);
  });

  it('without hardware: training FLOPs and PF-days, the rest null and named in the table', async () => {
    const r = await runCli(['plan', '--params', '1.3e9', '--tokens', '26e9', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.trainingFlops).toBe(6 * 1.3e9 * 26e9);
    expect(j.pfDays).toBeCloseTo((6 * 1.3e9 * 26e9) / 8.64e19, 6);
    expect(j.peakFlops).toBeNull();
    expect(j.deviceHours).toBeNull();
    expect(j.wallSeconds).toBeNull();
    const { text } = planCommand({ ...base, params: 1.3e9, tokens: 26e9 });
    expect(text).toMatch(/hardware\s+none given \(--device NAME .* or --peak FLOPS\)/);
    expect(text).toMatch(/device-hours\s+needs the hardware/);
  });

  it('a budget alone: the compute-optimal split, with no model', async () => {
    const r = await runCli(['plan', '--budget', '1e21', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.optimal.params).toBeCloseTo(Math.sqrt(1e21 / 120), 0);
    expect(j.optimal.tokens).toBeCloseTo(20 * Math.sqrt(1e21 / 120), -1);
    expect(j.flopsPerItem).toBeNull();
    expect(j.trainingFlops).toBeNull();
    const { text } = planCommand({ ...base, budget: 1e21 });
    expect(text).toMatch(/model\s+none given/);
    expect(text).toMatch(/compute-optimal\s+2\.89 G parameters on 57\.7 G tokens/);
  });

  it('MFU from an observed throughput needs the hardware, and says so', () => {
    const { result, text } = planCommand({ ...base, params: 1e9, observedTokensPerSec: 1e4 });
    expect(result.mfu).toBeNull();
    expect(text).toMatch(/MFU\s+needs the model and the hardware/);
  });

  it('mistakes name what to give', async () => {
    expect(expectCode(() => planCommand({ ...base, tokens: 1e9, peak: 1e12 }), 'CONFIG_INVALID')).toMatch(
      /give a model \(--params N, .*\) or a --budget/,
    );
    expect(expectCode(() => planCommand({ ...base, params: 1e9, model: 'job.json' }), 'CONFIG_INVALID')).toMatch(
      /give the model one way/,
    );
    expect(expectCode(() => planCommand({ ...base, config: 'a.json', model: 'b.json' }), 'CONFIG_INVALID')).toMatch(
      /--model is the older name of --config: give one of them/,
    );
    expect(expectCode(() => planCommand({ ...base, layers: 2, dModel: 8, tokens: 1 }), 'CONFIG_INVALID')).toMatch(
      /needs all of/,
    );
    const r = await runCli(['plan', '--params', '1e9', '--device', 'a100', '--mfu', '7']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('dptrain: CONFIG_INVALID: --mfu must be in (0, 1], got 7');
  });

  it('a transformer shape whose d_model is not a multiple of heads is refused, as in a config, unless --head-dim is given', () => {
    const shape = { ...base, layers: 2, dModel: 65, heads: 4, seq: 16, vocab: 10, tokens: 1e6 };
    expect(expectCode(() => planCommand(shape), 'CONFIG_INVALID')).toBe(
      '--d-model (65) must be a multiple of --heads (4), or give --head-dim for heads of another width',
    );
    expect(planCommand({ ...shape, headDim: 16 }).result.flopsPerItem).toBeGreaterThan(0);
  });

  it('an MFU over 100% from an observed throughput is flagged, in the table and in JSON', async () => {
    const { result, text } = planCommand({
      ...base,
      params: 1e9,
      tokens: 1e9,
      observedTokensPerSec: 1e5,
      device: 'a100',
    });
    expect(result.mfu).toBeGreaterThan(1);
    expect(result.warnings).toHaveLength(1);
    expect(text).toMatch(
      /WARNING\s+MFU over 100% of the peak: check that the observed throughput is of all 1 device together/,
    );
    expect(
      planCommand({ ...base, params: 1e9, tokens: 1e9, observedTokensPerSec: 1e3, device: 'a100' }).result.warnings,
    ).toEqual([]);
    const r = await runCli([
      'plan',
      '--params',
      '1e9',
      '--observed-tokens-per-sec',
      '1e5',
      '--device',
      'a100',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { warnings: string[] }).warnings[0]).toMatch(/^MFU over 100% of the peak/);
  });

  it('flags that say one thing twice are refused: --mfu with an observed throughput, --peak with --device', () => {
    expect(
      expectCode(
        () => planCommand({ ...base, params: 1e9, tokens: 1e9, mfu: 0.5, observedTokensPerSec: 1e5, device: 'a100' }),
        'CONFIG_INVALID',
      ),
    ).toBe('--mfu and --observed-tokens-per-sec: give one, not both (the throughput gives the MFU)');
    expect(
      expectCode(
        () => planCommand({ ...base, params: 1e9, tokens: 1e9, device: 'a100', peak: 1e12 }),
        'CONFIG_INVALID',
      ),
    ).toBe('--peak and --device a100: give one, not both');
  });

  it('the device table names tpu-v4 as bf16 only, in refusals and in the hardware hint', () => {
    expect(deviceNames()).toBe('a100, h100, h200, v100, t4, tpu-v4 (bf16 only)');
    expect(
      expectCode(() => planCommand({ ...base, params: 1e9, tokens: 1e9, device: 'a200' }), 'CONFIG_INVALID'),
    ).toContain('(a100, h100, h200, v100, t4, tpu-v4 (bf16 only))');
    expect(planCommand({ ...base, params: 1e9, tokens: 1e9 }).text).toContain('tpu-v4 (bf16 only)) or --peak FLOPS');
  });

  it("a job whose data is a module (the README's custom example): its describe() gives the shape", async () => {
    const r = await runCli(['plan', '--config', join(__dirname, '../../examples/custom/job.json'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout) as { unit: string; trainingFlops: number };
    expect(plan.unit).toBe('sample');
    expect(plan.trainingFlops).toBeGreaterThan(0);
  });
});
