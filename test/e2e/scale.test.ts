/** `dptrain scale`: one command for a scaling curve against a single-process baseline. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, SPIRALS, tempDir } from '../helpers/cli.js';

/** `dptrain scale` on the spirals example, cpu backend, into `out`. */
const scaleSpirals = (flags: string[], out: string) =>
  runCli(['scale', '--config', SPIRALS, '--backend', 'cpu', ...flags, '--out', out], 180_000);

describe('dptrain scale', () => {
  it('measures each worker count at each per-worker batch against its own baseline, and writes scale.json, scale.md and SVG plots', async () => {
    const out = join(tempDir('scale'), 'out');
    const r = await scaleSpirals(
      ['--workers', '2,1', '--mode', 'weak', '--steps', '30', '--per-worker-batch', '64,32'],
      out,
    );
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(readFileSync(join(out, 'scale.json'), 'utf8'));
    expect(s.mode).toBe('weak');
    expect(s.baselines.map((b: { batch: number }) => b.batch)).toEqual([32, 64]);
    expect(s.baseline).toEqual(s.baselines[0]);
    for (const b of s.baselines) {
      // efficiency is against the engine's own single process; plain TF.js is reported beside it
      expect(b.samplesPerSec).toBe(b.singleProcess.engine);
      for (const k of ['engine', 'layers-minimize', 'layers-fit']) expect(b.singleProcess[k]).toBeGreaterThan(0);
    }
    const rows = s.rows as Array<{
      workers: number;
      perWorkerBatch: number;
      globalBatch: number;
      samplesPerSec: number;
      speedup: number;
      efficiency: number;
      timeline: { overheadMs: { median: number } };
    }>;
    expect(rows.map((x) => [x.workers, x.perWorkerBatch, x.globalBatch])).toEqual([
      [1, 32, 32],
      [2, 32, 64],
      [1, 64, 64],
      [2, 64, 128],
    ]);
    for (const row of rows) {
      const base = s.baselines.find((b: { batch: number }) => b.batch === row.perWorkerBatch).samplesPerSec;
      expect(row.speedup).toBeCloseTo(row.samplesPerSec / base, 10);
      expect(row.efficiency).toBeCloseTo(row.speedup / row.workers, 10);
      expect(row.timeline.overheadMs.median).toBeGreaterThanOrEqual(0);
    }
    const md = readFileSync(join(out, 'scale.md'), 'utf8');
    expect(md).toMatch(/\| 2 \| 64 \| 128 \| \d+ \| [\d.]+× \| [\d.]+ \|/);
    expect(md).toContain('tfjs-layers model.fit');
    expect(md).toMatch(/\| 64 \| \d+ \| \d+ \| \d+ \|/);
    expect(readFileSync(join(out, 'throughput.svg'), 'utf8')).toContain('32 per worker');
    for (const f of ['throughput.svg', 'efficiency.svg', 'breakdown.svg']) {
      const svg = readFileSync(join(out, f), 'utf8');
      expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
      expect(svg.trim().endsWith('</svg>')).toBe(true);
    }
    expect(existsSync(join(out, 'batch-64-workers-2', 'summary.json'))).toBe(true);
    // The report of dptrain report, with every run of the sweep and the scaling table and plots.
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    const runs = JSON.parse(/<script id="runs" type="application\/json">(.*?)<\/script>/s.exec(html)![1]) as Array<{
      name: string;
      steps: unknown[];
    }>;
    expect(runs.map((x) => x.name)).toEqual([
      'batch-32-workers-1',
      'batch-32-workers-2',
      'batch-64-workers-1',
      'batch-64-workers-2',
    ]);
    for (const run of runs) expect(run.steps).toHaveLength(30);
    expect(html).toMatch(/<table class="scale-table">.*<td>2<\/td><td>64<\/td><td>128<\/td>/s);
    expect(html.match(/<svg xmlns/g)).toHaveLength(3);
  }, 200_000);

  it('--coordinator-worker: each point runs one worker inside its coordinator, and scale.json and scale.md say so', async () => {
    const out = join(tempDir('scale-cw'), 'out');
    const r = await scaleSpirals(['--workers', '2', '--steps', '20', '--coordinator-worker'], out);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'scale.json'), 'utf8')).coordinatorWorker).toBe(true);
    expect(readFileSync(join(out, 'scale.md'), 'utf8')).toMatch(
      /One worker of each point ran inside the coordinator's process/,
    );
    const log = readFileSync(join(out, 'workers-2', 'log.jsonl'), 'utf8');
    expect(log).toMatch(/"workerName":"worker-0","host":"[^"]+","remote":"local#1"/);
  }, 180_000);

  it('--host-agents through the local launcher: each point runs its workers behind host agents', async () => {
    const out = join(tempDir('scale-agents'), 'out');
    const r = await scaleSpirals(
      ['--workers', '4', '--steps', '20', '--launcher', 'local', '--host-agents', '--agent-workers', '2'],
      out,
    );
    expect(r.code, r.stderr).toBe(0);
    // 4 worker processes over 2 links to the coordinator.
    expect(JSON.parse(readFileSync(join(out, 'workers-4', 'summary.json'), 'utf8'))).toMatchObject({
      workers: 4,
      members: 2,
    });
  }, 180_000);

  it('--host-agents without a launcher is one line, before anything is written', async () => {
    const out = join(tempDir('scale-agents-refused'), 'out');
    const r = await scaleSpirals(['--workers', '2', '--host-agents'], out);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'dptrain: CONFIG_INVALID: --host-agents: host agents start through a launcher; add --launcher local (or --hosts H:N,…)\n',
    );
    expect(existsSync(out)).toBe(false);
  });

  it('a bad worker list is one line', async () => {
    const r = await runCli(['scale', '--workers', '1,x']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('dptrain: CONFIG_INVALID: --workers 1,x: expected a list like 1,2,4');
  });

  it('a bad batch list, or a batch list in strong mode, is one line', async () => {
    const bad = await runCli(['scale', '--workers', '1', '--per-worker-batch', '64,0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe('dptrain: CONFIG_INVALID: --per-worker-batch 64,0: expected a list like 64,128,256');
    const strong = await runCli(['scale', '--workers', '1', '--mode', 'strong', '--per-worker-batch', '64']);
    expect(strong.code).toBe(2);
    expect(strong.stderr.trim()).toBe(
      'dptrain: CONFIG_INVALID: --per-worker-batch is for --mode weak; in strong mode the global batch is --batch-size',
    );
  });
});
