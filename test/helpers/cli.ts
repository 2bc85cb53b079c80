/** Run the built CLI (dist/, made by `npm test`'s pretest build) as a user would. */
import { execFileSync, execFile, spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'vitest';
import type { RunSummary } from '../../coordinator/summary.js';

export const CLI = resolve(__dirname, '../../dist/cli/main.js');
/** The example job most end-to-end runs train. */
export const SPIRALS = resolve(__dirname, '../../examples/spirals.json');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], timeoutMs = 120_000, env?: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((res) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { timeout: timeoutMs, maxBuffer: 64 << 20, env },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        res({ code, stdout, stderr });
      },
    );
  });
}

/** A `dptrain worker` process on the cpu backend dialling `address` with `flags`; its output is discarded. */
export function spawnWorker(address: string, flags: string[] = [], env?: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, [CLI, 'worker', '--connect', address, '--backend', 'cpu', ...flags], {
    stdio: 'ignore',
    ...(env ? { env } : {}),
  });
}

/** `dptrain train` flags: three workers, of which worker 2 stalls from step 8 to step 12, past a 1 s step deadline. */
export const STALL_FLAGS = [
  '--workers',
  '3',
  '--step-timeout',
  '1',
  '--fault',
  'pause:worker-2@8',
  '--fault',
  'resume:worker-2@12',
];

/**
 * `dptrain train` of `job` into `out` on two workers with --min-workers 2: worker 0 is killed at
 * step 9, so the run pauses, and after 2 s checkpoints and exits 1.
 */
export function pausedByKill(job: string, out: string): Promise<CliResult> {
  const flags = ['--workers', '2', '--min-workers', '2', '--pause-timeout', '2', '--fault', 'kill:worker-0@9'];
  return runCli(['train', '--config', job, ...flags, '--out', out]);
}

export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `dptrain-${tag}-`));
}

/**
 * `dptrain train` of the spirals example on `workers` local workers for `steps` steps, with
 * `flags`, into a new run directory (named after `tag`): the directory, once the run exited 0.
 */
export async function trainSpirals(tag: string, steps: number, flags: string[] = [], workers = 2): Promise<string> {
  const out = tempDir(tag);
  const args = ['--workers', String(workers), '--steps', String(steps), ...flags, '--out', out];
  const r = await runCli(['train', '--config', SPIRALS, ...args]);
  expect(r.code, r.stderr).toBe(0);
  return out;
}

export function readSummary(dir: string): RunSummary {
  return JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as RunSummary;
}

export function readWeights(dir: string): Float32Array {
  const b = readFileSync(join(dir, 'model', 'weights.bin'));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

export function readMetrics(dir: string): Array<Record<string, unknown>> {
  return readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

export { stepsReached } from '../../scripts/run-progress.js';

/** A TCP port free on loopback right now (for a coordinator started as a child process). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Resolves with a child process's exit code (at once if it has exited already). */
export const exited = (c: ChildProcess) =>
  new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code))));

/** Whether the openssl command is here (the TLS tests make a self-signed certificate with it). */
export const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/**
 * A self-signed P-256 certificate for CN=localhost, valid `days`, in a new temporary directory
 * named after `tag`; with `san`, also for DNS:localhost and IP:127.0.0.1 (what a client checks).
 */
export function selfSignedCert(tag: string, days = 1, san = true): { dir: string; cert: string; key: string } {
  const dir = tempDir(tag);
  const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
  const alt = san ? ['-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'] : [];
  const req = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', String(days)];
  execFileSync('openssl', [...req, '-subj', '/CN=localhost', ...alt, '-keyout', key, '-out', cert], {
    stdio: 'ignore',
  });
  return { dir, cert, key };
}
