/**
 * `dptrain scale` measures the workers it names: with shards unset each point's batch is cut one
 * shard per worker (spirals' 192-sample batch would otherwise make 2 leaves for 3 workers), and a
 * config whose shards leave workers idle gets its points marked in scale.json and scale.md.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readMetrics, runCli, SPIRALS, tempDir } from '../helpers/cli.js';

interface Scale {
  shards: unknown;
  rows: Array<{ workers: number; computingWorkers: number }>;
}

const scale = (config: string, out: string) =>
  runCli(['scale', '--config', config, '--backend', 'cpu', '--workers', '3', '--steps', '10', '--out', out], 240_000);

describe('dptrain scale: every worker of a point computes, or the point says how many did', () => {
  it('shards unset: one per worker, and all 3 workers compute', async () => {
    const out = join(tempDir('scale-shards'), 'out');
    const r = await scale(SPIRALS, out);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(readFileSync(join(out, 'scale.json'), 'utf8')) as Scale;
    expect(s.shards).toBe('per-worker');
    expect(s.rows.map((x) => [x.workers, x.computingWorkers])).toEqual([[3, 3]]);
    expect(Math.max(...readMetrics(join(out, 'workers-3')).map((m) => m.workers as number))).toBe(3);
    expect(readFileSync(join(out, 'scale.md'), 'utf8')).not.toContain('computing');
  }, 300_000);

  it("a config's shards of 2 for 3 workers: the point is marked, in scale.json, scale.md and on the console", async () => {
    const dir = tempDir('scale-shards-2');
    const job = join(dir, 'job.json');
    writeFileSync(job, JSON.stringify({ ...JSON.parse(readFileSync(SPIRALS, 'utf8')), shards: 2 }));
    const out = join(dir, 'out');
    const r = await scale(job, out);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(readFileSync(join(out, 'scale.json'), 'utf8')) as Scale;
    expect(s.shards).toBe(2);
    expect(s.rows.map((x) => [x.workers, x.computingWorkers])).toEqual([[3, 2]]);
    const md = readFileSync(join(out, 'scale.md'), 'utf8');
    expect(md).toMatch(/^\| 3 \(2 computing\) \| 64 \| 192 \|/m);
    expect(md).toContain('WARNING: a point marked "(K computing)" had only K of its workers computing');
    expect(r.stdout).toContain('| 3 (2 computing) |');
    expect(r.stderr).toContain('scale: WARNING: the point of 3 workers ran with 2 computing');
  }, 300_000);
});
