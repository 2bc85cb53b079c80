/**
 * WebGPU workers through the real CLI, on SwiftShader (a software Vulkan driver; see
 * helpers/webgpu.ts) or, with DPTRAIN_TEST_VK_ICD, on a GPU: training lands on the
 * single-process cpu reference within a tolerance measured here, every activation and loss
 * trains, a webgpu and a wasm worker share one job, and (on SwiftShader) a software adapter is
 * refused unless --allow-software-gpu.
 *
 * Tolerance: GPU kernels sum in another order than cpu's, and Adam turns those float32
 * differences into parameter differences. Measured with these tests on SwiftShader 5.0.0
 * (chromium 156, Debian 12), tensor-relative ‖Δ‖∞/‖ref‖∞, the same on every run: 4.8e-6 with
 * 1 and 2 webgpu workers (spirals, 20 steps), 2.8e-6 webgpu + wasm, 4.1e-5 for the
 * relu/sigmoid/gelu/tanh model (10 steps), 3.3e-6 and 2.9e-7 for the xor models. On an NVIDIA
 * H200 (driver 580, Vulkan; the device machine, DPTRAIN_TEST_VK_ICD set to the driver's ICD):
 * 4.15e-6 and 4.31e-6 with 1 and 2 workers, 5.03e-5 for the relu/sigmoid/gelu/tanh model,
 * 1.28e-6 and 2.75e-7 for the xor models. The bound, GPU_TOLERANCE = 2e-4, is 4× the worst.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLI, exited, freePort, readSummary, readWeights, runCli } from '../helpers/cli.js';
import { referenceTrain, tensorRelDiff } from '../helpers/reference.js';
import { webgpuAdapter, webgpuEnv, webgpuSkip, webgpuSoftware } from '../helpers/webgpu.js';
import { equivalenceSetup, EQUIV_JOB } from '../helpers/equivalence-job.js';

const GPU_TOLERANCE = 2e-4;

const JOB = EQUIV_JOB;
const env = webgpuEnv ?? undefined;
const setup = equivalenceSetup;

describe.skipIf(webgpuSkip !== null)(`webgpu workers on ${webgpuAdapter || 'no adapter'}`, () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  });

  let base: ReturnType<typeof setup>;
  let reference: Float32Array;
  beforeAll(async () => {
    base = setup('webgpu', JOB);
    reference = await referenceTrain(base.cfg);
  });

  it.each([1, 2])('%i webgpu worker(s), 20 steps: land on the cpu reference within the GPU tolerance', async (n) => {
    const out = join(base.dir, `w${n}`);
    const r = await runCli(
      [
        'train',
        '--config',
        base.file,
        '--workers',
        String(n),
        '--backend',
        'webgpu',
        '--allow-software-gpu',
        '--out',
        out,
      ],
      50_000,
      env,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(readSummary(out)).toMatchObject({ backend: 'webgpu', workers: n });
    const diff = tensorRelDiff(readWeights(out), reference, base.slots);
    console.log(
      `webgpu (${webgpuAdapter}), ${n} worker(s), 20 steps: tensor-relative max diff ${diff.toExponential(2)}`,
    );
    expect(diff).toBeLessThanOrEqual(GPU_TOLERANCE);
    expect(tensorRelDiff(readWeights(out), base.init, base.slots)).toBeGreaterThan(1e-2); // it trained
  });

  // Every activation (relu, sigmoid, gelu, tanh, linear) and every loss, trained on the GPU.
  const MODELS = [
    {
      data: { name: 'spirals', samples: 300 },
      loss: 'softmaxCrossEntropy',
      acts: ['relu', 'sigmoid', 'gelu', 'tanh'],
      out: 2,
      batchSize: 40,
    },
    { data: { name: 'xor' }, loss: 'binaryCrossEntropy', acts: ['tanh', 'gelu'], out: 1, batchSize: 4 },
    { data: { name: 'xor' }, loss: 'meanSquaredError', acts: ['relu', 'sigmoid'], out: 1, batchSize: 4 },
  ];
  it.each(MODELS)('$loss with $acts trains on webgpu and matches the reference', async (m) => {
    const job = {
      seed: 11,
      data: m.data,
      model: {
        layers: [...m.acts.map((activation) => ({ units: 12, activation })), { units: m.out, activation: 'linear' }],
        loss: m.loss,
      },
      steps: 10,
      batchSize: m.batchSize,
      evalEvery: 0,
      optimizer: { lr: 0.02 },
      backend: 'webgpu',
      allowSoftwareGpu: true, // the config key, where the other tests pass the flag
    };
    const t = setup(`webgpu-${m.loss}`, job);
    const out = join(t.dir, 'run');
    const r = await runCli(['train', '--config', t.file, '--workers', '1', '--out', out], 50_000, env);
    expect(r.code, r.stderr).toBe(0);
    const diff = tensorRelDiff(readWeights(out), await referenceTrain(t.cfg), t.slots);
    console.log(
      `webgpu (${webgpuAdapter}), ${m.loss} [${m.acts.join(', ')}], 10 steps: tensor-relative max diff ${diff.toExponential(2)}`,
    );
    expect(diff).toBeLessThanOrEqual(GPU_TOLERANCE);
  });

  // A worker that cannot reach its coordinator: it picks its backend (and logs it) first.
  const lone = (...flags: string[]) =>
    runCli(['worker', '--connect', 'ws://127.0.0.1:1', '--connect-timeout', '0', ...flags], 30_000, env);

  it.skipIf(!webgpuSoftware)(
    '--backend webgpu on a software adapter without --allow-software-gpu: one line naming the flag',
    async () => {
      const r = await lone('--backend', 'webgpu');
      expect(r.code).toBe(1);
      const ours = r.stderr.split('\n').filter((l) => l.startsWith('dptrain:'));
      expect(ours).toHaveLength(1);
      expect(ours[0]).toMatch(
        /^dptrain: BACKEND_UNAVAILABLE: --backend webgpu: the WebGPU adapter is software, not a GPU \(google swiftshader .*\); pass --allow-software-gpu/,
      );
      expect(r.stderr).not.toMatch(/^\s+at /m); // no stack trace
    },
  );

  it.skipIf(!webgpuSoftware)(
    'auto skips a software adapter, saying why; with --allow-software-gpu it takes it',
    async () => {
      const skipped = await lone('--backend', 'auto');
      expect(skipped.code).toBe(1); // CONNECT_FAILED, after choosing
      const chosen = /backend selected backend=(\S+).*$/m.exec(skipped.stderr);
      expect(chosen?.[1]).not.toBe('webgpu');
      expect(chosen?.[0]).toMatch(/webgpu: the WebGPU adapter is software, not a GPU .*pass --allow-software-gpu/);
      const allowed = await lone('--backend', 'auto', '--allow-software-gpu');
      expect(/backend selected backend=(\S+)/.exec(allowed.stderr)?.[1]).toBe('webgpu');
      expect(allowed.stderr).toMatch(
        /adapter=\{"vendor":"google","architecture":"swiftshader".*"maxStorageBufferBindingSize":\d+/,
      );
    },
  );

  it.skipIf(webgpuSoftware)('auto takes a hardware adapter, naming it', async () => {
    const r = await lone('--backend', 'auto');
    expect(/backend selected backend=(\S+)/.exec(r.stderr)?.[1]).toBe('webgpu');
    expect(r.stderr).toContain(webgpuAdapter);
  });

  it('a webgpu and a wasm worker train one job side by side: both recorded with their backend and measured FLOP/s', async () => {
    const t = setup('webgpu-mixed', { ...JOB, minWorkers: 2 });
    const port = await freePort();
    const out = join(t.dir, 'run');
    const coord = spawn(
      process.execPath,
      [CLI, 'coordinator', '--listen', `127.0.0.1:${port}`, '--config', t.file, '--out', out],
      { stdio: 'ignore' },
    );
    children.push(coord);
    const worker = (backend: string, ...more: string[]) => {
      const w = spawn(
        process.execPath,
        [CLI, 'worker', '--connect', `ws://127.0.0.1:${port}`, '--backend', backend, '--name', backend, ...more],
        { stdio: 'ignore', env },
      );
      children.push(w);
      return w;
    };
    const workers = [worker('webgpu', '--allow-software-gpu'), worker('wasm')];
    expect(await exited(coord)).toBe(0);
    expect(await Promise.all(workers.map(exited))).toEqual([0, 0]);

    const s = readSummary(out);
    expect(s.workers).toBe(2);
    expect(s.backend.split(',').sort()).toEqual(['wasm', 'webgpu']);
    const log = readFileSync(join(out, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string; backend?: string; attainableGflops?: number; why?: string });
    const ready = log.filter((l) => l.msg === 'worker ready');
    // The adapter's name reaches the coordinator's log with the worker's reason.
    expect(log.find((l) => l.msg === 'worker backend choice' && l.backend === 'webgpu')?.why).toContain(
      `WebGPU (Dawn) on ${webgpuAdapter}`,
    );
    expect(ready.map((l) => l.backend).sort()).toEqual(['wasm', 'webgpu']);
    for (const l of ready) expect(l.attainableGflops, l.backend).toBeGreaterThan(0);
    expect(s.attainableFlops).toBeCloseTo(
      ready.reduce((sum, l) => sum + (l.attainableGflops ?? 0) * 1e9, 0),
      -8,
    ); // the log rounds to 0.01 GFLOP/s
    const diff = tensorRelDiff(readWeights(out), reference, base.slots);
    console.log(
      `webgpu + wasm workers, 20 steps: tensor-relative max diff ${diff.toExponential(2)}; attainable GFLOP/s ` +
        `${ready.map((l) => `${l.backend} ${l.attainableGflops}`).join(', ')}`,
    );
    expect(diff).toBeLessThanOrEqual(GPU_TOLERANCE);
  });
});
