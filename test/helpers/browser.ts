/**
 * A real browser for the dashboard tests: Debian's chromium (or DPTRAIN_TEST_CHROMIUM) driven
 * headless by playwright-core. `browserSkip` says why the tests skip when there is none.
 * Screenshots go to test-artifacts/ at the repository root.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CLI } from './cli.js';

const CANDIDATES = process.env.DPTRAIN_TEST_CHROMIUM
  ? [process.env.DPTRAIN_TEST_CHROMIUM]
  : ['/usr/bin/chromium', '/usr/bin/chromium-browser'];
export const chromiumPath = CANDIDATES.find((p) => existsSync(p)) ?? null;
export const browserSkip = chromiumPath
  ? null
  : `no chromium at ${CANDIDATES.join(' or ')} (apt-get install chromium, or set DPTRAIN_TEST_CHROMIUM)`;

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath!, args: ['--headless=new', '--no-sandbox'] });
}

export const ARTIFACTS = resolve(__dirname, '../../test-artifacts');

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, name);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Console errors and uncaught exceptions of a page, collected from now on. */
export function pageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  return errors;
}

/** Start the CLI and resolve with the dashboard's URL once the coordinator logs it. */
export function startWithDashboard(
  args: string[],
  env?: NodeJS.ProcessEnv,
  timeoutMs = 30_000,
): Promise<{ proc: ChildProcess; url: string; stderr: () => string }> {
  const proc = spawn(process.execPath, [CLI, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: env ?? process.env,
  });
  let err = '';
  return new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`no dashboard URL within ${timeoutMs / 1000} s:\n${err}`)), timeoutMs);
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (d: string) => {
      err += d;
      const m = /dashboard url=(\S+)/.exec(err);
      if (m) {
        clearTimeout(t);
        res({ proc, url: m[1], stderr: () => err });
      }
    });
    proc.once('exit', (code) => rej(new Error(`exited (${code}) before the dashboard was up:\n${err}`)));
  });
}
