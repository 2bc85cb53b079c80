/**
 * Data parallelism must not change the optimization: N worker processes training on shards of
 * the global batch land on the parameters a single process reaches on the full batch with
 * tf.train.adam. Workers and reference both use the cpu backend, so the comparison measures
 * the distribution (sharding, reduction, central Adam), not two backends' rounding.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readSummary, readWeights, runCli } from '../helpers/cli.js';
import { maxRelDiff, referenceTrain, tensorRelDiff } from '../helpers/reference.js';
import { equivalenceSetup, EQUIV_JOB } from '../helpers/equivalence-job.js';
import '@tensorflow/tfjs-backend-wasm';

const JOB = EQUIV_JOB;

describe('N workers equal one process on the full batch', () => {
  const { dir, file: configFile, cfg, slots, init } = equivalenceSetup('equiv');
  let reference: Float32Array;

  beforeAll(async () => {
    reference = await referenceTrain(cfg);
  });

  it.each([1, 2, 3])('%i worker process(es), 20 steps: max relative difference ≤ 1e-5', async (n) => {
    const out = join(dir, `w${n}`);
    const r = await runCli(['train', '--config', configFile, '--workers', String(n), '--backend', 'cpu', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(readSummary(out).workers).toBe(n);
    const ours = readWeights(out);
    expect(ours.length).toBe(reference.length);
    const diff = tensorRelDiff(ours, reference, slots);
    // Reported so the figure is visible in the test log, not only pass/fail.
    console.log(`workers=${n}: tensor-relative max diff ${diff.toExponential(2)}, elementwise (floor 1e-3) ${maxRelDiff(ours, reference).toExponential(2)}`);
    expect(diff).toBeLessThanOrEqual(1e-5);
    // And it trained: the parameters moved well away from the initialization.
    expect(tensorRelDiff(ours, init, slots)).toBeGreaterThan(1e-2);
  });

  it('gradient accumulation: batch 25 × 2 micro-steps equals batch 50 in one', async () => {
    const a = join(dir, 'acc1');
    const b = join(dir, 'acc2');
    const accFile = join(dir, 'acc.json');
    writeFileSync(accFile, JSON.stringify({ ...JOB, batchSize: 25, accumulate: 2 }));
    const [ra, rb] = [
      await runCli(['train', '--config', configFile, '--workers', '2', '--backend', 'cpu', '--out', a]),
      await runCli(['train', '--config', accFile, '--workers', '2', '--backend', 'cpu', '--out', b]),
    ];
    expect(ra.code, ra.stderr).toBe(0);
    expect(rb.code, rb.stderr).toBe(0);
    expect(tensorRelDiff(readWeights(b), readWeights(a), slots)).toBeLessThanOrEqual(1e-5);
  });
});

/**
 * On wasm the workers take matMul gradients through materialized transposes (shared/ops/matmul.ts),
 * the reference through TF.js's own gradient (transpose flags): the same bound must hold.
 */
describe('wasm workers (fast matMul gradient) equal the wasm reference (TF.js gradient)', () => {
  const { dir, file: configFile, cfg, slots, init } = equivalenceSetup('equiv-wasm');
  let reference: Float32Array;

  beforeAll(async () => {
    reference = await referenceTrain(cfg, 'wasm');
  });

  it.each([1, 2])('%i worker process(es), 20 steps: max relative difference ≤ 1e-5', async (n) => {
    const out = join(dir, `w${n}`);
    const r = await runCli(['train', '--config', configFile, '--workers', String(n), '--backend', 'wasm', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const ours = readWeights(out);
    const diff = tensorRelDiff(ours, reference, slots);
    console.log(`wasm workers=${n}: tensor-relative max diff ${diff.toExponential(2)}, elementwise (floor 1e-3) ${maxRelDiff(ours, reference).toExponential(2)}`);
    expect(diff).toBeLessThanOrEqual(1e-5);
    expect(tensorRelDiff(ours, init, slots)).toBeGreaterThan(1e-2);
  });
});
