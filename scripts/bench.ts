/**
 * `npm run bench`: the figures the performance targets are stated in, measured in one run on
 * this machine (compare ratios within a run, never absolute times across runs).
 *   - central Adam throughput (parameters/s, one core)
 *   - wire codec throughput for a 16 MB payload (GB/s, encode and decode)
 *   - the single-process TF.js baseline a user would write (tf.train.adam minimize loop)
 *   - dptrain with 1 and 2 local workers, batch 128 per worker (weak scaling), and the speed-up
 *     and efficiency against the baseline; coordinator overhead (step time minus the slowest
 *     worker's compute) as a share of the step
 * Model: the reference MLP 784-512-512-10 (669,706 parameters), wasm backend, MNIST.
 * Writes bench-results.json (or the path given as the first argument) and prints a table.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Adam } from '../coordinator/optimizers/adam.js';
import { decodeFrame, encodeFrame } from '../shared/codec.js';
import { parseConfig } from '../shared/config.js';
import { layoutModel } from '../shared/model-spec.js';
import { median } from '../coordinator/summary.js';
import { baselineSamplesPerSec } from '../cli/baseline.js';

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const PER_WORKER_BATCH = 128;
const STEPS = 60;
const JOB = {
  data: { name: 'mnist' },
  model: {
    layers: [
      { units: 512, activation: 'relu' },
      { units: 512, activation: 'relu' },
      { units: 10, activation: 'linear' },
    ],
    loss: 'softmaxCrossEntropy',
  },
  evalEvery: 0,
  checkpointEvery: 0,
};

function timeIt(fn: () => void, minMs = 1000): number {
  fn(); // warm-up
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < minMs) {
    fn();
    n++;
  }
  return (performance.now() - t0) / n;
}

function benchAdam(size: number): number {
  const adam = new Adam({ beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: 0 }, size);
  const p = Float32Array.from({ length: size }, (_, i) => Math.sin(i));
  const g = Float32Array.from({ length: size }, (_, i) => Math.cos(i) * 1e-3);
  const ms = timeIt(() => adam.apply(p, g, 1e-3));
  return size / (ms / 1000);
}

function benchCodec(bytes: number): { encodeGBps: number; decodeGBps: number } {
  const payload = new Float32Array(bytes / 4).map((_, i) => i);
  let frame = encodeFrame({ t: 'params', version: 1 }, payload);
  const enc = timeIt(() => {
    frame = encodeFrame({ t: 'params', version: 1 }, payload);
  });
  // Decode from an unaligned copy too: the worst case (one copy) is what we report.
  const unaligned = new Uint8Array(frame.length + 1);
  unaligned.set(frame, 1);
  const dec = timeIt(() => decodeFrame(unaligned.subarray(1)));
  return { encodeGBps: bytes / (enc / 1000) / 1e9, decodeGBps: bytes / (dec / 1000) / 1e9 };
}

/** The loop a TF.js user writes (cli/baseline.ts), on the wasm backend. */
async function baseline(): Promise<number> {
  await tf.setBackend('wasm');
  tf.enableProdMode();
  return baselineSamplesPerSec(parseConfig({ ...JOB, steps: STEPS, batchSize: PER_WORKER_BATCH }), PER_WORKER_BATCH, STEPS - 10, 10);
}

interface RunFigures {
  workers: number;
  samplesPerSec: number;
  medianStepMs: number;
  overheadShare: number;
}

function dptrain(workers: number, dir: string): Promise<RunFigures> {
  const out = join(dir, `w${workers}`);
  const job = join(dir, 'job.json');
  writeFileSync(job, JSON.stringify(JOB));
  const args = [CLI, 'train', '--config', job, '--workers', String(workers), '--batch-size', String(PER_WORKER_BATCH * workers), '--steps', String(STEPS), '--backend', 'wasm', '--out', out];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { maxBuffer: 64 << 20 }, (err, _o, stderr) => {
      if (err) return reject(new Error(`dptrain train failed: ${stderr.trim().split('\n').pop()}`));
      const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { samplesPerSec: number; medianStepMs: number };
      const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { stepMs: number; workerComputeMs: Record<string, number> });
      const shares = steps.slice(10).map((s) => (s.stepMs - Math.max(...Object.values(s.workerComputeMs))) / s.stepMs);
      resolve({ workers, samplesPerSec: summary.samplesPerSec, medianStepMs: summary.medianStepMs, overheadShare: median(shares)! });
    });
  });
}

async function main(): Promise<void> {
  const outFile = process.argv[2] ?? 'bench-results.json';
  const params = layoutModel(parseConfig(JOB).model, 784, 10).totalParams;
  const adamParamsPerSec = benchAdam(params);
  const codec = benchCodec(16 << 20);
  const baselineSamplesPerSec = await baseline();
  const dir = mkdtempSync(join(tmpdir(), 'dptrain-bench-'));
  const runs = [await dptrain(1, dir), await dptrain(2, dir)];
  const rows = runs.map((r) => ({ ...r, speedup: r.samplesPerSec / baselineSamplesPerSec, efficiency: r.samplesPerSec / (r.workers * baselineSamplesPerSec) }));
  const result = { date: new Date().toISOString(), model: '784-512-512-10', params, backend: 'wasm', perWorkerBatch: PER_WORKER_BATCH, steps: STEPS, adamParamsPerSec, codec16MB: codec, baseline: { samplesPerSec: baselineSamplesPerSec }, runs: rows };
  writeFileSync(outFile, JSON.stringify(result, null, 2) + '\n');
  const f = (x: number, d = 2) => x.toFixed(d);
  const lines = [
    `central Adam        ${f(adamParamsPerSec / 1e6, 0)} M parameters/s (${params.toLocaleString('en-US')} parameters)`,
    `codec, 16 MB        encode ${f(codec.encodeGBps)} GB/s, decode (unaligned, one copy) ${f(codec.decodeGBps)} GB/s`,
    `baseline (1 proc)   ${f(baselineSamplesPerSec, 0)} samples/s (tf.train.adam, batch ${PER_WORKER_BATCH})`,
    ...rows.map((r) => `dptrain ${r.workers} worker${r.workers > 1 ? 's' : ' '}   ${f(r.samplesPerSec, 0)} samples/s, speed-up ${f(r.speedup)}×, efficiency ${f(r.efficiency)}, coordinator overhead ${f(r.overheadShare * 100, 1)}% of a step`),
    `written to ${outFile}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((e: Error) => {
  process.stderr.write(`bench: ${e.message}\n`);
  process.exit(1);
});
