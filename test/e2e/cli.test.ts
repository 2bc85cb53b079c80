/**
 * The command line as a user meets it: mistakes get one line naming what to fix (no stack
 * trace), and a run leaves the run directory the README describes.
 */
import * as tf from '@tensorflow/tfjs';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../shared/job/config.js';
import { loadDataset } from '../../shared/datasets/index.js';
import { jobLayout } from '../../shared/job/job-layout.js';
import { initParams } from '../../shared/models/index.js';
import { readMetrics, readSummary, readWeights, runCli, tempDir } from '../helpers/cli.js';

function expectOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('dptrain:'));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(stderr).not.toMatch(/\n\s+at /); // no stack trace
}

describe('user mistakes get one clear line', () => {
  it('a non-numeric flag', async () => {
    const r = await runCli(['train', '--steps', 'abc']);
    expect(r.code).not.toBe(0);
    expectOneLine(r.stderr, /--steps.*abc.*integer/);
  });

  it('an unknown flag', async () => {
    const r = await runCli(['train', '--stpes', '3']);
    expect(r.code).not.toBe(0);
    expectOneLine(r.stderr, /unknown option '--stpes'/);
  });

  it('an unknown backend', async () => {
    const r = await runCli(['train', '--backend', 'gpu']);
    expect(r.code).not.toBe(0);
    expectOneLine(r.stderr, /--backend.*gpu/);
  });

  it('a config field with a bad value (exit 2, field named)', async () => {
    const dir = tempDir('badcfg');
    const file = join(dir, 'job.json');
    writeFileSync(file, JSON.stringify({ optimizer: { lr: -1 } }));
    const r = await runCli(['train', '--config', file]);
    expect(r.code).toBe(2);
    expectOneLine(r.stderr, /optimizer\.lr must be a number > 0/);
  });

  it('a misspelt config field', async () => {
    const dir = tempDir('typo');
    const file = join(dir, 'job.json');
    writeFileSync(file, JSON.stringify({ batchsize: 32 }));
    const r = await runCli(['train', '--config', file]);
    expect(r.code).toBe(2);
    expectOneLine(r.stderr, /batchsize is not a config field/);
  });

  it('a missing config file, and a config that is not JSON', async () => {
    const dir = tempDir('nofile');
    const r1 = await runCli(['train', '--config', join(dir, 'nope.json')]);
    expect(r1.code).toBe(2);
    expectOneLine(r1.stderr, /cannot read config file .*nope\.json: ENOENT/);
    writeFileSync(join(dir, 'bad.json'), '{ steps: 3 ');
    const r2 = await runCli(['train', '--config', join(dir, 'bad.json')]);
    expect(r2.code).toBe(2);
    expectOneLine(r2.stderr, /bad\.json is not valid JSON/);
  });

  it('a --connect address that is not a ws:// URL: exit 2 at once', async () => {
    const t0 = Date.now();
    const r = await runCli(['worker', '--connect', 'localhost:7070']);
    expect(r.code).toBe(2);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expectOneLine(r.stderr, /--connect localhost:7070: use a ws:\/\/ or wss:\/\/ address/);
  });

  it('worker counts that contradict each other', async () => {
    const r1 = await runCli(['train', '--workers', '2', '--min-workers', '3']);
    expect(r1.code).toBe(2);
    expectOneLine(r1.stderr, /minWorkers \(3\) is above workers \(2\)/);
    const r2 = await runCli(['train', '--workers', '3', '--max-workers', '2']);
    expect(r2.code).toBe(2);
    expectOneLine(r2.stderr, /workers \(3\) is above maxWorkers \(2\)/);
  });

  it('a worker pointed at a coordinator that is not there', async () => {
    const r = await runCli(['worker', '--connect', 'ws://127.0.0.1:9', '--connect-timeout', '1', '--backend', 'cpu']);
    expect(r.code).toBe(1);
    expectOneLine(
      r.stderr,
      /cannot reach the coordinator at ws:\/\/127\.0\.0\.1:9: tried 127\.0\.0\.1:9: connection refused/,
    );
  });
});

