/**
 * The environment a child process needs to run Dawn on a given Vulkan driver, by default
 * SwiftShader, the software driver Debian's chromium package ships: the ICD, a runtime directory
 * (Dawn and the loader want one; containers often have none), and chromium's own Vulkan loader
 * when the system has none. Only a new process reads LD_LIBRARY_PATH, hence the child.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** Where Debian's chromium-common puts SwiftShader's ICD (find another with `dpkg -L chromium-common | grep -i swiftshader`). */
export const SWIFTSHADER_ICDS = [
  '/usr/lib/chromium/vk_swiftshader_icd.json',
  '/usr/lib64/chromium/vk_swiftshader_icd.json',
];

/** The first ICD of `candidates` that exists, or null. */
export function findIcd(candidates: string[] = SWIFTSHADER_ICDS): string | null {
  return candidates.find((p) => existsSync(p)) ?? null;
}

export function vulkanEnv(icd: string, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...base,
    VK_ICD_FILENAMES: icd,
    XDG_RUNTIME_DIR: base.XDG_RUNTIME_DIR ?? mkdtempSync(join(tmpdir(), 'dptrain-xdg-')),
  };
  const chromiumLoader = join(dirname(icd), 'libvulkan.so.1');
  if (existsSync(chromiumLoader)) env.LD_LIBRARY_PATH = [dirname(icd), base.LD_LIBRARY_PATH].filter(Boolean).join(':');
  return env;
}
