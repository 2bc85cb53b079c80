/**
 * WebGPU tests without a GPU: Dawn (the `webgpu` package) on SwiftShader, the software Vulkan
 * driver Debian's chromium package ships (.ci/run installs it). Dawn loads libvulkan.so.1; if
 * the system has no Vulkan loader, the one chromium ships beside SwiftShader is used through
 * LD_LIBRARY_PATH — which only a new process reads, so webgpu tests run their GPU work in
 * child processes started with `webgpuEnv`. When any piece is missing, `webgpuSkip` says which.
 * On a GPU host, DPTRAIN_TEST_VK_ICD=<the driver's ICD json> runs the same tests on the GPU
 * (`webgpuSoftware` is then false, and the tests about refusing software adapters skip).
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { findIcd, SWIFTSHADER_ICDS, vulkanEnv } from '../../scripts/vulkan-env.js';
import { adapterLabel, softwareReason, type AdapterSummary } from '../../worker/webgpu.js';

const ROOT = resolve(__dirname, '../..');

const ICD_CANDIDATES = process.env.DPTRAIN_TEST_VK_ICD ? [process.env.DPTRAIN_TEST_VK_ICD] : SWIFTSHADER_ICDS;

/** What the probe child prints: the adapter Dawn found, or null. */
const PROBE = `
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
const a = await create([]).requestAdapter();
process.stdout.write(JSON.stringify(a ? { vendor: a.info.vendor, architecture: a.info.architecture, device: a.info.device, description: a.info.description, fallback: Boolean(a.info.isFallbackAdapter) } : null));
`;

interface Probed {
  env: NodeJS.ProcessEnv | null;
  skip: string | null;
  adapter: string;
  software: boolean;
}

function probe(): Probed {
  const none = { env: null, adapter: '', software: true };
  const icd = findIcd(ICD_CANDIDATES);
  if (!icd)
    return {
      ...none,
      skip: `no Vulkan ICD (looked for ${ICD_CANDIDATES.join(', ')}; apt-get install chromium for SwiftShader)`,
    };
  const env = vulkanEnv(icd);
  try {
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', PROBE], {
      cwd: ROOT,
      env,
      encoding: 'utf8',
      timeout: 30_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const found = JSON.parse(out) as Omit<AdapterSummary, 'limits'> | null;
    if (!found) return { ...none, skip: `Dawn found no adapter with ${icd}` };
    const summary = {
      ...found,
      limits: {
        maxBufferSize: 0,
        maxStorageBufferBindingSize: 0,
        maxComputeWorkgroupStorageSize: 0,
        maxComputeInvocationsPerWorkgroup: 0,
      },
    };
    return { env, skip: null, adapter: adapterLabel(summary), software: softwareReason(summary) !== null };
  } catch (e) {
    return { ...none, skip: `Dawn did not start (${(e as Error).message.split('\n')[0]})` };
  }
}

const probed = probe();

/** Environment for child processes that run webgpu on SwiftShader; null when unavailable. */
export const webgpuEnv: NodeJS.ProcessEnv | null = probed.env;

/** Why webgpu tests are skipped here, or null when they run. */
export const webgpuSkip: string | null = probed.skip;

/** The adapter the probe found, e.g. "google swiftshader (SwiftShader driver 5.0.0)". */
export const webgpuAdapter: string = probed.adapter;

/** Whether that adapter is a software renderer (SwiftShader: the tests' usual case). */
export const webgpuSoftware: boolean = probed.software;

if (webgpuSkip) console.log(`webgpu tests skipped: ${webgpuSkip}`);
