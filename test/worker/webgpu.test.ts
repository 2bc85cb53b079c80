/**
 * The webgpu backend: telling software adapters from GPUs, kernel coverage of every model
 * dptrain can express, and — on SwiftShader, where available — a Trainer and a calibration
 * on webgpu: no leaked tensors, gradients as on cpu.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu'; // registers its kernels; the backend itself needs navigator.gpu
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../shared/job/config.js';
import type { TargetKind } from '../../shared/datasets/index.js';
import { ACTIVATIONS, LOSSES, type Loss } from '../../shared/models/heads.js';
import { jobLayout } from '../../shared/job/job-layout.js';
import { denseFor } from '../helpers/layouts.js';
import { exampleConfig } from '../helpers/fixtures.js';
import { assertKernels } from '../../worker/kernel-check.js';
import { adapterLabel, softwareReason, type AdapterSummary } from '../../worker/webgpu.js';
import { webgpuEnv, webgpuSkip } from '../helpers/webgpu.js';

const LIMITS = {
  maxBufferSize: 1 << 30,
  maxStorageBufferBindingSize: 1 << 30,
  maxComputeWorkgroupStorageSize: 32768,
  maxComputeInvocationsPerWorkgroup: 1024,
};
const adapter = (o: Partial<AdapterSummary>): AdapterSummary => ({
  vendor: '',
  architecture: '',
  device: '',
  description: '',
  fallback: false,
  limits: LIMITS,
  ...o,
});

describe('software adapters', () => {
  it('a GPU is not software; its label names it', () => {
    // As Dawn reported an H200 with NVIDIA's driver 580 (scripts/gpu-check.ts on the device machine).
    const h200 = adapter({
      vendor: 'nvidia',
      architecture: '',
      device: 'nvidia-h200',
      description: 'NVIDIA: 580.159.04 580.159.4.0',
    });
    expect(softwareReason(h200)).toBeNull();
    expect(adapterLabel(h200)).toBe('nvidia nvidia-h200 (NVIDIA: 580.159.04 580.159.4.0)');
    expect(
      adapterLabel(adapter({ vendor: 'amd', architecture: 'rdna-3', device: 'x', description: 'AMD Radeon' })),
    ).toBe('amd rdna-3 (AMD Radeon)');
  });

  it('SwiftShader as Dawn reports it (fallback flag and name)', () => {
    const ss = adapter({
      vendor: 'google',
      architecture: 'swiftshader',
      device: 'swiftshader-device-subzero-',
      description: 'SwiftShader driver 5.0.0',
      fallback: true,
    });
    expect(softwareReason(ss)).toMatch(/fallback adapter/);
    expect(softwareReason({ ...ss, fallback: false })).toMatch(/"swiftshader" names a software renderer/);
  });

  it.each(['llvmpipe (LLVM 15.0.6, 256 bits)', 'Lavapipe', 'Microsoft Basic Render Driver software rasterizer'])(
    '%s is software',
    (description) => {
      expect(softwareReason(adapter({ vendor: 'mesa', description }))).not.toBeNull();
    },
  );

  it('an adapter with no names still gets a label', () => {
    expect(adapterLabel(adapter({}))).toBe('unknown adapter');
  });
});

describe('config allowSoftwareGpu', () => {
  it('defaults to false, takes a boolean, refuses anything else in one line', () => {
    expect(parseConfig({}).allowSoftwareGpu).toBe(false);
    expect(parseConfig({ allowSoftwareGpu: true, backend: 'webgpu' })).toMatchObject({
      allowSoftwareGpu: true,
      backend: 'webgpu',
    });
    expect(() => parseConfig({ allowSoftwareGpu: 'yes' })).toThrow(
      /^allowSoftwareGpu must be true or false, got "yes"$/,
    );
  });
});

describe('webgpu kernel coverage', () => {
  beforeAll(async () => {
    tf.enableProdMode();
    await tf.setBackend('cpu');
  });

  const targetsOf: Record<Loss, TargetKind> = {
    softmaxCrossEntropy: 'onehot',
    binaryCrossEntropy: 'binary',
    meanSquaredError: 'real',
  };
  const combos = ACTIVATIONS.flatMap((activation) => LOSSES.map((loss) => [activation, loss] as const));
  it.each(combos)('every kernel a %s model with %s needs is registered for webgpu', async (activation, loss) => {
    const layout = denseFor(
      {
        layers: [
          { units: 4, activation },
          { units: 3, activation: 'linear' },
        ],
        loss,
      },
      5,
      3,
      targetsOf[loss],
    );
    await expect(assertKernels(layout, 'webgpu')).resolves.toBeUndefined();
  });

  const examples = readdirSync(resolve(__dirname, '../../examples')).filter((f) => f.endsWith('.json'));
  it.each(examples)('examples/%s passes the webgpu kernel check', async (file) => {
    const cfg = parseConfig(exampleConfig(resolve(__dirname, '../../examples', file)));
    await expect(assertKernels(jobLayout(cfg), 'webgpu')).resolves.toBeUndefined();
  });
});

interface ChildReport {
  backend: string;
  adapter: AdapterSummary | null;
  leaked: number;
  calibrationN: number;
  calibrationGflops: number;
  gradRelDiff: number;
  lossRelDiff: number;
}

describe.skipIf(webgpuSkip !== null)('a Trainer on webgpu (SwiftShader)', () => {
  let report: ChildReport;
  beforeAll(async () => {
    const child = join(__dirname, '../helpers/webgpu-trainer-child.ts');
    const out = await new Promise<string>((res, rej) =>
      execFile(
        process.execPath,
        ['--import', 'tsx', child],
        { env: webgpuEnv ?? undefined, cwd: resolve(__dirname, '../..'), timeout: 50_000 },
        (err, stdout, stderr) => (err ? rej(new Error(`${err.message}\n${stderr}`)) : res(stdout)),
      ),
    );
    report = JSON.parse(out.trim().split('\n').pop() ?? '') as ChildReport;
  });

  it('runs on the webgpu backend and logs a described adapter', () => {
    expect(report.backend).toBe('webgpu');
    expect(report.adapter).toMatchObject({ fallback: true, architecture: 'swiftshader' });
    expect(report.adapter?.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
  });

  it('leaks no tensors over gradient steps, an evaluation and a calibration', () => {
    expect(report.leaked).toBe(0);
  });

  it('calibration stays at a small matmul on a slow adapter and measures something', () => {
    expect(report.calibrationN).toBeGreaterThanOrEqual(256);
    expect(report.calibrationN).toBeLessThanOrEqual(1024);
    expect(report.calibrationGflops).toBeGreaterThan(0);
  });

  it('one shard gradient matches cpu (tensor-relative ≤ 1e-4; measured ~1e-5)', () => {
    console.log(
      `webgpu vs cpu, one shard: gradient ${report.gradRelDiff.toExponential(2)}, loss ${report.lossRelDiff.toExponential(2)}`,
    );
    expect(report.gradRelDiff).toBeLessThanOrEqual(1e-4);
    expect(report.lossRelDiff).toBeLessThanOrEqual(1e-5);
    // Not bit-identical: the gradient really came from the GPU path, not a silent cpu fallback.
    expect(report.gradRelDiff).toBeGreaterThan(0);
  });
});
