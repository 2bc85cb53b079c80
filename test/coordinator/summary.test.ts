/**
 * The run summary's MFU and the peak printed beside it share one basis: the workers that
 * computed each step, not the workers present at the end; and the progress line shows the
 * evaluation of the step it reports.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { formatSummary, Progress } from '../../cli/progress.js';
import { ComputeMeter, type WorkerWork } from '../../coordinator/accounting.js';
import { summarize, type StepRecord } from '../../coordinator/summary.js';
import { parseConfig } from '../../shared/job/config.js';
import { ZERO_COUNTERS } from '../helpers/xor-job.js';

const CONFIG = parseConfig({
  data: { name: 'spirals', samples: 400 },
  model: { layers: [{ units: 16, activation: 'relu' }, { units: 2 }], loss: 'softmaxCrossEntropy' },
  steps: 40,
  batchSize: 64,
});
const PER_SAMPLE = 2e6;
const SI: Record<string, number> = { M: 1e6, G: 1e9 };
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

/** 40 steps of 64 samples by `computing` (id → peak), as the coordinator records them. */
function run(computing: Record<string, number>): { meter: ComputeMeter; records: StepRecord[] } {
  const meter = new ComputeMeter({
    trainFlopsPerSample: PER_SAMPLE,
    evalFlopsPerSample: PER_SAMPLE / 3,
    budget: null,
    policy: 'stop',
    log: pino({ level: 'silent' }),
  });
  const records: StepRecord[] = [];
  for (let step = 1; step <= 40; step++) {
    const stepMs = 20 + (step % 7) * 3;
    const workers: WorkerWork[] = Object.entries(computing).map(([id, peakFlops]) => ({
      id,
      samples: 32,
      computeMs: stepMs / 2,
      peakFlops,
    }));
    const computeMs = Object.fromEntries(workers.map((w) => [w.id, w.computeMs]));
    records.push({
      step,
      epoch: step / 10,
      loss: 1 / step,
      lr: 1e-3,
      gradNorm: 1,
      samples: 64,
      stepMs,
      samplesPerSec: (64 * 1000) / stepMs,
      workers: workers.length,
      members: workers.length,
      workerComputeMs: computeMs,
      timeline: TIMELINE,
      workerTimeline: {},
      wireBytes: 0,
      ...meter.step(64, stepMs, workers),
    });
  }
  return { meter, records };
}

const COUNTERS = ZERO_COUNTERS;

describe('the summary MFU', () => {
  it('3 workers at the end, 2 of them computing every step: MFU and the printed peak are theirs, and agree', () => {
    const { meter, records } = run({ w1: 7e9, w2: 7e9 });
    const s = summarize({
      config: CONFIG,
      records,
      lastEval: null,
      params: 100,
      workers: 3,
      members: 3,
      backends: ['wasm'],
      wallSeconds: 1,
      counters: COUNTERS,
      stoppedBy: 'steps',
      stepsDone: 40,
      meter,
      peaks: [7e9, 7e9, 7e9].map((attainable) => ({ declared: null, attainable })),
    });
    expect(s.peakFlops).toBe(21e9); // the workers present at the end
    expect(s.mfuPeakFlops).toBe(14e9); // those that computed
    expect(s.mfu).toBeCloseTo(s.modelFlopsPerSec! / 14e9, 12);
    const text = formatSummary(s, null);
    const rate = text.match(/, ([\d.]+) ([MG])FLOP\/s \(median after warm-up\)/);
    const mfu = text.match(
      /MFU\s+([\d.]+)% of ([\d.]+) ([MG])FLOP\/s: the summed measured \(matmul\) peak of the workers/,
    );
    expect(rate, text).not.toBeNull();
    expect(mfu, text).not.toBeNull();
    const printedRate = Number(rate![1]) * SI[rate![2]];
    const [printedMfu, printedPeak] = [Number(mfu![1]), Number(mfu![2]) * SI[mfu![3]]];
    // What is printed agrees to its rounding (3 significant digits; 2 decimals of a percent).
    expect(Math.abs(printedMfu - (100 * printedRate) / printedPeak)).toBeLessThan(0.01 * printedMfu + 0.006);
  });

  it('no peak known: no MFU line', () => {
    const { meter, records } = run({ w1: 0 });
    const s = summarize({
      config: CONFIG,
      records,
      lastEval: null,
      params: 100,
      workers: 1,
      members: 1,
      backends: ['cpu'],
      wallSeconds: 1,
      counters: COUNTERS,
      stoppedBy: 'steps',
      stepsDone: 40,
      meter,
      peaks: [],
    });
    expect(s).toMatchObject({ mfu: null, mfuPeakFlops: null });
    expect(formatSummary(s, null)).not.toMatch(/MFU/);
  });
});