describe('the run directory', () => {
  const out = tempDir('rundir');
  const steps = 12;
  const job = {
    data: { name: 'spirals', samples: 300 },
    model: { layers: [{ units: 8, activation: 'gelu' }, { units: 2 }], loss: 'softmaxCrossEntropy' },
    steps,
    batchSize: 30,
    evalEvery: 5,
  };

  beforeAll(async () => {
    const file = join(out, 'job.json');
    writeFileSync(file, JSON.stringify(job));
    const r = await runCli([
      'train',
      '--config',
      file,
      '--workers',
      '2',
      '--backend',
      'cpu',
      '--out',
      join(out, 'run'),
    ]);
    expect(r.code, r.stderr).toBe(0);
  });

  it('metrics.jsonl has one line per step with the documented fields', () => {
    const m = readMetrics(join(out, 'run'));
    expect(m.map((r) => r.step)).toEqual(Array.from({ length: steps }, (_, i) => i + 1));
    for (const r of m) {
      for (const k of ['step', 'loss', 'samplesPerSec', 'stepMs', 'workerComputeMs', 'lr', 'epoch'])
        expect(r).toHaveProperty(k);
      expect(Object.keys(r.workerComputeMs as object)).toHaveLength(2);
      const t = r.timeline as Record<string, number>;
      for (const k of ['encodeMs', 'reduceMs', 'optimizerMs', 'slowestComputeMs', 'overheadMs'])
        expect(t[k]).toBeGreaterThanOrEqual(0);
      // The overhead is what the slowest worker's compute does not explain.
      expect(t.overheadMs).toBeCloseTo((r.stepMs as number) - t.slowestComputeMs, 6);
      expect(t.slowestComputeMs).toBe(Math.max(...Object.values(r.workerComputeMs as Record<string, number>)));
    }
    expect(m.filter((r) => 'testAccuracy' in r).map((r) => r.step)).toEqual([5, 10, 12]); // and the final evaluation
  });

  it('summary.json has the documented fields', () => {
    const s = readSummary(join(out, 'run'));
    expect(s).toMatchObject({ steps, workers: 2, backend: 'cpu', batchSize: 30 });
    for (const k of ['finalLoss', 'testAccuracy', 'samplesPerSec', 'wallSeconds'] as const)
      expect(typeof s[k]).toBe('number');
    expect(s.timeline.overheadMs.p95).toBeGreaterThanOrEqual(s.timeline.overheadMs.median);
    expect(s.timeline.overheadShare).toBeGreaterThanOrEqual(0);
    expect(s.timeline.overheadShare).toBeLessThanOrEqual(1);
  });

  it('model/ loads with tf.loadLayersModel and predicts probabilities', async () => {
    const dir = join(out, 'run', 'model');
    const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
    const weightData = readFileSync(join(dir, 'weights.bin'));
    const model = await tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: json.modelTopology,
        weightSpecs: json.weightsManifest[0].weights,
        weightData: new Uint8Array(weightData).buffer,
      }),
    );
    const p = model.predict(
      tf.tensor2d([
        [0.1, 0.2],
        [-0.5, 0.3],
      ]),
    ) as tf.Tensor;
    const rows = (await p.array()) as number[][];
    for (const row of rows) expect(row[0] + row[1]).toBeCloseTo(1, 5);
  });

  it("--trace writes a Chrome trace of the chosen steps: coordinator spans and each worker's compute", async () => {
    const file = join(out, 'trace.json');
    const r = await runCli([
      'train',
      '--config',
      join(out, 'job.json'),
      '--steps',
      '8',
      '--workers',
      '2',
      '--backend',
      'cpu',
      '--trace',
      file,
      '--trace-steps',
      '3:5',
      '--out',
      join(out, 'traced'),
    ]);
    expect(r.code, r.stderr).toBe(0);
    const events = (
      JSON.parse(readFileSync(file, 'utf8')) as {
        traceEvents: Array<{ name: string; ph: string; ts: number; dur?: number; tid: number }>;
      }
    ).traceEvents;
    const spans = events.filter((e) => e.ph === 'X');
    expect(spans.filter((e) => /^step \d+$/.test(e.name)).map((e) => e.name)).toEqual(['step 3', 'step 4', 'step 5']);
    expect(spans.filter((e) => e.name.startsWith('compute shard'))).toHaveLength(6); // 2 workers × 3 steps
    expect(new Set(spans.filter((e) => e.name.startsWith('compute')).map((e) => e.tid)).size).toBe(2);
    for (const e of spans) expect(e.dur).toBeGreaterThanOrEqual(0);
    expect(events.filter((e) => e.ph === 'M').length).toBe(3); // coordinator + 2 worker tracks
  });

  it('with --steps 0 the model holds the initialization', async () => {
    const file = join(out, 'job.json');
    const dir = join(out, 'init');
    const r = await runCli([
      'train',
      '--config',
      file,
      '--steps',
      '0',
      '--workers',
      '1',
      '--backend',
      'cpu',
      '--out',
      dir,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const cfg = parseConfig(job);
    expect(readWeights(dir)).toEqual(initParams(jobLayout(cfg), cfg.seed));
    expect(loadDataset(cfg.data, cfg.seed).test.n).toBeGreaterThan(0);
  });
});
