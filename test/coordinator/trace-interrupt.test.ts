/**
 * --trace on a run stopped by a signal (requestStop, as SIGINT/SIGTERM do): the steps traced
 * until then are written, not lost with the run.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Coordinator } from '../../coordinator/coordinator.js';
import { Tracer, traceStep } from '../../coordinator/trace.js';
import { parseConfig } from '../../shared/job/config.js';
import { createLocalNetwork } from '../../shared/transport/local.js';
import type { ToWorker } from '../../shared/wire/protocol.js';
import { fakeWorker, type FakeWorker } from '../helpers/fake-worker.js';
import { tempDir } from '../helpers/cli.js';
import { resultFor } from '../helpers/result-msg.js';

const TOTAL = 2 * 4 + 4 + 4 + 1;

function answer(msg: ToWorker, w: FakeWorker): void {
  if (msg.t !== 'work') return;
  w.send(resultFor(msg, { lossSum: 0.5, losses: [0.5], count: msg.to - msg.from }), new Float32Array(TOTAL).fill(0.01));
}

describe('--trace on an interrupted run', () => {
  it('writes the steps traced before the stop', async () => {
    const config = parseConfig({
      data: { name: 'xor' },
      model: { layers: [{ units: 4, activation: 'tanh' }, { units: 1 }], loss: 'binaryCrossEntropy' },
      batchSize: 4,
      steps: 1000,
      evalEvery: 0,
    });
    const file = join(tempDir('trace-stop'), 'trace.json');
    const net = createLocalNetwork();
    let coord: Coordinator | null = null;
    coord = new Coordinator({
      config,
      listener: net.listener,
      log: pino({ level: 'silent' }),
      runDir: null,
      tracer: new Tracer(1, 500),
      traceFile: file,
      onStep: (r) => {
        if (r.step === 3) coord?.requestStop('SIGTERM');
      },
    });
    const run = coord.run();
    await fakeWorker(net.dial, TOTAL, { name: 'w0', onMessage: answer });
    await expect(run).rejects.toMatchObject({ code: 'INTERRUPTED' });
    await net.listener.close();
    expect(existsSync(file)).toBe(true);
    const trace = JSON.parse(readFileSync(file, 'utf8')) as { traceEvents: Array<{ name: string }> };
    const steps = trace.traceEvents.filter((e) => /^step \d+$/.test(e.name)).map((e) => e.name);
    expect(steps.slice(0, 3)).toEqual(['step 1', 'step 2', 'step 3']);
  });
});

describe("the trace's optimizer", () => {
  it("shows the part fused into the last fold: its spans add up to the step record's optimizerMs", () => {
    const tr = new Tracer(1, 1);
    // optimizerMs in metrics.jsonl = (end - optimizer) + fusedMs = 0.5 + 4 ms
    traceStep(tr, 1, { start: 100, optimizer: 110, end: 110.5, fusedMs: 4 }, 0.5, 1, null);
    const file = join(tempDir('trace-opt'), 'trace.json');
    tr.write(file);
    const events = (JSON.parse(readFileSync(file, 'utf8')) as { traceEvents: Array<{ name: string; dur?: number }> })
      .traceEvents;
    const optimizer = events.filter((e) => e.name.startsWith('optimizer'));
    expect(optimizer.reduce((s, e) => s + (e.dur ?? 0), 0)).toBe(4500); // µs
  });
});
