/**
 * What a worker's compute costs with small leaves, in one process: the reference MLP
 * (784-512-512-10, MNIST), 128 rows per worker, as
 *   per-worker  one pass over the 128 rows (one leaf: the `per-worker` cut),
 *   one-pass    L leaves of 128/L rows in one pass (Trainer.leafGradients) and their tree sum,
 *   per-leaf    L leaves, a pass each (the cut before leaf passes),
 * each what the worker hands over (shardSums), interleaved within each round in a rotating
 * order; prints the median ms of each and the median of the per-round ratios to per-worker.
 * With --check it first compares, on the reference MLP, each leaf of one pass with that leaf's
 * own pass bit for bit, for 16/32/64/128 rows and 1–8 leaves (on --check-backends, default
 * wasm,cpu).
 * Usage: node dist/scripts/bench-leaves.js [--backend wasm] [--leaves 4] [--rounds 30] [--check] [--check-backends wasm,cpu]
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { loadDataset } from '../shared/datasets/index.js';
import { denseLayout } from '../shared/models/dense.js';
import { initParams } from '../shared/models/index.js';
import { median } from '../shared/util/stats.js';
import { joinParts } from '../worker/tensor-memory.js';
import { shardSums, Trainer } from '../worker/trainer.js';

const ROWS = 128;
const SPEC = {
  layers: [
    { units: 512, activation: 'relu' as const },
    { units: 512, activation: 'relu' as const },
    { units: 10, activation: 'linear' as const },
  ],
  loss: 'softmaxCrossEntropy' as const,
};

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  const bytes = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  return Buffer.compare(bytes(a), bytes(b)) === 0;
}

const ds = loadDataset({ name: 'mnist', testFraction: 0.15 }, 1);
const layout = denseLayout(SPEC, ds);

function trainer(): Trainer {
  const t = new Trainer(layout, ds, 1);
  t.setParams(0, initParams(layout, 1));
  return t;
}

/** Every leaf of one pass against its own pass; returns the cases that differ. */
async function check(backend: string): Promise<string[]> {
  await tf.setBackend(backend);
  const t = trainer();
  const bad: string[] = [];
  let cases = 0;
  for (const rows of [16, 32, 64, 128])
    for (let k = 1; k <= 8; k++) {
      const bounds = Array.from({ length: k + 1 }, (_, i) => i * rows);
      const from = 17 * k;
      const r = await t.leafGradients(from, bounds);
      if (!r) throw new Error('the dense kind gave no leaf pass');
      for (let i = 0; i < k; i++) {
        const alone = await t.gradients(from + bounds[i], from + bounds[i + 1]);
        const leaf = joinParts(r.grads.map((g) => g[i].dataSync() as Float32Array));
        cases++;
        if (!sameBits(leaf, alone.grads) || r.losses[i] !== alone.lossSum) bad.push(`${rows} rows × ${k}, leaf ${i}`);
      }
      r.dispose();
    }
  t.dispose();
  console.log(`${backend}: ${cases} leaves compared, ${bad.length} differ${bad.length ? `: ${bad.join('; ')}` : ''}`);
  return bad;
}

type Setting = 'per-worker' | 'one-pass' | 'per-leaf';

async function bench(backend: string, leaves: number, rounds: number): Promise<void> {
  await tf.setBackend(backend);
  const t = trainer();
  const time = async (s: Setting, round: number): Promise<number> => {
    const from = (round * ROWS) % (ds.train.n - ROWS);
    const w = {
      from,
      leaves: s === 'per-worker' ? 1 : leaves,
      first: 0,
      last: s === 'per-worker' ? 1 : leaves,
      batch: ROWS,
    };
    const t0 = performance.now();
    const r = await shardSums(t, w, false, s !== 'per-leaf');
    let sink = 0;
    for (const p of r.parts) sink += p[0]; // what the worker reads to send
    r.release();
    if (Number.isNaN(sink)) console.error('NaN gradient');
    return performance.now() - t0;
  };
  const SETTINGS: Setting[] = ['per-worker', 'one-pass', 'per-leaf'];
  for (let w = 0; w < 5; w++) for (const s of SETTINGS) await time(s, w); // warm-up: kernels, heap growth
  const ms: Record<Setting, number[]> = { 'per-worker': [], 'one-pass': [], 'per-leaf': [] };
  const ratios: Record<Setting, number[]> = { 'per-worker': [], 'one-pass': [], 'per-leaf': [] };
  for (let r = 0; r < rounds; r++) {
    const order = SETTINGS.map((_, i) => SETTINGS[(i + r) % SETTINGS.length]);
    const got = {} as Record<Setting, number>;
    for (const s of order) got[s] = await time(s, r);
    for (const s of SETTINGS) {
      ms[s].push(got[s]);
      ratios[s].push(got[s] / got['per-worker']);
    }
  }
  console.log(`${backend}, ${ROWS} rows per worker, ${leaves} leaves of ${ROWS / leaves} rows, ${rounds} rounds`);
  console.log('setting      ms (median)  ratio to per-worker (median of rounds)');
  for (const s of SETTINGS)
    console.log(
      `${s.padEnd(13)}${(median(ms[s]) ?? NaN).toFixed(1).padStart(11)}  ${(median(ratios[s]) ?? NaN).toFixed(3).padStart(10)}`,
    );
  t.dispose();
}

async function main(): Promise<void> {
  tf.enableProdMode();
  if (process.argv.includes('--check')) {
    const bad = [];
    for (const b of arg('--check-backends', 'wasm,cpu').split(',')) bad.push(...(await check(b)));
    if (bad.length) process.exitCode = 1;
  }
  await bench(arg('--backend', 'wasm'), Number(arg('--leaves', '4')), Number(arg('--rounds', '30')));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
