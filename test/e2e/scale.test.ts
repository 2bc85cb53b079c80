/** `dptrain scale`: one command for a scaling curve against a single-process baseline. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../helpers/cli.js';

describe('dptrain scale', () => {
  it('measures each worker count and the baseline, and writes scale.json, scale.md and SVG plots', async () => {
    const out = join(tempDir('scale'), 'out');
    const r = await runCli(['scale', '--config', join(__dirname, '../../examples/spirals.json'), '--workers', '2,1', '--mode', 'weak', '--steps', '30', '--batch-size', '64', '--backend', 'cpu', '--out', out], 180_000);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(readFileSync(join(out, 'scale.json'), 'utf8'));
    expect(s.mode).toBe('weak');
    expect(s.baseline.samplesPerSec).toBeGreaterThan(0);
    expect(s.rows.map((x: { workers: number }) => x.workers)).toEqual([1, 2]);
    expect(s.rows.map((x: { globalBatch: number }) => x.globalBatch)).toEqual([64, 128]);
    for (const row of s.rows) {
      expect(row.speedup).toBeCloseTo(row.samplesPerSec / s.baseline.samplesPerSec, 10);
      expect(row.efficiency).toBeCloseTo(row.speedup / row.workers, 10);
      expect(row.timeline.overheadMs.median).toBeGreaterThanOrEqual(0);
    }
    expect(readFileSync(join(out, 'scale.md'), 'utf8')).toMatch(/\| 2 \| 128 \| \d+ \| [\d.]+× \| [\d.]+ \|/);
    for (const f of ['throughput.svg', 'efficiency.svg', 'breakdown.svg']) {
      const svg = readFileSync(join(out, f), 'utf8');
      expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
      expect(svg.trim().endsWith('</svg>')).toBe(true);
    }
    expect(existsSync(join(out, 'workers-2', 'summary.json'))).toBe(true);
  }, 200_000);

  it('a bad worker list is one line', async () => {
    const r = await runCli(['scale', '--workers', '1,x']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('dptrain: CONFIG_INVALID: --workers 1,x: expected a list like 1,2,4');
  });
});
