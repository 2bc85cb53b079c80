/** The shipped examples learn what they claim to, through the real CLI and worker processes. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSummary, runCli, tempDir } from '../helpers/cli.js';

const ROOT = join(__dirname, '../..');

describe('training converges', () => {
  it('XOR (examples/xor.json, hidden layer) reaches loss < 0.05 and 100% accuracy', async () => {
    const out = tempDir('xor');
    const r = await runCli(['train', '--config', join(ROOT, 'examples/xor.json'), '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const s = readSummary(out);
    expect(s.finalLoss).toBeLessThan(0.05);
    expect(s.testLoss).toBeLessThan(0.05);
    expect(s.testAccuracy).toBe(1);
  });

  it('the default MNIST MLP on 2 workers reaches ≥ 90% test accuracy (300 steps)', async () => {
    const out = tempDir('mnist');
    const r = await runCli(['train', '--workers', '2', '--steps', '300', '--out', out], 180_000);
    expect(r.code, r.stderr).toBe(0);
    const s = readSummary(out);
    expect(s.workers).toBe(2);
    expect(s.testAccuracy).toBeGreaterThanOrEqual(0.9);
    // The final summary a user sees names the figures.
    expect(r.stdout).toMatch(/test accuracy\s+\d+\.\d+%/);
    expect(r.stdout).toMatch(/samples\/s\s+[\d,]+/);
  }, 200_000);
});
