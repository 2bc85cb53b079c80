/**
 * `npm run bench`: the figures the performance targets are stated in, measured in one run on
 * this machine (compare ratios within a run, never absolute times across runs).
 *   - central Adam throughput (parameters/s, one core): the SIMD kernel and the scalar loop
 *   - wire codec throughput for a 16 MB payload (GB/s, encode and decode), per wire dtype
 *   - this machine's floor for moving a parameter-sized payload between two processes over
 *     loopback TCP (plain sockets, no WebSocket, no codec)
 *   - the per-kernel table of one worker step on each backend available (wasm, cpu, webgpu), in
 *     both matMul gradient forms
 *   - single-process baselines (cli/baseline.ts): the engine's own fastest single process (the
 *     baseline every efficiency is against), two copies of it at once (no communication: the
 *     most two processes can do on this machine), and what plain TF.js gives: a tfjs-layers
 *     minimize loop and model.fit
 *   - dptrain with 1, 2 and 4 local workers, batch 128 per worker (weak scaling), payloads through
 *     shared memory (the default for local workers); then 1 and 2 workers through the socket,
 *     float32 and bfloat16; then 2 and 1 workers with one inside the coordinator's process
 *     (--coordinator-worker): speed-up and efficiency against a baseline measured just before,
 *     coordinator overhead (step time minus the slowest worker's compute), and the shares of a
 *     step spent on the wire and in the codec
 * Model: the reference MLP 784-512-512-10 (669,706 parameters), wasm backend, MNIST.
 * Writes bench-results.json (or the path given as the first argument) and prints a table.
 * Options: --rounds N (repeat everything N times, interleaved, and report medians and the best
 * of the rounds: this machine is noisy), --ddp-anchor FILE (also run the PyTorch DDP reference
 * script), --from FILE (summarize a saved bench-results.json again without measuring),
 * --no-profile (skip the per-kernel tables).
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { execFile, fork } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Adam } from '../coordinator/optimizers/adam.js';
import type { WireDtype } from '../shared/wire/wire-dtype.js';
import { loopbackFloorMs } from './loopback.js';
import { decodeFrame, encodeFrame } from '../shared/wire/codec.js';
import { parseConfig } from '../shared/job/config.js';
import { jobLayout } from '../shared/job/job-layout.js';
import { median } from '../shared/util/stats.js';
import { singleProcessSamplesPerSec, type BaselineKind } from '../cli/baseline.js';
import { profileBackends } from './bench-profile.js';
import { PER_WORKER_BATCH, REFERENCE_JOB as JOB } from './reference-job.js';
import { anchorEnv, anchorSamplesPerSec, DDP_STEPS } from './lib/ddp-anchor.js';
import { lastLine, trainLocally } from './lib/dptrain-child.js';
import { runScript, ScriptArgs, writeResults } from './lib/bench-cli.js';
import { type Measured, report, type Round, type RunFigures, STEPS, summarize } from './lib/bench-summary.js';

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

/** A single-process loop (cli/baseline.ts) on the wasm backend; by default the engine's own. */
async function baseline(kind: BaselineKind = 'engine'): Promise<number> {
  await tf.setBackend('wasm');
  tf.enableProdMode();
  return singleProcessSamplesPerSec(
    kind,
    parseConfig({ ...JOB, steps: STEPS, batchSize: PER_WORKER_BATCH }),
    PER_WORKER_BATCH,
    STEPS - 10,
    10,
  );
}

/**
 * The machine's own ceiling for N workers: N copies of the baseline loop run at once as
 * separate processes, with no communication at all. Their summed samples/s is the most N
 * processes can do here (they share memory bandwidth and caches; other tenants share the host).
 */
function concurrentBaselines(n: number): Promise<number[]> {
  const self = fileURLToPath(import.meta.url);
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<number>((resolve, reject) => {
          const child = fork(self, ['--baseline-child']);
          child.once('message', (sps) => resolve(sps as number));
          child.once('exit', (code) =>
            code === 0 ? undefined : reject(new Error(`baseline child exited with ${code}`)),
          );
        }),
    ),
  );
}

/**
 * `--ddp-anchor FILE`: the PyTorch DDP (gloo) reference script, run here at 1 and 2 ranks so its
 * scaling is measured on the same machine in the same run (needs Debian's python3-torch).
 */
function ddpAnchor(file: string, world: number): Promise<number> {
  const args = [file, String(world), String(DDP_STEPS), String(PER_WORKER_BATCH)];
  return new Promise((resolve, reject) => {
    execFile('/usr/bin/python3', args, { env: anchorEnv(), timeout: 300_000 }, (err, stdout, stderr) => {
      const sps = anchorSamplesPerSec(stdout);
      if (err || sps === null)
        return reject(new Error(`ddp anchor (world ${world}) failed: ${lastLine(stderr || String(err))}`));
      resolve(sps);
    });
  });
}

