/**
 * Look for a WebGPU adapter in a child process. Dawn writes native warnings straight to the
 * process's stderr as it starts (on a CPU host with Mesa's Vulkan drivers: "XDG_RUNTIME_DIR is
 * invalid or not set", "Vulkan shaderUniform*ArrayDynamicIndexing required … at
 * InitializeImpl (…)"), which read like a crash to a user who asked for nothing GPU-related.
 * `--backend auto` asks here first and loads Dawn in its own process only when there is an
 * adapter worth taking; what Dawn printed is kept for the log instead.
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { softwareReason, type AdapterSummary } from './webgpu.js';

export interface Probe {
  /** The adapter Dawn offered (limits not read), or null with the reason. */
  adapter: Omit<AdapterSummary, 'limits'> | null;
  /** Why there is no adapter (null when there is one). */
  why: string | null;
  /** Why that adapter is software, or null for a hardware GPU. */
  software: string | null;
  /** What Dawn wrote to stderr, trimmed (empty when it was quiet). */
  native: string;
}

const script = (entry: string) => `
const { create, globals } = await import(${JSON.stringify(entry)});
Object.assign(globalThis, globals);
const a = await create([]).requestAdapter({ powerPreference: 'high-performance' });
const i = a ? (a.info ?? {}) : null;
process.stdout.write(JSON.stringify(i ? { vendor: i.vendor ?? '', architecture: i.architecture ?? '', device: i.device ?? '', description: i.description ?? '', fallback: Boolean(i.isFallbackAdapter ?? a.isFallbackAdapter) } : null));
process.exit(0);
`;

export async function probeAdapter(timeoutMs = 30_000): Promise<Probe> {
  let entry: string;
  try {
    entry = pathToFileURL(createRequire(import.meta.url).resolve('webgpu')).href;
  } catch {
    return { adapter: null, why: 'the webgpu package is not installed', software: null, native: '' };
  }
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', script(entry)],
      { timeout: timeoutMs, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const native = stderr.trim();
        if (err && !stdout) {
          const first = native.split('\n').find((l) => l.trim()) ?? String(err.message).split('\n')[0];
          return resolve({ adapter: null, why: `Dawn did not start (${first.trim()})`, software: null, native });
        }
        let adapter: Probe['adapter'] = null;
        try {
          adapter = JSON.parse(stdout) as Probe['adapter'];
        } catch {
          return resolve({ adapter: null, why: `the adapter probe printed no answer`, software: null, native });
        }
        if (!adapter)
          return resolve({
            adapter: null,
            why: 'Dawn found no WebGPU adapter (no Vulkan driver, or no libvulkan.so.1 loader, on this host)',
            software: null,
            native,
          });
        resolve({
          adapter,
          why: null,
          software: softwareReason({
            ...adapter,
            limits: {
              maxBufferSize: 0,
              maxStorageBufferBindingSize: 0,
              maxComputeWorkgroupStorageSize: 0,
              maxComputeInvocationsPerWorkgroup: 0,
            },
          }),
          native,
        });
      },
    );
  });
}
