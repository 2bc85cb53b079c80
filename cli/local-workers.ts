/**
 * Spawn N worker processes on this machine that connect to the coordinator over loopback,
 * each writing its output to the run directory (workers/worker-i.log).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync, closeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../shared/util/log.js';
import type { RunDir } from '../coordinator/run-dir.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

export interface LocalWorkers {
  procs: ChildProcess[];
  /** Resolves when every worker has exited (or was killed after the grace period). */
  stop(graceMs?: number): Promise<void>;
}

function lastLine(file: string): string {
  try {
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    return lines[lines.length - 1] ?? '';
  } catch {
    return '';
  }
}

export function spawnWorkers(
  n: number,
  address: string,
  backend: { name: string; allowSoftwareGpu: boolean },
  token: string,
  shmDir: string | null,
  runDir: RunDir,
  log: Logger,
  onAllExited: (lastWords: string) => void,
): LocalWorkers {
  const procs: ChildProcess[] = [];
  let stopping = false;
  let exited = 0;
  for (let i = 0; i < n; i++) {
    const name = `worker-${i}`;
    const file = runDir.workerLog(name);
    const fd = openSync(file, 'a');
    const args = [MAIN, 'worker', '--connect', address, '--backend', backend.name, '--name', name];
    if (backend.allowSoftwareGpu) args.push('--allow-software-gpu');
    const p = spawn(process.execPath, args, {
      // The IPC channel is how a local worker notices that its coordinator died (it exits then).
      stdio: ['ignore', fd, fd, 'ipc'],
      // The token is not on the command line, where `ps` shows it.
      env: { ...process.env, DPTRAIN_TOKEN: token, ...(shmDir ? { DPTRAIN_SHM_DIR: shmDir } : {}) },
    });
    closeSync(fd);
    p.on('exit', (code, signal) => {
      exited++;
      if (stopping) return;
      const last = lastLine(file);
      if (code !== 0) log.warn({ worker: name, code, signal, log: file, last }, 'worker process exited');
      if (exited === n) onAllExited(`all ${n} local workers exited; the last said: ${last || '(nothing)'} (logs in ${runDir.path}/workers)`);
    });
    procs.push(p);
  }
  return {
    procs,
    stop: async (graceMs = 5000) => {
      stopping = true;
      await Promise.all(
        procs.map(
          (p) =>
            new Promise<void>((res) => {
              if (p.exitCode !== null || p.signalCode !== null) return res();
              const t = setTimeout(() => p.kill('SIGKILL'), graceMs);
              p.once('exit', () => {
                clearTimeout(t);
                res();
              });
            }),
        ),
      );
    },
  };
}