async function dptrain(
  workers: number,
  wireDtype: WireDtype,
  path: 'shm' | 'socket',
  dir: string,
  coordinatorWorker: boolean,
): Promise<RunFigures> {
  const out = join(dir, `w${workers}-${wireDtype}-${path}${coordinatorWorker ? '-cw' : ''}`);
  const job = join(dir, 'job.json');
  writeFileSync(job, JSON.stringify(JOB));
  const flags = ['--wire-dtype', wireDtype, ...(path === 'socket' ? ['--no-shared-memory'] : [])];
  if (coordinatorWorker) flags.push('--coordinator-worker');
  const s = await trainLocally({ job, workers, steps: STEPS, out, flags });
  const t = s.timeline;
  return {
    workers,
    wireDtype,
    path,
    coordinatorWorker,
    samplesPerSec: s.samplesPerSec ?? 0,
    medianStepMs: s.medianStepMs ?? 0,
    overheadShare: t.overheadShare ?? 0,
    wireShare: t.wireShare ?? 0,
    codecShare: t.codecShare ?? 0,
    wireBytesPerStep: s.wireBytesPerStep ?? 0,
    finalLoss: s.finalLoss ?? NaN,
  };
}

/**
 * One round: every dptrain configuration, each right after a baseline of its own (the host's
 * speed drifts within minutes: a config is compared with the baseline measured next to it), the
 * 2-process ceiling next to the 2-worker shared-memory run, and the anchor.
 */
async function round(dir: string, anchorFile: string | null): Promise<Round> {
  // New configurations go at the end: rows are matched by position across rounds and saved runs.
  const plan = [
    [1, 'float32', 'shm', false],
    [2, 'float32', 'shm', false],
    [4, 'float32', 'shm', false],
    [1, 'float32', 'socket', false],
    [2, 'float32', 'socket', false],
    [2, 'bfloat16', 'socket', false],
    [2, 'float32', 'shm', true],
    [1, 'float32', 'shm', true],
  ] as const;
  const runs: Round['runs'] = [];
  let ceiling = NaN;
  let ceilingBaseline = NaN; // the baseline measured next to the ceiling
  for (const [n, dtype, path, inCoordinator] of plan) {
    const baselineSps = await baseline();
    if (n === 2 && path === 'shm' && !inCoordinator) {
      ceiling = (await concurrentBaselines(2)).reduce((a, b) => a + b, 0);
      ceilingBaseline = baselineSps;
    }
    const r = await dptrain(n, dtype, path, dir, inCoordinator);
    runs.push({
      ...r,
      baselineSps,
      efficiency: r.samplesPerSec / (n * baselineSps),
      ofCeiling: n === 2 ? r.samplesPerSec / ceiling : null,
    });
  }
  const baselineSps = median(runs.map((r) => r.baselineSps)) ?? NaN;
  // What plain TF.js gives, next to an engine baseline of its own.
  const engineSps = await baseline();
  const layers = { minimize: await baseline('layers-minimize'), fit: await baseline('layers-fit'), engine: engineSps };
  let ddp: { one: number; two: number; efficiency: number } | null = null;
  if (anchorFile) {
    const one = await ddpAnchor(anchorFile, 1);
    const two = await ddpAnchor(anchorFile, 2);
    ddp = { one, two, efficiency: two / (2 * one) };
  }
  return { baselineSps, ceiling, ceilingRatio: ceiling / (2 * ceilingBaseline), runs, ddp, layers };
}

async function measure(rounds: number, anchorFile: string | null, withProfiles: boolean): Promise<Measured> {
  const params = jobLayout(parseConfig(JOB)).totalParams;
  const adam = { simdParamsPerSec: benchAdam(params, true), scalarParamsPerSec: benchAdam(params, false) };
  const codec16MB = Object.fromEntries(
    (['float32', 'float16', 'bfloat16'] as const).map((d) => [d, benchCodec(16 << 20, d)]),
  );
  const loopbackTcpMs = await loopbackFloorMs(params * 4);
  const dir = mkdtempSync(join(tmpdir(), 'dptrain-bench-'));
  const job = join(dir, 'profile-job.json');
  writeFileSync(job, JSON.stringify({ ...JOB, batchSize: PER_WORKER_BATCH }));
  const profiles = withProfiles ? await profileBackends(job, PER_WORKER_BATCH) : [];
  const perRound: Round[] = [];
  // A directory a round: a run directory holds one run.
  for (let i = 0; i < rounds; i++) perRound.push(await round(mkdtempSync(join(dir, `round-${i + 1}-`)), anchorFile));
  return { date: new Date().toISOString(), params, rounds, adam, codec16MB, loopbackTcpMs, profiles, perRound };
}

async function main(): Promise<void> {
  const args = new ScriptArgs();
  const anchorFile = args.value('--ddp-anchor');
  const rounds = Number(args.value('--rounds', '1'));
  const from = args.value('--from'); // summarize a saved run again, measuring nothing
  const withProfiles = !args.has('--no-profile');
  const outFile = args.positional()[0] ?? 'bench-results.json';
  const m: Measured = from
    ? (JSON.parse(readFileSync(from, 'utf8')) as Measured)
    : await measure(rounds, anchorFile, withProfiles);
  const s = summarize(m);
  const { date, params, adam, codec16MB, loopbackTcpMs, perRound } = m;
  const results = { date, params, rounds: perRound.length, adam, codec16MB, loopbackTcpMs, ...s, perRound };
  writeResults(outFile, results, report({ ...m, rounds: perRound.length }, s));
}

if (process.argv[2] === '--baseline-child') {
  baseline().then((sps) => process.send!(sps, () => process.exit(0)));
} else {
  runScript('bench', main);
}
