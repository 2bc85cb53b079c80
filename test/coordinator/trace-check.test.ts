/**
 * --trace and --trace-steps are checked before a run starts: a trace file that cannot be written,
 * or a window of steps the run never takes, is one line naming the flag, not a failure (or an
 * empty trace) found after the whole run has trained.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkTrace, checkTraceFile, checkTraceSteps } from '../../coordinator/trace.js';
import { isDptrainError } from '../../shared/util/errors.js';
import { tempDir } from '../helpers/cli.js';

/** The error a call throws (it must throw one). */
function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

function expectRefused(f: () => unknown, pattern: RegExp): void {
  const e = thrown(f);
  expect(isDptrainError(e, 'CONFIG_INVALID'), String(e)).toBe(true);
  expect(e.message).toMatch(pattern);
  expect(e.message).not.toContain('\n');
}

describe('checkTraceFile', () => {
  it('refuses a path under a regular file, a missing directory, a directory, an empty name', () => {
    const dir = tempDir('trace-check');
    const afile = join(dir, 'afile');
    writeFileSync(afile, 'x');
    expectRefused(
      () => checkTraceFile(join(afile, 'tr.json')),
      /^--trace .*afile\/tr\.json: .*afile is not a directory$/,
    );
    expectRefused(
      () => checkTraceFile(join(dir, 'no', 'tr.json')),
      /^--trace .*: its directory .*\/no does not exist$/,
    );
    expectRefused(() => checkTraceFile(dir), /^--trace .* is a directory/);
    expectRefused(() => checkTraceFile(''), /^--trace is empty/);
  });

  // root writes anywhere: there the check has nothing to refuse
  it.skipIf(process.getuid?.() === 0)('refuses a directory it cannot write', () => {
    const dir = join(tempDir('trace-ro'), 'ro');
    mkdirSync(dir);
    chmodSync(dir, 0o500);
    try {
      expectRefused(() => checkTraceFile(join(dir, 'tr.json')), /cannot be written/);
    } finally {
      chmodSync(dir, 0o700);
    }
  });

  it('accepts a new file in a writable directory, and an existing file, as absolute paths', () => {
    const dir = tempDir('trace-ok');
    expect(checkTraceFile(join(dir, 'tr.json'))).toBe(join(dir, 'tr.json'));
    writeFileSync(join(dir, 'old.json'), '{}');
    expect(checkTraceFile(join(dir, 'old.json'))).toBe(join(dir, 'old.json'));
  });
});

describe('checkTraceSteps', () => {
  it('refuses a window after the last step, or before a resumed run goes on', () => {
    expectRefused(
      () => checkTraceSteps([50, 60], 10),
      /^--trace-steps 50:60: the run has 10 steps, .*empty; pick steps within 1:10$/,
    );
    expectRefused(() => checkTraceSteps(undefined, 0), /^--trace-steps 1:20 \(the default\): the run has 0 steps/);
    expectRefused(
      () => checkTraceSteps([3, 5], 100, 40),
      /^--trace-steps 3:5: the run resumes after step 40, .*within 41:100$/,
    );
  });

  it('accepts a window that holds at least one step of the run', () => {
    expect(() => checkTraceSteps([5, 60], 10)).not.toThrow();
    expect(() => checkTraceSteps([10, 10], 10)).not.toThrow();
    expect(() => checkTraceSteps(undefined, 10)).not.toThrow();
    expect(() => checkTraceSteps([30, 50], 100, 40)).not.toThrow();
  });
});

describe('checkTrace', () => {
  it('checks both, refuses --trace-steps without --trace, and passes without either', () => {
    const dir = tempDir('trace-both');
    expectRefused(() => checkTrace({ trace: join(dir, 'tr.json'), traceSteps: [50, 60] }, 10), /^--trace-steps 50:60/);
    expectRefused(() => checkTrace({ trace: join(dir, 'x', 'tr.json') }, 10), /^--trace .*does not exist$/);
    expectRefused(() => checkTrace({ traceSteps: [1, 2] }, 10), /^--trace-steps needs --trace FILE/);
    expect(() => checkTrace({}, 10)).not.toThrow();
    expect(() => checkTrace({ trace: join(dir, 'tr.json'), traceSteps: [2, 3] }, 10)).not.toThrow();
  });
});
