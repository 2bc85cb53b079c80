/**
 * `npm run bench`: the figures the performance targets are stated in, measured in one run on
 * this machine (compare ratios within a run, never absolute times across runs).
 *   - central Adam throughput (parameters/s, one core): the SIMD kernel and the scalar loop
 *   - wire codec throughput for a 16 MB payload (GB/s, encode and decode), per wire dtype
 *   - this machine's floor for moving a parameter-sized payload between two processes over
 *     loopback TCP (plain sockets, no WebSocket, no codec)
 *   - the single-process TF.js baseline a user would write (tf.train.adam minimize loop), and two
 *     copies of it at once (no communication: the most two processes can do on this machine)
 *   - dptrain with 1, 2 and 4 local workers, batch 128 per worker (weak scaling), payloads through
 *     shared memory (the default for local workers); then 1 and 2 workers through the socket,
 *     float32 and bfloat16: speed-up and efficiency against the baseline,
 *     coordinator overhead (step time minus the slowest worker's compute), and the shares of a
 *     step spent on the wire and in the codec
 * Model: the reference MLP 784-512-512-10 (669,706 parameters), wasm backend, MNIST.
 * Writes bench-results.json (or the path given as the first argument) and prints a table.
 * Options: --rounds N (repeat everything N times, interleaved, and report medians: this
 * machine is noisy), --ddp-anchor FILE (also run the PyTorch DDP reference script).
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { execFile, fork } from 'node:child_process';
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
import { median, type RunSummary } from '../coordinator/summary.js';
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

/**
 * The machine's own ceiling for N workers: N copies of the baseline loop run at once as
 * separate processes, with no communication at all. Their summed samples/s is the most N
 * processes can do here (they share memory bandwidth and caches; other tenants share the host).
 */
function concurrentBaselines(n: number): Promise<number[]> {
  const self = fileURLToPath(import.meta.url);
  return Promise.all(
    Array.from({ length: n }, () => new Promise<number>((resolve, reject) => {
      const child = fork(self, ['--baseline-child']);
      child.once('message', (sps) => resolve(sps as number));
      child.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`baseline child exited with ${code}`))));
    })),
  );
}

/**
 * `--ddp-anchor FILE`: the PyTorch DDP (gloo) reference script, run here at 1 and 2 ranks so its
 * scaling is measured on the same machine in the same run (needs Debian's python3-torch).
 */
