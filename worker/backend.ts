/**
 * Choose and load a TensorFlow.js backend. `auto` tries, in order: tfjs-node-gpu with a GPU
 * present, webgpu on a hardware adapter, tfjs-node, wasm, cpu — and says why it settled where
 * it did. The tfjs-node packages and webgpu (Dawn) are optionalDependencies (tfjs-node's
 * install downloads libtensorflow; Dawn is a native binary), so any may be missing.
 */
import * as tf from '@tensorflow/tfjs';
import { execFileSync } from 'node:child_process';
import type { BackendName } from '../shared/job/config.js';
import { fail } from '../shared/util/errors.js';
import {
  adapterLabel,
  findAdapter,
  installWebgpuBackend,
  NO_LOADER,
  vulkanLoaderMissing,
  type AdapterSummary,
} from './webgpu.js';
import { probeAdapter } from './webgpu-probe.js';

export interface BackendChoice {
  /** The TF.js backend name in use: tensorflow, webgpu, wasm or cpu. */
  name: string;
  /** The package that provided it. */
  provider: string;
  /** One line: why this backend (and why not the ones before it). */
  reason: string;
  /** webgpu only: the adapter it runs on. */
  adapter?: AdapterSummary;
  /** What Dawn printed while `auto` probed for an adapter in a child process (for the log, not the terminal). */
  probeOutput?: string;
}

export interface BackendOptions {
  /** Let webgpu run on a software adapter (SwiftShader, llvmpipe): a CPU, slowly. */
  allowSoftwareGpu?: boolean;
}

/** A failed attempt says why, and may name the fix (else: fall back with --backend auto). */
type Attempt = { ok: true; choice: BackendChoice } | { ok: false; why: string; fix?: string; probeOutput?: string };

