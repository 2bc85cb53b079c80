/**
 * WebGPU in Node through Dawn (the optional `webgpu` package): find an adapter, describe it,
 * tell a software rasterizer (SwiftShader, llvmpipe, lavapipe) from a real GPU, and expose the
 * adapter as navigator.gpu so that @tensorflow/tfjs-backend-webgpu can start on it. Dawn
 * reaches the GPU through Vulkan on Linux: the GPU's Vulkan driver plus the loader
 * (libvulkan.so.1) are all a host needs.
 */
import * as tf from '@tensorflow/tfjs';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** The few adapter fields we read; typed locally so the build does not need the optional package. */
interface AdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}

export interface GpuAdapterLike {
  info?: AdapterInfoLike;
  requestAdapterInfo?: () => Promise<AdapterInfoLike>;
  isFallbackAdapter?: boolean;
  limits: Record<string, number>;
}

interface GpuLike {
  requestAdapter(options?: { powerPreference?: string }): Promise<GpuAdapterLike | null>;
}

interface DawnModule {
  create(flags: string[]): GpuLike;
  globals: Record<string, unknown>;
}

/** What the worker logs about its adapter. */
export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  fallback: boolean;
  limits: {
    maxBufferSize: number;
    maxStorageBufferBindingSize: number;
    maxComputeWorkgroupStorageSize: number;
    maxComputeInvocationsPerWorkgroup: number;
  };
}

export interface FoundAdapter {
  adapter: GpuAdapterLike;
  summary: AdapterSummary;
  /** Why this adapter is a software renderer, or null for a hardware GPU. */
  software: string | null;
}

/** Kept across calls: Dawn's GPU object, one per process (creating it again is costly). */
let gpu: GpuLike | null = null;

const SOFTWARE_NAMES = /swiftshader|llvmpipe|lavapipe|software rasterizer/i;

/** Why `s` describes a software renderer (a CPU pretending to be a GPU), or null if it does not. */
export function softwareReason(s: AdapterSummary): string | null {
  if (s.fallback) return 'it reports itself as a fallback adapter';
  const named = [s.vendor, s.architecture, s.device, s.description].find((f) => SOFTWARE_NAMES.test(f));
  return named ? `"${named}" names a software renderer` : null;
}

/**
 * "google swiftshader (SwiftShader driver 5.0.0)": vendor, architecture and description. Where
 * the architecture is empty the device takes its place: NVIDIA's driver (580, on an H200)
 * reports none, and its description is only the driver version, so the device names the GPU:
 * "nvidia nvidia-h200 (NVIDIA: 580.159.04 580.159.4.0)".
 */
export function adapterLabel(s: AdapterSummary): string {
  const name = [s.vendor, s.architecture || s.device].filter(Boolean).join(' ') || 'unknown adapter';
  const detail = s.description || s.device;
  return detail ? `${name} (${detail})` : name;
}

async function loadDawn(): Promise<DawnModule | string> {
  const pkg = 'webgpu'; // a variable: the package is optional, so the compiler must not resolve it
  try {
    return (await import(pkg)) as DawnModule;
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    return msg.includes('Cannot find')
      ? 'the webgpu package is not installed'
      : `the webgpu package failed to load (${msg})`;
  }
}

/** Where distributions put libvulkan.so.1, besides LD_LIBRARY_PATH and the ldconfig cache. */
const LIB_DIRS = [
  '/usr/lib/x86_64-linux-gnu',
  '/usr/lib/aarch64-linux-gnu',
  '/usr/lib64',
  '/usr/lib',
  '/lib/x86_64-linux-gnu',
  '/lib64',
];

/**
 * Linux: is there a Vulkan loader for Dawn to open? Without one, Dawn prints a native warning
 * that reads like a stack trace, on every worker of a CPU-only host under `auto`; so look first.
 */
export function vulkanLoaderMissing(): boolean {
  if (process.platform !== 'linux') return false; // Dawn uses Metal / D3D12 there
  const dirs = [...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean), ...LIB_DIRS];
  if (dirs.some((d) => existsSync(join(d, 'libvulkan.so.1')))) return false;
  for (const ldconfig of ['ldconfig', '/sbin/ldconfig']) {
    try {
      return !execFileSync(ldconfig, ['-p'], {
        encoding: 'utf8',
        timeout: 5000,
        stdio: ['ignore', 'pipe', 'ignore'],
      }).includes('libvulkan.so.1');
    } catch {
      // not on PATH: try the next
    }
  }
  return true;
}

async function describe(adapter: GpuAdapterLike): Promise<AdapterSummary> {
  // Dawn exposes adapter.info (current spec); older bindings had requestAdapterInfo().
  const info = adapter.info ?? (adapter.requestAdapterInfo ? await adapter.requestAdapterInfo() : {});
  const l = adapter.limits;
  return {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
    fallback: Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter),
    limits: {
      maxBufferSize: l.maxBufferSize,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    },
  };
}

export const NO_LOADER =
  "no Vulkan loader (libvulkan.so.1) on this host: install libvulkan1 (and the GPU's Vulkan driver, if it has none)";

/** The high-performance adapter Dawn offers, described; or why there is none. */
export async function findAdapter(): Promise<FoundAdapter | string> {
  if (!gpu) {
    if (vulkanLoaderMissing()) return NO_LOADER;
    const dawn = await loadDawn();
    if (typeof dawn === 'string') return dawn;
    // Dawn's WebGPU classes (GPUBufferUsage, GPUMapMode, …) are globals in a browser; TF.js uses them so.
    for (const [k, v] of Object.entries(dawn.globals))
      if (!(k in globalThis)) Object.defineProperty(globalThis, k, { value: v, configurable: true, writable: true });
    gpu = dawn.create([]);
  }
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) return 'Dawn found no WebGPU adapter (no Vulkan driver, or no libvulkan.so.1 loader, on this host)';
  const summary = await describe(adapter);
  return { adapter, summary, software: softwareReason(summary) };
}

/**
 * Make `adapter` the one TF.js's webgpu backend starts on, then load that backend. The backend
 * registers itself only if navigator.gpu exists when it is first imported, so this runs first.
 */
export async function installWebgpuBackend(adapter: GpuAdapterLike): Promise<string | null> {
  const nav = { gpu: { requestAdapter: async () => adapter } };
  // Node ≥ 21 defines a read-only navigator getter; defineProperty replaces it either way.
  Object.defineProperty(globalThis, 'navigator', { value: nav, configurable: true, writable: true });
  try {
    await import('@tensorflow/tfjs-backend-webgpu');
  } catch (e) {
    return `@tensorflow/tfjs-backend-webgpu failed to load (${(e as Error).message.split('\n')[0]})`;
  }
  if (!tf.findBackendFactory('webgpu'))
    return '@tensorflow/tfjs-backend-webgpu was loaded before navigator.gpu existed, so it did not register';
  return null;
}
