/**
 * The bench's per-kernel tables: `dptrain profile` of one worker step of the bench's model, in
 * a child process per backend (wasm, cpu, and webgpu where Dawn finds an adapter: a GPU, or
 * SwiftShader when Debian's chromium is installed), in both matMul gradient forms.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { StepProfile } from '../worker/profile.js';
import { formatProfile } from '../worker/profile.js';
import { findIcd, vulkanEnv } from './vulkan-env.js';

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export interface BackendProfile {
  backend: string;
  /** Why this backend has no profile (not installed, no adapter); null when it has one. */
  skipped: string | null;
  profiles: StepProfile[];
}

function run(args: string[], env: NodeJS.ProcessEnv): Promise<StepProfile[]> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [CLI, 'profile', ...args, '--json'],
      { env, maxBuffer: 16 << 20, timeout: 600_000 },
      (err, stdout, stderr) => {
        if (err)
          return reject(
            new Error(
              stderr
                .trim()
                .split('\n')
                .filter((l) => l.startsWith('dptrain:'))
                .pop() ?? String(err),
            ),
          );
        resolve(JSON.parse(stdout) as StepProfile[]);
      },
    );
  });
}

/**
 * Profiles of `job` at `batch` on each backend. The JavaScript and software-GPU backends are
 * slow on this model (hundreds of ms a step), so they get fewer timed steps.
 */
export async function profileBackends(job: string, batch: number): Promise<BackendProfile[]> {
  const common = ['--config', job, '--batch', String(batch), '--matmul-grad', 'both'];
  const out: BackendProfile[] = [];
  for (const backend of ['wasm', 'cpu', 'webgpu']) {
    let env = process.env;
    const args = [...common, '--backend', backend, '--steps', backend === 'wasm' ? '5' : '2'];
    if (backend === 'webgpu') {
      const icd = process.env.VK_ICD_FILENAMES ?? findIcd();
      if (!icd) {
        out.push({
          backend,
          skipped: 'no Vulkan driver (set VK_ICD_FILENAMES, or apt-get install chromium for SwiftShader)',
          profiles: [],
        });
        continue;
      }
      env = vulkanEnv(icd);
      args.push('--allow-software-gpu');
    }
    try {
      out.push({ backend, skipped: null, profiles: await run(args, env) });
    } catch (e) {
      out.push({ backend, skipped: (e as Error).message, profiles: [] });
    }
  }
  return out;
}

export function formatBackendProfiles(ps: BackendProfile[]): string[] {
  return ps.flatMap((p) =>
    p.skipped ? [`profile ${p.backend}: skipped (${p.skipped})`] : p.profiles.map((x) => formatProfile(x, 8) + '\n'),
  );
}