function gpuVisible(): string | null {
  try {
    const out = execFileSync('nvidia-smi', ['-L'], {
      encoding: 'utf8',
      timeout: 5000,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const first = out.split('\n').find((l) => l.startsWith('GPU'));
    return first ?? null;
  } catch {
    return null;
  }
}

async function importOptional(pkg: string): Promise<string | null> {
  try {
    await import(pkg);
    return null;
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    return msg.includes('Cannot find') ? `${pkg} is not installed` : `${pkg} failed to load (${msg})`;
  }
}

async function activate(name: string): Promise<boolean> {
  try {
    return (await tf.setBackend(name)) && tf.getBackend() === name;
  } catch {
    return false;
  }
}

async function tryTensorflowGpu(): Promise<Attempt> {
  const gpu = gpuVisible();
  if (!gpu) return { ok: false, why: 'no GPU visible (nvidia-smi -L found none)' };
  const err = await importOptional('@tensorflow/tfjs-node-gpu');
  if (err) return { ok: false, why: err };
  if (!(await activate('tensorflow')))
    return { ok: false, why: 'tfjs-node-gpu loaded but its backend did not initialize' };
  return {
    ok: true,
    choice: { name: 'tensorflow', provider: '@tensorflow/tfjs-node-gpu', reason: `GPU found: ${gpu}` },
  };
}

/** `auto` looks in a child process first (webgpu-probe.ts), so a host without a usable GPU stays quiet. */
async function probeWebgpu(o: BackendOptions): Promise<Attempt | null> {
  if (vulkanLoaderMissing()) return { ok: false, why: NO_LOADER };
  const p = await probeAdapter();
  const probeOutput = p.native || undefined;
  if (!p.adapter) return { ok: false, why: p.why ?? 'no WebGPU adapter', probeOutput };
  if (p.software && !o.allowSoftwareGpu) {
    const label = adapterLabel({
      ...p.adapter,
      limits: {
        maxBufferSize: 0,
        maxStorageBufferBindingSize: 0,
        maxComputeWorkgroupStorageSize: 0,
        maxComputeInvocationsPerWorkgroup: 0,
      },
    });
    return {
      ok: false,
      why: `the WebGPU adapter is software, not a GPU (${label}: ${p.software})`,
      fix: 'pass --allow-software-gpu to train on it anyway (slow; for tests)',
      probeOutput,
    };
  }
  return null; // an adapter worth taking: load Dawn here
}

async function tryWebgpu(o: BackendOptions & { probe?: boolean }): Promise<Attempt> {
  if (o.probe) {
    const refused = await probeWebgpu(o);
    if (refused) return refused;
  }
  const found = await findAdapter();
  if (typeof found === 'string') return { ok: false, why: found };
  const label = adapterLabel(found.summary);
  if (found.software && !o.allowSoftwareGpu) {
    return {
      ok: false,
      why: `the WebGPU adapter is software, not a GPU (${label}: ${found.software})`,
      fix: 'pass --allow-software-gpu to train on it anyway (slow; for tests)',
    };
  }
  const err = await installWebgpuBackend(found.adapter);
  if (err) return { ok: false, why: err };
  if (!(await activate('webgpu'))) return { ok: false, why: `the webgpu backend did not initialize on ${label}` };
  const kind = found.software ? 'software adapter, allowed by --allow-software-gpu' : 'GPU';
  return {
    ok: true,
    choice: {
      name: 'webgpu',
      provider: '@tensorflow/tfjs-backend-webgpu',
      reason: `WebGPU (Dawn) on ${label}, ${kind}`,
      adapter: found.summary,
    },
  };
}

async function tryTensorflow(): Promise<Attempt> {
  const err = await importOptional('@tensorflow/tfjs-node');
  if (err) return { ok: false, why: err };
  if (!(await activate('tensorflow'))) return { ok: false, why: 'tfjs-node loaded but its backend did not initialize' };
  return {
    ok: true,
    choice: { name: 'tensorflow', provider: '@tensorflow/tfjs-node', reason: 'native libtensorflow (CPU)' },
  };
}

async function tryWasm(): Promise<Attempt> {
  const err = await importOptional('@tensorflow/tfjs-backend-wasm');
  if (err) return { ok: false, why: err };
  if (!(await activate('wasm'))) return { ok: false, why: 'the wasm backend did not initialize' };
  return {
    ok: true,
    choice: { name: 'wasm', provider: '@tensorflow/tfjs-backend-wasm', reason: 'WebAssembly kernels' },
  };
}

async function tryCpu(): Promise<Attempt> {
  if (!(await activate('cpu'))) return { ok: false, why: 'the cpu backend did not initialize' };
  return {
    ok: true,
    choice: { name: 'cpu', provider: '@tensorflow/tfjs-backend-cpu', reason: 'plain JavaScript kernels' },
  };
}

const ATTEMPTS: Record<Exclude<BackendName, 'auto'>, (o: BackendOptions & { probe?: boolean }) => Promise<Attempt>> = {
  'tensorflow-gpu': tryTensorflowGpu,
  webgpu: tryWebgpu,
  tensorflow: tryTensorflow,
  wasm: tryWasm,
  cpu: tryCpu,
};

export async function selectBackend(requested: BackendName, o: BackendOptions = {}): Promise<BackendChoice> {
  // Prod mode silences TF.js's "install tfjs-node" banner (we log our own choice instead) and
  // skips its per-op debug checks.
  tf.enableProdMode();
  if (requested !== 'auto') {
    const r = await ATTEMPTS[requested](o);
    if (!r.ok)
      fail('BACKEND_UNAVAILABLE', `--backend ${requested}: ${r.why}; ${r.fix ?? 'use --backend auto to fall back'}`);
    await tf.ready();
    return { ...r.choice, reason: `requested; ${r.choice.reason}` };
  }
  const skipped: string[] = [];
  let probeOutput: string | undefined;
  for (const name of ['tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'] as const) {
    const r = await ATTEMPTS[name]({ ...o, probe: true });
    if (r.ok) {
      await tf.ready();
      const why = skipped.length ? `; skipped ${skipped.join('; ')}` : '';
      return { ...r.choice, reason: `auto: ${r.choice.reason}${why}`, ...(probeOutput ? { probeOutput } : {}) };
    }
    probeOutput ??= r.probeOutput;
    skipped.push(`${name}: ${r.why}${r.fix ? ` (${r.fix})` : ''}`);
  }
  return fail('BACKEND_UNAVAILABLE', `no TF.js backend could start (${skipped.join('; ')})`);
}
