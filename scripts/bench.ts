/**
 * `npm run bench`: the figures the performance targets are stated in, measured in one run on
 * this machine (compare ratios within a run, never absolute times across runs).
 *   - central Adam throughput (parameters/s, one core): the SIMD kernel and the scalar loop
 *   - wire codec throughput for a 16 MB payload (GB/s, encode and decode), per wire dtype
 *   - this machine's floor for moving a parameter-sized payload between two processes over
 *     loopback TCP (plain sockets, no WebSocket, no codec)
 *   - the single-process TF.js baseline a user would write (tf.train.adam minimize loop)
 *   - dptrain with 1, 2 and 4 local workers, batch 128 per worker (weak scaling), payloads through
 *     shared memory (the default for local workers); then 1 and 2 workers through the socket,
 *     float32 and bfloat16: speed-up and efficiency against the baseline,
 *     coordinator overhead (step time minus the slowest worker's compute), and the shares of a
 *     step spent on the wire and in the codec
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
import type { WireDtype } from '../shared/wire-dtype.js';
import { loopbackFloorMs } from './loopback.js';
import { decodeFrame, encodeFrame } from '../shared/codec.js';
import { parseConfig } from '../shared/config.js';
import { layoutModel } from '../shared/model-spec.js';
import type { RunSummary } from '../coordinator/summary.js';
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

/** Parameters/s of one Adam step over the optimizer's own arrays (as the coordinator runs it). */
function benchAdam(size: number, simd: boolean): number {
  const adam = new Adam({ beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: 0 }, size, undefined, { simd });
  adam.params.set(Float32Array.from({ length: size }, (_, i) => Math.sin(i)));
  adam.grads.set(Float32Array.from({ length: size }, (_, i) => Math.cos(i) * 1e-3));
  const ms = timeIt(() => adam.apply(adam.params, adam.grads, 1e-3));
  return size / (ms / 1000);
}

/** GB/s of float32 data through encode and decode (16-bit dtypes move half the bytes for the same tensor). */
function benchCodec(bytes: number, dtype: WireDtype): { encodeGBps: number; decodeGBps: number } {
  const payload = new Float32Array(bytes / 4).map((_, i) => i);
  let frame = encodeFrame({ t: 'params', version: 1, shm: 0 }, payload, dtype);
  const enc = timeIt(() => {
    frame = encodeFrame({ t: 'params', version: 1, shm: 0 }, payload, dtype);
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
  wireDtype: WireDtype;
  /** How payloads reached the local workers: /dev/shm files, or the WebSocket. */
  path: 'shm' | 'socket';
  samplesPerSec: number;
  medianStepMs: number;
  overheadShare: number;
  wireShare: number;
  codecShare: number;
  wireBytesPerStep: number;
  finalLoss: number;
}

function dptrain(workers: number, wireDtype: WireDtype, path: 'shm' | 'socket', dir: string): Promise<RunFigures> {
  const out = join(dir, `w${workers}-${wireDtype}-${path}`);
  const job = join(dir, 'job.json');
  writeFileSync(job, JSON.stringify(JOB));
  const args = [CLI, 'train', '--config', job, '--workers', String(workers), '--batch-size', String(PER_WORKER_BATCH * workers), '--steps', String(STEPS), '--backend', 'wasm', '--wire-dtype', wireDtype, ...(path === 'socket' ? ['--no-shared-memory'] : []), '--out', out];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { maxBuffer: 64 << 20 }, (err, _o, stderr) => {
      if (err) return reject(new Error(`dptrain train failed: ${stderr.trim().split('\n').pop()}`));
      const s = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as RunSummary;
      const t = s.timeline;
      resolve({
        workers,
        wireDtype,
        path,
        samplesPerSec: s.samplesPerSec ?? 0,
        medianStepMs: s.medianStepMs ?? 0,
        overheadShare: t.overheadShare ?? 0,
        wireShare: t.wireShare ?? 0,
        codecShare: t.codecShare ?? 0,
        wireBytesPerStep: s.wireBytesPerStep ?? 0,
        finalLoss: s.finalLoss ?? NaN,
      });
    });
  });
}

async function main(): Promise<void> {
  const outFile = process.argv[2] ?? 'bench-results.json';
  const params = layoutModel(parseConfig(JOB).model, 784, 10).totalParams;
  const adam = { simdParamsPerSec: benchAdam(params, true), scalarParamsPerSec: benchAdam(params, false) };
  const codec = Object.fromEntries((['float32', 'float16', 'bfloat16'] as const).map((d) => [d, benchCodec(16 << 20, d)]));
  const loopbackMs = await loopbackFloorMs(params * 4);
  const baselineSamplesPerSec = await baseline();
  const dir = mkdtempSync(join(tmpdir(), 'dptrain-bench-'));
  const runs: RunFigures[] = [];
  const plan = [[1, 'float32', 'shm'], [2, 'float32', 'shm'], [4, 'float32', 'shm'], [1, 'float32', 'socket'], [2, 'float32', 'socket'], [2, 'bfloat16', 'socket']] as const;
  for (const [n, dtype, path] of plan) runs.push(await dptrain(n, dtype, path, dir));
  const rows = runs.map((r) => ({ ...r, speedup: r.samplesPerSec / baselineSamplesPerSec, efficiency: r.samplesPerSec / (r.workers * baselineSamplesPerSec) }));
  const result = { date: new Date().toISOString(), model: '784-512-512-10', params, backend: 'wasm', perWorkerBatch: PER_WORKER_BATCH, steps: STEPS, adam, codec16MB: codec, loopbackTcpMs: loopbackMs, baseline: { samplesPerSec: baselineSamplesPerSec }, runs: rows };
  writeFileSync(outFile, JSON.stringify(result, null, 2) + '\n');
  const f = (x: number, d = 2) => x.toFixed(d);
  const pct = (x: number) => `${f(x * 100, 1)}%`;
  const lines = [
    `central Adam        ${f(adam.simdParamsPerSec / 1e6, 0)} M parameters/s with the SIMD kernel, ${f(adam.scalarParamsPerSec / 1e6, 0)} M scalar (${params.toLocaleString('en-US')} parameters)`,
    ...Object.entries(codec).map(([d, c]) => `codec ${d.padEnd(9)}     encode ${f(c.encodeGBps)} GB/s, decode (unaligned) ${f(c.decodeGBps)} GB/s of float32 data, 16 MB`),
    `loopback TCP        ${f(loopbackMs.down)} ms one way, ${f(loopbackMs.roundTrip)} ms there and back for ${(params * 4 / 1e6).toFixed(2)} MB (plain sockets: this machine's floor)`,
    `baseline (1 proc)   ${f(baselineSamplesPerSec, 0)} samples/s (tf.train.adam, batch ${PER_WORKER_BATCH})`,
    ...rows.map(
      (r) =>
        `dptrain ${r.workers} worker${r.workers > 1 ? 's' : ' '} ${r.path.padEnd(6)} ${r.wireDtype.padEnd(8)}  ${f(r.samplesPerSec, 0)} samples/s, speed-up ${f(r.speedup)}×, efficiency ${f(r.efficiency)}; ` +
        `of a step: overhead ${pct(r.overheadShare)}, wire ${pct(r.wireShare)}, codec ${pct(r.codecShare)}; ${(r.wireBytesPerStep / 1e6).toFixed(2)} MB/step; loss ${f(r.finalLoss, 4)}`,
    ),
    `written to ${outFile}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((e: Error) => {
  process.stderr.write(`bench: ${e.message}\n`);
  process.exit(1);
});
