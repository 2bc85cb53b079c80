/**
 * WebGPU tests without a GPU: Dawn (the `webgpu` package) on SwiftShader, the software Vulkan
 * driver Debian's chromium package ships (.ci/run installs it). Dawn loads libvulkan.so.1; if
 * the system has no Vulkan loader, the one chromium ships beside SwiftShader is used through
 * LD_LIBRARY_PATH — which only a new process reads, so webgpu tests run their GPU work in
 * child processes started with `webgpuEnv`. When any piece is missing, `webgpuSkip` says which.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../..');

/** Where Debian's chromium-common puts SwiftShader's ICD (find another with `dpkg -L chromium-common | grep -i swiftshader`). */
const ICD_CANDIDATES = ['/usr/lib/chromium/vk_swiftshader_icd.json', '/usr/lib64/chromium/vk_swiftshader_icd.json'];

/** What the probe child prints: the adapter Dawn found, or null. */
const PROBE = `
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
const a = await create([]).requestAdapter();
process.stdout.write(JSON.stringify(a ? { vendor: a.info.vendor, description: a.info.description } : null));
`;

function swiftshaderEnv(icd: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    VK_ICD_FILENAMES: icd,
    // Dawn and the Vulkan loader want a runtime directory; CI containers often have none.
    XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? mkdtempSync(join(tmpdir(), 'dptrain-xdg-')),
  };
  const chromiumLoader = join(dirname(icd), 'libvulkan.so.1');
  if (existsSync(chromiumLoader)) env.LD_LIBRARY_PATH = [dirname(icd), process.env.LD_LIBRARY_PATH].filter(Boolean).join(':');
  return env;
}

function probe(): { env: NodeJS.ProcessEnv | null; skip: string | null; adapter: string } {
  const icd = ICD_CANDIDATES.find((p) => existsSync(p));
  if (!icd) return { env: null, skip: `no SwiftShader Vulkan ICD (looked for ${ICD_CANDIDATES.join(', ')}; apt-get install chromium)`, adapter: '' };
  const env = swiftshaderEnv(icd);
  try {
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', PROBE], { cwd: ROOT, env, encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
    const found = JSON.parse(out) as { vendor: string; description: string } | null;
    if (!found) return { env: null, skip: `Dawn found no adapter with ${icd}`, adapter: '' };
    return { env, skip: null, adapter: `${found.vendor} ${found.description}` };
  } catch (e) {
    return { env: null, skip: `Dawn did not start (${(e as Error).message.split('\n')[0]})`, adapter: '' };
  }
}

const probed = probe();

/** Environment for child processes that run webgpu on SwiftShader; null when unavailable. */
export const webgpuEnv: NodeJS.ProcessEnv | null = probed.env;

/** Why webgpu tests are skipped here, or null when they run. */
export const webgpuSkip: string | null = probed.skip;

/** The adapter the probe found, e.g. "google SwiftShader driver 5.0.0". */
export const webgpuAdapter: string = probed.adapter;

if (webgpuSkip) console.log(`webgpu tests skipped: ${webgpuSkip}`);
