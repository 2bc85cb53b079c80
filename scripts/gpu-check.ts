/**
 * For a GPU host: is the webgpu path fast? Per backend (webgpu, wasm, cpu): a square float32
 * matmul (4096³ on webgpu by default) and a short single-process training run of the reference
 * MLP (784-512-512-10, MNIST), as GFLOP/s and as MFU against a declared peak (default: H200
 * fp32 dense, 67e12 FLOP/s).
 *   npx tsc -p tsconfig.json && node dist/scripts/gpu-check.js [--peak 67e12] [--n 4096]
 *     [--batch 1024] [--steps 20] [--backends webgpu,wasm,cpu] [--allow-software-gpu]
 */
import * as tf from '@tensorflow/tfjs';
import { singleProcessSamplesPerSec } from '../cli/baseline.js';
import { parseConfig, type BackendName } from '../shared/job/config.js';
import { describeError } from '../shared/util/errors.js';
import { jobLayout } from '../shared/job/job-layout.js';
import { modelKind } from '../shared/models/index.js';
import { selectBackend } from '../worker/backend.js';
import { adapterLabel } from '../worker/webgpu.js';

/** The JS backends would take minutes on a 4096³ matmul; they get at most this n. */
const CPU_MAX_N = 1024;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}

const peak = Number(arg('peak', '67e12'));
const gpuN = Number(arg('n', '4096'));
const batch = Number(arg('batch', '1024'));
const steps = Number(arg('steps', '20'));
const backends = arg('backends', 'webgpu,wasm,cpu').split(',') as BackendName[];
const allowSoftwareGpu = process.argv.includes('--allow-software-gpu');

/** FLOP/s of n×n matmuls: one warm-up, then repeats for about a second (at least 3). */
async function matmulFlops(n: number): Promise<number> {
  const [a, b] = [tf.randomUniform([n, n]), tf.randomUniform([n, n])];
  const once = async () => {
    const s = tf.tidy(() => tf.matMul(a, b).sum()); // a scalar back: time the matmul, not the transfer
    await s.data();
    s.dispose();
  };
  await once();
  let count = 0;
  const t0 = performance.now();
  while (count < 3 || performance.now() - t0 < 1000) {
    await once();
    count++;
  }
  const s = (performance.now() - t0) / 1000;
  tf.dispose([a, b]);
  return (count * 2 * n ** 3) / s;
}

const cfg = parseConfig({
  data: { name: 'mnist' },
  model: {
    layers: [{ units: 512, activation: 'relu' }, { units: 512, activation: 'relu' }, { units: 10 }],
    loss: 'softmaxCrossEntropy',
  },
});
const layout = jobLayout(cfg);
const perSample = modelKind(layout.spec).flops(layout).training;
const pct = (f: number) => `${((100 * f) / peak).toFixed(3)}%`;

console.log(
  `peak ${peak.toExponential(2)} FLOP/s; training: 784-512-512-10 MLP, batch ${batch}, ${steps} steps (${perSample} FLOPs/sample)`,
);
for (const name of backends) {
  try {
    const choice = await selectBackend(name, { allowSoftwareGpu });
    const n = name === 'webgpu' ? gpuN : Math.min(gpuN, CPU_MAX_N);
    const mm = await matmulFlops(n);
    const sps = await singleProcessSamplesPerSec('engine', cfg, batch, steps, 5);
    const where = choice.adapter ? ` on ${adapterLabel(choice.adapter)}` : '';
    console.log(`${name}${where}`);
    console.log(`  matmul ${n}³: ${(mm / 1e9).toFixed(2)} GFLOP/s, MFU ${pct(mm)}`);
    console.log(
      `  training: ${sps.toFixed(0)} samples/s, ${((sps * perSample) / 1e9).toFixed(2)} GFLOP/s, MFU ${pct(sps * perSample)}`,
    );
  } catch (e) {
    console.log(`${name}: skipped (${describeError(e)})`);
  }
}
process.exit(0);
