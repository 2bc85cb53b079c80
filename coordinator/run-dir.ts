/**
 * The run directory: everything a run leaves behind.
 *   log.jsonl       pino JSON log of the coordinator
 *   metrics.jsonl   one line per optimizer step (eval fields on the steps that evaluated)
 *   model/          the final model in TF.js Layers format (model.json + weights.bin)
 *   summary.json    the run's outcome, written at the end
 *   workers/        stdout/stderr of locally spawned workers
 *   .lock           the live coordinator's pid and host: one run writes here at a time
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../shared/util/fs-atomic.js';
import { fail } from '../shared/util/errors.js';

/**
 * How a run takes its directory: `new` (a fresh one; one holding a run is refused), `resume`
 * (its own, from a checkpoint), `restart` (its own again from the start, as a requeued Slurm
 * job without a checkpoint: the earlier attempt's metrics are dropped).
 */
export type RunDirUse = 'new' | 'resume' | 'restart';

/** What a run leaves once it has trained (or ended): a start that failed before leaves none, and may be retried there. */
const RUN_FILES = ['metrics.jsonl', 'checkpoints', 'summary.json'];

export class RunDir {
  readonly path: string;

  constructor(path: string) {
    this.path = resolve(path);
    mkdirSync(this.path, { recursive: true });
  }

  /**
   * The directory for a coordinator's run, checked and locked before anything is written:
   * another run's files are never mixed with this one's, and two coordinators never write to
   * one directory at once. `flag` names where the path came from, for the one-line refusals.
   */
  static claim(path: string, use: RunDirUse, flag = '--out'): RunDir {
    const where = resolve(path);
    const kind = statOrNull(where);
    if (kind && !kind.isDirectory()) fail('CONFIG_INVALID', `${flag} ${path}: a file is there, not a directory`);
    if (use === 'new' && kind && RUN_FILES.some((f) => existsSync(join(where, f))))
      fail(
        'CONFIG_INVALID',
        `${flag} ${path} already holds a run: continue it with --resume ${path}, or give another --out`,
      );
    try {
      mkdirSync(where, { recursive: true });
    } catch (e) {
      fail('CONFIG_INVALID', `${flag} ${path}: cannot make the directory (${(e as NodeJS.ErrnoException).code})`);
    }
    lock(where, flag, path);
    const dir = new RunDir(where);
    if (use === 'restart') dir.truncateMetrics(0);
    return dir;
  }

  /** runs/2026-11-28T16-59-03 (local time is ambiguous; UTC, filesystem-safe); -2, -3 … when taken. */
  static defaultPath(now = new Date(), under = 'runs'): string {
    const base = join(under, now.toISOString().slice(0, 19).replace(/:/g, '-'));
    let path = base;
    for (let n = 2; existsSync(path); n++) path = `${base}-${n}`;
    return path;
  }

  get logFile(): string {
    return join(this.path, 'log.jsonl');
  }

  get modelDir(): string {
    return join(this.path, 'model');
  }

  workerLog(name: string): string {
    mkdirSync(join(this.path, 'workers'), { recursive: true });
    return join(this.path, 'workers', `${name}.log`);
  }

  appendMetrics(record: object): void {
    appendFileSync(join(this.path, 'metrics.jsonl'), JSON.stringify(record) + '\n');
  }

  /** On resume: drop metrics lines of steps after the checkpoint (they will be run again). */
  truncateMetrics(afterStep: number): void {
    const file = join(this.path, 'metrics.jsonl');
    if (!existsSync(file)) return;
    const keep = readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .filter((l) => {
        try {
          return (JSON.parse(l) as { step: number }).step <= afterStep;
        } catch {
          return false; // a line torn by a crash
        }
      });
    writeFileAtomic(file, keep.map((l) => l + '\n').join(''));
  }

  writeJson(name: string, value: unknown): void {
    writeFileAtomic(join(this.path, name), JSON.stringify(value, null, 2) + '\n');
  }
}

function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}

/**
 * Take the directory's lock file for this process (removed at its exit). A lock left by a process
 * that is gone (killed, its host rebooted) is taken over: only a live coordinator on this host, or
 * one on another host sharing the directory, holds it.
 */
function lock(dir: string, flag: string, path: string): void {
  const file = join(dir, '.lock');
  const mine = `${JSON.stringify({ pid: process.pid, host: hostname() })}\n`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, mine, { flag: 'wx' });
      process.once('exit', () => {
        try {
          if (readFileSync(file, 'utf8') === mine) unlinkSync(file);
        } catch {
          // already gone
        }
      });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
        fail('CONFIG_INVALID', `${flag} ${path}: cannot write there (${(e as NodeJS.ErrnoException).code})`);
    }
    const holder = lockHolder(file);
    if (holder?.host === hostname() && holder.pid === process.pid) return; // this process's earlier run (in-process callers)
    if (!holder && Date.now() - (statOrNull(file)?.mtimeMs ?? 0) < 5000)
      fail('CONFIG_INVALID', `${flag} ${path}: another dptrain run is taking this directory at the same time`);
    if (holder && (holder.host !== hostname() || alive(holder.pid)))
      fail(
        'CONFIG_INVALID',
        `${flag} ${path} is in use by another dptrain run (pid ${holder.pid} on ${holder.host}); wait for it to end${flag === '--out' ? ', or give another --out' : ''}`,
      );
    try {
      unlinkSync(file); // a dead run's lock
    } catch {
      // taken meanwhile: the next attempt says by whom
    }
  }
  fail('CONFIG_INVALID', `${flag} ${path}: another dptrain run is taking this directory at the same time`);
}

function lockHolder(file: string): { pid: number; host: string } | null {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as { pid?: unknown; host?: unknown };
    return typeof v.pid === 'number' && typeof v.host === 'string' ? { pid: v.pid, host: v.host } : null;
  } catch {
    return null; // torn or foreign: treated as stale
  }
}

/** Whether `pid` is a live node process: a pid reused since (after a reboot) by something else frees the lock. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false; // EPERM: exists, owned by someone else
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('node');
  } catch {
    return true; // no /proc here (macOS): the pid is all there is to go by
  }
}
