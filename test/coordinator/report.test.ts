/**
 * `dptrain report` on run directories as they are left: a stopped run (no summary.json) gets the
 * summary figures its metrics.jsonl gives, labelled stopped; an empty metrics.jsonl is warned
 * about; one directory given twice is refused in one line.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { reportCommand } from '../../cli/report-cmd.js';
import { readRunView } from '../../coordinator/dashboard/run-dir-view.js';
import type { StepRecord } from '../../coordinator/summary.js';
import { isDptrainError } from '../../shared/util/errors.js';
import { tempDir } from '../helpers/cli.js';

const TIMELINE = {
  encodeMs: 0,
  broadcastMs: 0,
  decodeMs: 0,
  slowestComputeMs: 1,
  workerEncodeMs: 0,
  wireMs: 0,
  reduceMs: 0,
  optimizerMs: 0,
  overheadMs: 0,
  idleMs: 0,
};

/** Step `step` of 64 samples taking 10 + step ms (step 5 evaluates). */
function rec(step: number): StepRecord {
  const stepMs = 10 + step;
  return {
    step,
    epoch: step / 10,
    loss: 1 / step,
    lr: 1e-3,
    gradNorm: 1,
    samples: 64,
    stepMs,
    samplesPerSec: (64 * 1000) / stepMs,
    workers: 1,
    members: 1,
    workerComputeMs: { w1: 1 },
    timeline: TIMELINE,
    workerTimeline: {},
    wireBytes: 100,
    flops: 1e6,
    cumulativeFlops: step * 1e6,
    hardwareFlops: step * 1.5e6,
    modelFlopsPerSec: 1e6 / (stepMs / 1000),
    modelFlopsPerSecEma: 0,
    mfu: 0.001 * step,
    budgetUsed: null,
    budgetEtaSec: null,
    workerFlopsPerSec: {},
    ...(step === 5 ? { testLoss: 0.4, testAccuracy: 0.75 } : {}),
  };
}

function runDir(tag: string, steps: number): string {
  const dir = join(tempDir(tag), 'run');
  mkdirSync(dir);
  const lines = Array.from({ length: steps }, (_, i) => `${JSON.stringify(rec(i + 1))}\n`);
  writeFileSync(join(dir, 'metrics.jsonl'), lines.join(''));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ steps: 100 }));
  return dir;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

afterEach(() => vi.restoreAllMocks());

describe('a stopped run in a report', () => {
  it("has the summary figures of its metrics.jsonl (medians after warm-up, as summary.json's)", () => {
    const view = readRunView(runDir('stopped', 40), 'run');
    expect(view.state).toBe('stopped');
    expect(view.summary).toBeNull();
    const steady = Array.from({ length: 36 }, (_, i) => rec(i + 5)); // warm-up: 4 of 40 steps
    expect(view.derived).toMatchObject({
      steps: 40,
      finalLoss: 1 / 40,
      testAccuracy: 0.75,
      totalFlops: 40e6,
      hardwareFlops: 60e6,
      samplesPerSec: median(steady.map((r) => r.samplesPerSec)),
      medianStepMs: median(steady.map((r) => r.stepMs)),
      mfu: median(steady.map((r) => r.mfu!)),
    });
  });
});

describe('report inputs', () => {
  it('the same directory twice, however spelled, is one line', () => {
    const dir = runDir('twice', 3);
    for (const again of [dir, `${dir}/`, join(dir, '..', 'run')]) {
      let err: unknown = null;
      try {
        reportCommand([dir, again], { out: join(dir, '..', 'r.html') });
      } catch (e) {
        err = e;
      }
      expect(isDptrainError(err, 'CONFIG_INVALID'), String(err)).toBe(true);
      expect((err as Error).message).toMatch(/given twice|are the same directory/);
      expect((err as Error).message).not.toContain('\n');
    }
  });

  it('an empty metrics.jsonl is warned about', () => {
    const dir = runDir('empty', 0);
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    expect(reportCommand([dir], { out: join(dir, '..', 'r.html') })).toBe(0);
    expect(err.mock.calls.map((c) => String(c[0])).join('')).toMatch(/metrics\.jsonl is empty/);
  });

  it('--title is the heading too', () => {
    const dir = runDir('title', 3);
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const out = join(dir, '..', 'r.html');
    reportCommand([dir], { out, title: 'My sweep</script>' });
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('heading: "My sweep\\u003c/script>"');
  });
});