describe('the progress line', () => {
  it("shows the test accuracy of the step's own evaluation, not an earlier one", () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (b: Buffer) => (text += b.toString()));
    const progress = new Progress(40, out as unknown as NodeJS.WriteStream);
    const { records } = run({ w1: 1e9 });
    progress.eval({ step: 20, testLoss: 0.7, testAccuracy: 0.5, evalMs: 1 });
    progress.step(records[19]);
    progress.step({ ...records[39], testLoss: 0.2, testAccuracy: 0.9 });
    const lines = text.trim().split('\n');
    expect(lines[0]).toMatch(/^step 20\/40 .*test acc 50\.0%/);
    expect(lines[1]).toMatch(/^step 40\/40 .*test acc 90\.0%/);
  });

  it("times the ETA from the steps it saw, not from the process's start (a resume, a slow join)", async () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (b: Buffer) => (text += b.toString()));
    const progress = new Progress(600, out as unknown as NodeJS.WriteStream);
    const { records } = run({ w1: 1e9 });
    await new Promise((r) => setTimeout(r, 300)); // joining and loading before the first step (a resume at 149)
    progress.step({ ...records[0], step: 150, stepMs: 20 });
    await new Promise((r) => setTimeout(r, 300));
    progress.step({ ...records[1], step: 180, stepMs: 20 });
    const etas = text
      .trim()
      .split('\n')
      .map((l) => /ETA (\d+):(\d+)$/.exec(l)!)
      .map((m) => 60 * Number(m[1]) + Number(m[2]));
    expect(etas[0]).toBe(9); // the first step's own time: 450 steps of 20 ms
    expect(etas[1]).toBeGreaterThanOrEqual(4); // 30 steps in ≥ 300 ms since step 150: ≥ 10 ms a step, 420 to go
    expect(etas[1]).toBeLessThan(30); // not the 300 ms of joining charged to one step
  });
});

describe("a resumed run's summary", () => {
  it("takes its medians over the whole run (earlier steps from metrics.jsonl) and says the wall time is the session's", () => {
    const { meter, records } = run({ w1: 7e9, w2: 7e9 });
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-resumed-summary-'));
    writeFileSync(
      join(dir, 'metrics.jsonl'),
      records
        .slice(0, 30)
        .map((r) => `${JSON.stringify(r)}\n`)
        .join(''),
    );
    const common = {
      lastEval: null,
      params: 100,
      workers: 2,
      members: 2,
      backends: ['wasm'],
      wallSeconds: 1,
      counters: COUNTERS,
      stoppedBy: 'steps' as const,
      stepsDone: 40,
      meter,
      peaks: [7e9, 7e9].map((attainable) => ({ declared: null, attainable })),
    };
    const whole = summarize({ ...common, config: CONFIG, records });
    const resumed = summarize({ ...common, config: { ...CONFIG, out: dir }, records: records.slice(30) });
    for (const k of ['samplesPerSec', 'medianStepMs', 'modelFlopsPerSec', 'mfu'] as const)
      expect(resumed[k], k).toBe(whole[k]);
    expect(resumed.resumedAt).toBe(30);
    expect(whole.resumedAt).toBeUndefined();
    expect(formatSummary(resumed, null)).toMatch(
      /wall time\s+1\.0 s \(this session only: steps 31–40, after the resume\)/,
    );
  });
});

describe('the printed summary', () => {
  it('counts faults in the singular and the plural', () => {
    const { meter, records } = run({ w1: 7e9 });
    const s = summarize({
      config: CONFIG,
      records,
      lastEval: null,
      params: 100,
      workers: 1,
      members: 1,
      backends: ['wasm'],
      wallSeconds: 1,
      counters: { ...COUNTERS, dropped: 1, reassigned: 1, stale: 2 },
      stoppedBy: 'steps',
      stepsDone: 40,
      meter,
      peaks: [],
    });
    expect(formatSummary(s, null)).toMatch(/faults\s+1 worker dropped, 1 shard reassigned, 2 late results ignored$/m);
  });
});
