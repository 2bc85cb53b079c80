/**
 * Data parallelism must not change the optimization: N worker processes training on shards of
 * the global batch land on the parameters a single process reaches on the full batch with
 * tf.train.adam. Workers and reference both use the cpu backend, so the comparison measures
 * the distribution (sharding, reduction, central Adam), not two backends' rounding.
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readSummary, readWeights, runCli } from '../helpers/cli.js';
import { maxRelDiff, referenceTrain, tensorRelDiff } from '../helpers/reference.js';
import { equivalenceSetup, EQUIV_CNN_JOB, EQUIV_JOB, equivGptJob, equivLayersJob } from '../helpers/equivalence-job.js';
import { parseConfig } from '../../shared/job/config.js';
import { prepareJob } from '../../shared/job/job-layout.js';
import { tinyTextFile } from '../helpers/fixtures.js';
import '@tensorflow/tfjs-backend-wasm';

const JOB = EQUIV_JOB;

/** Train the job with n workers on a backend; its parameters must equal the reference's within 1e-5. */
async function workersMatch(
  label: string,
  n: number,
  job: Pick<ReturnType<typeof equivalenceSetup>, 'dir' | 'file' | 'slots' | 'init'>,
  reference: Float32Array,
  backend = 'cpu',
): Promise<void> {
  const out = join(job.dir, `w${n}`);
  const r = await runCli(['train', '--config', job.file, '--workers', String(n), '--backend', backend, '--out', out]);
  expect(r.code, r.stderr).toBe(0);
  expect(readSummary(out).workers).toBe(n);
  const ours = readWeights(out);
  expect(ours.length).toBe(reference.length);
  const diff = tensorRelDiff(ours, reference, job.slots);
  // Reported so the figure is visible in the test log, not only pass/fail.
  console.log(
    `${label} workers=${n}: tensor-relative max diff ${diff.toExponential(2)}, elementwise (floor 1e-3) ${maxRelDiff(ours, reference).toExponential(2)}`,
  );
  expect(diff).toBeLessThanOrEqual(1e-5);
  // And it trained: the parameters moved well away from the initialization.
  expect(tensorRelDiff(ours, job.init, job.slots)).toBeGreaterThan(1e-2);
}

describe('N workers equal one process on the full batch', () => {
  const { dir, file: configFile, cfg, slots, init } = equivalenceSetup('equiv');
  let reference: Float32Array;

  beforeAll(async () => {
    reference = await referenceTrain(cfg);
  });

  it.each([1, 2, 3])('%i worker process(es), 20 steps: max relative difference ≤ 1e-5', (n) =>
    workersMatch('dense', n, { dir, file: configFile, slots, init }, reference),
  );

  it('virtual shards (10 leaves summed along the fixed tree), 3 workers: ≤ 1e-5', async () => {
    const file = join(dir, 'vshards.json');
    writeFileSync(file, JSON.stringify({ ...JOB, shards: 10 }));
    await workersMatch('dense, shards 10', 3, { dir: join(dir, 'vshards'), file, slots, init }, reference);
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

describe('cnn: N workers equal one tfjs-layers process on the full batch', () => {
  const { dir, file, cfg, slots, init } = equivalenceSetup('equiv-cnn', EQUIV_CNN_JOB);
  let reference: Float32Array;

  beforeAll(async () => {
    reference = await referenceTrain(cfg);
  });

  it.each([1, 2, 3])('%i worker process(es), 20 steps: max relative difference ≤ 1e-5', (n) =>
    workersMatch('cnn', n, { dir, file, slots, init }, reference),
  );
});

describe('gpt: N workers equal one independently written TF.js process on the full batch', () => {
  const { dir, file, cfg, slots, init } = equivalenceSetup('equiv-gpt', equivGptJob(tinyTextFile()));
  let reference: Float32Array;

  beforeAll(async () => {
    reference = await referenceTrain(cfg);
  });

  it.each([1, 2, 3])('%i worker process(es), 10 steps: max relative difference ≤ 1e-5', (n) =>
    workersMatch('gpt', n, { dir, file, slots, init }, reference),
  );
});

const LAYERS_JOB = equivLayersJob(resolve('examples/custom/model.json'), resolve('examples/custom/bars.mjs'));
await prepareJob(parseConfig(LAYERS_JOB)); // its dataset module, before equivalenceSetup lays the job out

describe('layers: N workers equal tfjs-layers loading the same model.json, on the full batch', () => {
  const { dir, file, cfg, slots, init } = equivalenceSetup('equiv-layers', LAYERS_JOB);
  let reference: Float32Array;

  beforeAll(async () => {
    reference = await referenceTrain(cfg);
  });

  it.each([1, 2])('%i worker process(es), 20 steps: max relative difference ≤ 1e-5', (n) =>
    workersMatch('layers', n, { dir, file, slots, init }, reference),
  );
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

  it.each([1, 2])('%i worker process(es), 20 steps: max relative difference ≤ 1e-5', (n) =>
    workersMatch('wasm', n, { dir, file: configFile, slots, init }, reference, 'wasm'),
  );
});
