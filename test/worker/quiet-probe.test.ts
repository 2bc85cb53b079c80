/**
 * `--backend auto` on a host whose Vulkan driver Dawn rejects (Mesa's lavapipe, XDG_RUNTIME_DIR
 * unset) must not print Dawn's native warnings: it probes in a child process and keeps them.
 * Meaningful only where loading Dawn in-process does print them; skipped, saying why, elsewhere.
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(__dirname, '../..');
const env = { ...process.env };
delete env.XDG_RUNTIME_DIR;
delete env.VK_ICD_FILENAMES;
delete env.LD_LIBRARY_PATH;

const inProcess = `
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
await create([]).requestAdapter();
process.exit(0);
`;
const viaAuto = `
import { selectBackend } from './dist/worker/backend.js';
const c = await selectBackend('auto');
process.stdout.write(JSON.stringify({ name: c.name, reason: c.reason, probeOutput: c.probeOutput ?? '' }));
process.exit(0);
`;

function noisy(): string | null {
  try {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', inProcess], {
      cwd: ROOT,
      env,
      encoding: 'utf8',
      timeout: 30_000,
    });
    return r.stderr.trim()
      ? null
      : 'Dawn prints nothing here when loaded in-process (no Vulkan driver it rejects: apt-get install mesa-vulkan-drivers libvulkan1)';
  } catch (e) {
    return `Dawn cannot run here (${(e as Error).message})`;
  }
}
const skip = noisy();
if (skip) console.log(`quiet-probe test skipped: ${skip}`);

describe('backend auto on a CPU host with a Vulkan driver Dawn rejects', () => {
  it.skipIf(skip !== null)("prints nothing of Dawn's, and keeps what it printed in the choice for the log", () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', viaAuto], {
      cwd: ROOT,
      env,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.stderr).toBe('');
    const choice = JSON.parse(r.stdout) as { name: string; reason: string; probeOutput: string };
    expect(choice.name).not.toBe('webgpu');
    expect(choice.reason).toMatch(/webgpu: /);
    expect(choice.probeOutput).not.toBe(''); // what the child's Dawn said, kept
  });
});