function ddpAnchor(file: string, world: number): Promise<number> {
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE; // the anchor's notes: these mis-tune OpenBLAS on this machine kind
  delete env.OPENBLAS_L2_SIZE;
  return new Promise((resolve, reject) => {
    execFile('/usr/bin/python3', [file, String(world), '30', String(PER_WORKER_BATCH)], { env, timeout: 300_000 }, (err, stdout, stderr) => {
      const m = /samples\/s=(\d+)/.exec(stdout);
      if (err || !m) return reject(new Error(`ddp anchor (world ${world}) failed: ${(stderr || String(err)).trim().split('\n').pop()}`));
      resolve(Number(m[1]));
    });
  });
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

/** Median of numbers (the rounds of one figure). */
const med = (xs: number[]) => median(xs) ?? NaN;

/** One round: the baseline, the 2-process ceiling, every dptrain configuration, the anchor. Ratios are taken within a round. */
async function round(dir: string, anchorFile: string | null) {
  const baselineSps = await baseline();
  const ceiling = (await concurrentBaselines(2)).reduce((a, b) => a + b, 0);
  const plan = [[1, 'float32', 'shm'], [2, 'float32', 'shm'], [4, 'float32', 'shm'], [1, 'float32', 'socket'], [2, 'float32', 'socket'], [2, 'bfloat16', 'socket']] as const;
  const runs: Array<RunFigures & { efficiency: number; ofCeiling: number | null }> = [];
  for (const [n, dtype, path] of plan) {
    const r = await dptrain(n, dtype, path, dir);
    runs.push({ ...r, efficiency: r.samplesPerSec / (n * baselineSps), ofCeiling: n === 2 ? r.samplesPerSec / ceiling : null });
  }
  let ddp: { one: number; two: number; efficiency: number } | null = null;
  if (anchorFile) {
    const one = await ddpAnchor(anchorFile, 1);
    const two = await ddpAnchor(anchorFile, 2);
    ddp = { one, two, efficiency: two / (2 * one) };
  }
  return { baselineSps, ceiling, ceilingRatio: ceiling / (2 * baselineSps), runs, ddp };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const flag = (name: string) => {
    const at = args.indexOf(name);
    return at >= 0 ? args.splice(at, 2)[1] : null;
  };
  const anchorFile = flag('--ddp-anchor');
  const rounds = Number(flag('--rounds') ?? 1);
  const outFile = args[0] ?? 'bench-results.json';
  const params = layoutModel(parseConfig(JOB).model, 784, 10).totalParams;
  const adam = { simdParamsPerSec: benchAdam(params, true), scalarParamsPerSec: benchAdam(params, false) };
  const codec = Object.fromEntries((['float32', 'float16', 'bfloat16'] as const).map((d) => [d, benchCodec(16 << 20, d)]));
  const loopbackMs = await loopbackFloorMs(params * 4);
  const dir = mkdtempSync(join(tmpdir(), 'dptrain-bench-'));
  const all: Array<Awaited<ReturnType<typeof round>>> = [];
  for (let i = 0; i < rounds; i++) all.push(await round(dir, anchorFile));
  // Per configuration, the median over rounds of each figure.
  const rows = all[0].runs.map((r0, k) => {
    const rs = all.map((a) => a.runs[k]);
    const m = (f: (r: (typeof rs)[number]) => number) => med(rs.map(f));
    return {
      workers: r0.workers, path: r0.path, wireDtype: r0.wireDtype,
      samplesPerSec: m((r) => r.samplesPerSec), efficiency: m((r) => r.efficiency), ofCeiling: r0.ofCeiling === null ? null : m((r) => r.ofCeiling!),
      overheadShare: m((r) => r.overheadShare), wireShare: m((r) => r.wireShare), codecShare: m((r) => r.codecShare),
      wireBytesPerStep: m((r) => r.wireBytesPerStep), finalLoss: r0.finalLoss,
    };
  });
  const baselineSps = med(all.map((a) => a.baselineSps));
  const ceilingRatio = med(all.map((a) => a.ceilingRatio));
  const ddps = all.map((a) => a.ddp).filter((d) => d !== null);
  const ddp = ddps.length ? { samplesPerSec1: med(ddps.map((d) => d.one)), samplesPerSec2: med(ddps.map((d) => d.two)), efficiency: med(ddps.map((d) => d.efficiency)) } : null;
  const result = { date: new Date().toISOString(), model: '784-512-512-10', params, backend: 'wasm', perWorkerBatch: PER_WORKER_BATCH, steps: STEPS, rounds, adam, codec16MB: codec, loopbackTcpMs: loopbackMs, baseline: { samplesPerSec: baselineSps }, ceiling2: { ratio: ceilingRatio }, ddpAnchor: ddp, runs: rows, perRound: all };
  writeFileSync(outFile, JSON.stringify(result, null, 2) + '\n');
  const f = (x: number, d = 2) => x.toFixed(d);
  const pct = (x: number) => `${f(x * 100, 1)}%`;
  const lines = [
    `central Adam        ${f(adam.simdParamsPerSec / 1e6, 0)} M parameters/s with the SIMD kernel, ${f(adam.scalarParamsPerSec / 1e6, 0)} M scalar (${params.toLocaleString('en-US')} parameters)`,
    ...Object.entries(codec).map(([d, c]) => `codec ${d.padEnd(9)}     encode ${f(c.encodeGBps)} GB/s, decode (unaligned) ${f(c.decodeGBps)} GB/s of float32 data, 16 MB`),
    `loopback TCP        ${f(loopbackMs.down)} ms one way, ${f(loopbackMs.roundTrip)} ms there and back for ${(params * 4 / 1e6).toFixed(2)} MB (plain sockets)`,
    `medians over ${rounds} round${rounds > 1 ? 's' : ''}; efficiencies against the baseline of the same round:`,
    `baseline (1 proc)   ${f(baselineSps, 0)} samples/s (tf.train.adam, batch ${PER_WORKER_BATCH})`,
    `2 baselines at once ${f(ceilingRatio)} of 2× one (no communication at all: this machine's ceiling for 2 workers)`,
    ...rows.map(
      (r) =>
        `dptrain ${r.workers} worker${r.workers > 1 ? 's' : ' '} ${r.path.padEnd(6)} ${r.wireDtype.padEnd(8)}  ${f(r.samplesPerSec, 0)} samples/s, efficiency ${f(r.efficiency)}` +
        (r.ofCeiling !== null ? ` (${f(r.ofCeiling)} of the ceiling)` : '') +
        `; of a step: overhead ${pct(r.overheadShare)}, wire ${pct(r.wireShare)}, codec ${pct(r.codecShare)}; ${(r.wireBytesPerStep / 1e6).toFixed(2)} MB/step on the socket`,
    ),
    ...(ddp ? [`PyTorch DDP (gloo)  1 rank ${f(ddp.samplesPerSec1, 0)}, 2 ranks ${f(ddp.samplesPerSec2, 0)} samples/s: efficiency ${f(ddp.efficiency)}`] : []),
    `written to ${outFile}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

if (process.argv[2] === '--baseline-child') {
  baseline().then((sps) => process.send!(sps, () => process.exit(0)));
} else {
  main().catch((e: Error) => {
    process.stderr.write(`bench: ${e.message}\n`);
    process.exit(1);
  });
}
