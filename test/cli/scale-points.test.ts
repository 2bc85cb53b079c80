/**
 * `dptrain scale`'s points: every worker of a point computes (one virtual shard per worker unless
 * the config sets shards), a point where fewer computed is read from its metrics and marked, and
 * a point too short to leave out its warm-up is refused.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { computingWorkers, MIN_POINT_STEPS, pointJob, workersCell } from '../../cli/scale-cmd.js';
import { warmupSteps } from '../../coordinator/summary.js';
import { parseConfig } from '../../shared/job/config.js';
import { runCli, SPIRALS, tempDir } from '../helpers/cli.js';

describe("scale's points", () => {
  it('cut the batch one shard per worker unless the config sets shards', () => {
    expect(pointJob(parseConfig({}), 64).shards).toBe('per-worker');
    expect(pointJob(parseConfig({ shards: 2 }), 64).shards).toBe(2);
    expect(pointJob(parseConfig({ shards: 'auto' }), 64).shards).toBe('auto');
  });

  it("count the workers that computed: the median of each step's workers after warm-up", () => {
    const lines = (ws: number[]) => ws.map((w, i) => JSON.stringify({ step: i + 1, workers: w })).join('\n') + '\n';
    expect(computingWorkers(lines([1, 4, 4, 4, 4, 4, 4, 4, 4, 4]))).toBe(4);
    expect(computingWorkers(lines([2, 2, 2, 2, 2, 2, 2, 2, 2, 3]))).toBe(2);
    expect(workersCell({ workers: 4, computingWorkers: 2 })).toBe('4 (2 computing)');
    expect(workersCell({ workers: 4, computingWorkers: 4 })).toBe('4');
  });

  it('need enough steps to leave a warm-up out; fewer is one line, nothing written', async () => {
    expect(warmupSteps(MIN_POINT_STEPS)).toBeGreaterThanOrEqual(1);
    expect(warmupSteps(MIN_POINT_STEPS - 1)).toBe(0);
    const out = join(tempDir('scale-short'), 'out');
    const r = await runCli(['scale', '--workers', '1', '--config', SPIRALS, '--steps', '1', '--out', out]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toBe(
      'dptrain: CONFIG_INVALID: steps 1: each scaling point needs at least 10 steps, so that its warm-up (the first 10%) is left out of its samples/s; give --steps 10 or more\n',
    );
    expect(existsSync(out)).toBe(false);
  });
});
