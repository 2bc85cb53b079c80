/**
 * The run directory as a coordinator claims it: a fresh one is made and locked; one holding a
 * run is refused unless resumed (or restarted in place); a live run's lock turns others away,
 * a dead one's is taken over.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RunDir } from '../../coordinator/run-dir.js';
import { expectCode } from '../helpers/expect-code.js';

const root = mkdtempSync(join(tmpdir(), 'dptrain-rundir-'));
const fresh = (name: string) => join(root, name);

/** A run directory as an earlier run left it. */
function earlierRun(name: string): string {
  const dir = fresh(name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), '{}\n');
  writeFileSync(join(dir, 'metrics.jsonl'), '{"step":1}\n{"step":2}\n');
  return dir;
}

/** A lock file naming a process: `pid` on `host`. */
function lockedBy(dir: string, pid: number, host = hostname()): void {
  writeFileSync(join(dir, '.lock'), `${JSON.stringify({ pid, host })}\n`);
}

describe('RunDir.claim', () => {
  it('makes a fresh directory and locks it with this process', () => {
    const dir = RunDir.claim(fresh('a/b'), 'new');
    expect(existsSync(dir.path)).toBe(true);
    expect(JSON.parse(readFileSync(join(dir.path, '.lock'), 'utf8'))).toEqual({ pid: process.pid, host: hostname() });
  });

  it('an empty existing directory is fine', () => {
    mkdirSync(fresh('empty'));
    expect(RunDir.claim(fresh('empty'), 'new').path).toBe(fresh('empty'));
  });

  it("refuses a directory holding a run, unless resumed; a restart keeps it but drops the earlier attempt's metrics", () => {
    const dir = earlierRun('held');
    expect(expectCode(() => RunDir.claim(dir, 'new'), 'CONFIG_INVALID')).toBe(
      `--out ${dir} already holds a run: continue it with --resume ${dir}, or give another --out`,
    );
    expect(readFileSync(join(dir, 'metrics.jsonl'), 'utf8')).toBe('{"step":1}\n{"step":2}\n'); // untouched
    RunDir.claim(dir, 'resume');
    expect(readFileSync(join(dir, 'metrics.jsonl'), 'utf8')).toBe('{"step":1}\n{"step":2}\n');
    RunDir.claim(earlierRun('requeued'), 'restart');
    expect(readFileSync(join(fresh('requeued'), 'metrics.jsonl'), 'utf8')).toBe('');
  });

  it('a file in the way is refused in one line', () => {
    writeFileSync(fresh('afile'), 'x');
    expect(expectCode(() => RunDir.claim(fresh('afile'), 'new'), 'CONFIG_INVALID')).toBe(
      `--out ${fresh('afile')}: a file is there, not a directory`,
    );
  });

  it("a live run's lock turns others away; a dead run's is taken over", async () => {
    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 20000)'], { stdio: 'ignore' });
    try {
      const busy = earlierRun('busy');
      lockedBy(busy, live.pid!);
      expect(expectCode(() => RunDir.claim(busy, 'resume', '--resume'), 'CONFIG_INVALID')).toBe(
        `--resume ${busy} is in use by another dptrain run (pid ${live.pid} on ${hostname()}); wait for it to end`,
      );
      const elsewhere = earlierRun('elsewhere');
      lockedBy(elsewhere, process.pid, 'another-host'); // whether it lives cannot be told from here
      expect(() => RunDir.claim(elsewhere, 'resume')).toThrow(/in use by another dptrain run/);
    } finally {
      live.kill('SIGKILL');
    }
    const dead = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    await new Promise((r) => dead.once('exit', r));
    const stale = earlierRun('stale');
    lockedBy(stale, dead.pid!);
    RunDir.claim(stale, 'resume');
    expect(JSON.parse(readFileSync(join(stale, '.lock'), 'utf8')).pid).toBe(process.pid);
  });

  it('a lock whose pid now belongs to another program (reused after a reboot) is stale', () => {
    const other = spawn('sleep', ['20'], { stdio: 'ignore' });
    try {
      const reused = earlierRun('reused');
      lockedBy(reused, other.pid!);
      RunDir.claim(reused, 'resume');
      expect(JSON.parse(readFileSync(join(reused, '.lock'), 'utf8')).pid).toBe(process.pid);
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('the default path takes a suffix when its second is taken', () => {
    const now = new Date('2026-12-02T10:00:00Z');
    const first = RunDir.defaultPath(now, root);
    expect(first).toBe(join(root, '2026-12-02T10-00-00'));
    mkdirSync(first);
    expect(RunDir.defaultPath(now, root)).toBe(`${first}-2`);
    mkdirSync(`${first}-2`);
    expect(RunDir.defaultPath(now, root)).toBe(`${first}-3`);
  });
});
