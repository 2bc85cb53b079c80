/**
 * Live compute accounting through the real CLI: the FLOPs a run reports are the analytic
 * count times the samples it consumed, exactly; a budget stops the run at the budget with
 * the model saved and exit status 0.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { denseFlopsPerSample } from '../../shared/accounting/flops.js';
import { parseConfig } from '../../shared/job/config.js';
import { jobLayout } from '../../shared/job/job-layout.js';
import type { DenseLayout } from '../../shared/models/dense.js';
import { readMetrics, readSummary, runCli, tempDir } from '../helpers/cli.js';

const JOB = {
  data: { name: 'spirals', samples: 400 },
  model: { layers: [{ units: 16, activation: 'relu' }, { units: 2 }], loss: 'softmaxCrossEntropy' },
  steps: 12,
  batchSize: 32,
  evalEvery: 0,
};

function perSample(): number {
  const cfg = parseConfig(JOB);
  return denseFlopsPerSample(jobLayout(cfg) as DenseLayout).training;
}

describe('compute accounting in a run', () => {
  it('cumulativeFlops after S steps = S × global batch × per-sample training FLOPs, exactly', async () => {
    const dir = tempDir('acct');
    writeFileSync(join(dir, 'job.json'), JSON.stringify(JOB));
    const r = await runCli([
      'train',
      '--config',
      join(dir, 'job.json'),
      '--backend',
      'cpu',
      '--peak-flops',
      '1e9',
      '--out',
      join(dir, 'run'),
    ]);
    expect(r.code, r.stderr).toBe(0);
    const f = perSample();
    // 2·(2·16 + 16·2) + (16 + 2) + 16 + 2 = 164 forward; × 3 = 492 per sample
    expect(f).toBe(492);
    const m = readMetrics(join(dir, 'run'));
    m.forEach((rec, i) => {
      expect(rec.flops).toBe(32 * f);
      expect(rec.cumulativeFlops).toBe((i + 1) * 32 * f);
      expect(rec.mfu).toBeCloseTo((rec.modelFlopsPerSec as number) / 2e9, 12); // 2 workers × 1e9 declared
    });
    const s = readSummary(join(dir, 'run'));
    expect(s.totalFlops).toBe(12 * 32 * f);
    expect(s.hardwareFlops).toBeGreaterThan(s.totalFlops); // the final evaluation's forward passes
    expect(s.peakSource).toBe('declared');
    expect(s.peakFlops).toBe(2e9);
    expect(s.attainableFlops).toBeGreaterThan(0);
    expect(s.stoppedBy).toBe('steps');
  });

  it('a small budget stops the run at the budget, saves the model and exits 0', async () => {
    const dir = tempDir('budget');
    writeFileSync(join(dir, 'job.json'), JSON.stringify(JOB));
    const budget = 5.5 * 32 * perSample(); // room for 5 steps, not 6
    const out = join(dir, 'run');
    const r = await runCli([
      'train',
      '--config',
      join(dir, 'job.json'),
      '--backend',
      'cpu',
      '--budget',
      String(budget),
      '--out',
      out,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/stopped at the compute budget after 5 steps \(model saved\)/);
    const s = readSummary(out);
    expect(s).toMatchObject({ steps: 5, stoppedBy: 'budget', budget });
    expect(s.budgetUsed).toBeCloseTo(5 / 5.5, 12);
    expect(existsSync(join(out, 'model', 'model.json'))).toBe(true);
    expect(readMetrics(out)).toHaveLength(5);
    // Resumed with the same budget, it has no step to take: refused, its summary kept.
    const summary = readFileSync(join(out, 'summary.json'), 'utf8');
    const again = await runCli(['train', '--resume', out, '--backend', 'cpu']);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(
      /dptrain: CONFIG_INVALID: the run already stopped at its compute budget \([\d.e+]+ of [\d.e+]+ FLOPs\): raise --budget to continue it\n$/,
    );
    expect(readFileSync(join(out, 'summary.json'), 'utf8')).toBe(summary);
  });

  it('budget policy "warn" keeps training past the budget and says so once', async () => {
    const dir = tempDir('warn');
    writeFileSync(join(dir, 'job.json'), JSON.stringify({ ...JOB, steps: 8 }));
    const budget = 2 * 32 * perSample();
    const out = join(dir, 'run');
    const r = await runCli([
      'train',
      '--config',
      join(dir, 'job.json'),
      '--backend',
      'cpu',
      '--budget',
      String(budget),
      '--budget-policy',
      'warn',
      '--out',
      out,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const s = readSummary(out);
    expect(s.steps).toBe(8);
    expect(s.budgetUsed).toBe(4);
    for (const pct of [50, 80, 95, 100])
      expect(r.stderr.match(new RegExp(`compute budget ${pct}% used`, 'g'))).toHaveLength(1);
  });

  it('--budget-device-hours without a peak is one line naming what to add', async () => {
    const r = await runCli(['train', '--budget-device-hours', '2']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/budgetDeviceHours needs a peak: set compute.peakFlops or compute.device/);
  });
});
