/**
 * --compress topk: a compressed run trains (its loss falls, and ends within a stated factor of
 * the uncompressed run's), summary.json says it was lossy and what it sent, the default sends
 * dense gradients, and the combinations it cannot serve are refused in one line naming the fix.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readMetrics, readSummary, runCli, SPIRALS, tempDir, trainSpirals } from '../helpers/cli.js';

const STEPS = 300;

async function train(extra: string[]) {
  const out = await trainSpirals('compress', STEPS, ['--no-shared-memory', ...extra]);
  return { summary: readSummary(out), metrics: readMetrics(out) };
}

describe('--compress', () => {
  it('top-k with error feedback trains, and summary.json reports it as lossy', async () => {
    const dense = await train([]);
    expect(dense.summary.compression).toEqual({ kind: 'none', lossy: false });
    const topk = await train(['--compress', 'topk:0.05']);
    const s = topk.summary;
    const n = s.params;
    const k = Math.ceil(0.05 * n);
    expect(s.compression).toMatchObject({
      kind: 'topk',
      lossy: true,
      errorFeedback: true,
      parameters: { ratio: 0.05, k },
    });
    const report = s.compression as Extract<typeof s.compression, { lossy: true }>;
    // k indices and k values per result, against n float32 values: whatever the number of results.
    expect(report.ratio).toBeCloseTo((2 * k) / n, 12);
    expect(report.compressedBytesPerStep).toBeGreaterThanOrEqual(2 * 8 * k); // two workers' results at least
    expect(s.wireBytesPerStep!).toBeLessThan(dense.summary.wireBytesPerStep!);
    // It trains: the loss falls far below the first steps', and the test loss ends within 4× the
    // dense run's (top-k at 5% under Adam lags the dense run, it does not stall).
    const first = (topk.metrics[0].loss as number) ?? Number.NaN;
    expect(s.finalLoss!).toBeLessThan(first / 3);
    expect(s.testLoss!).toBeLessThan(4 * dense.summary.testLoss!);
    expect(s.testAccuracy!).toBeGreaterThanOrEqual(0.9);
  }, 240_000);

  it('is refused in one line where it cannot help or cannot work', async () => {
    const dir = tempDir('compress-refused');
    const shm = await runCli(['train', '--config', SPIRALS, '--steps', '1', '--compress', 'topk', '--out', dir]);
    expect(shm.code).not.toBe(0);
    expect(shm.stderr.trim().split('\n')).toHaveLength(1);
    expect(shm.stderr).toMatch(/--no-shared-memory/);
    const sliced = await runCli([
      'coordinator',
      '--config',
      SPIRALS,
      '--listen',
      '127.0.0.1:0',
      '--compress',
      'topk',
      '--slice-shard',
      'ws://127.0.0.1:9',
      '--out',
      join(dir, 'sliced'),
    ]);
    expect(sliced.code).not.toBe(0);
    expect(sliced.stderr.trim().split('\n')).toHaveLength(1);
    expect(sliced.stderr).toMatch(/--slice-shard: .*leave compression off/);
    const bad = await runCli(['train', '--config', SPIRALS, '--compress', 'powersgd', '--out', join(dir, 'bad')]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/compression\.kind must be one of none, topk/);
  }, 120_000);
});
