/**
 * What the coordinator's step records say about the run's end and its workers, over the
 * in-process transport with scripted workers: the last step's row carries the final evaluation
 * (however the run ends, evaluated once), and `workers`/`members` count those that computed a
 * shard of the step — not a worker that left mid-step, and a host agent as its workers.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Coordinator } from '../../coordinator/coordinator.js';
import type { EvalRecord, RunSummary, StepRecord } from '../../coordinator/summary.js';
import { denseFlopsPerSample } from '../../shared/accounting/flops.js';
import { parseConfig } from '../../shared/job/config.js';
import { jobLayout } from '../../shared/job/job-layout.js';
import type { DenseLayout } from '../../shared/models/dense.js';
import { createLocalNetwork } from '../../shared/transport/local.js';
import type { ToWorker } from '../../shared/wire/protocol.js';
import { fakeWorker, type FakeWorker } from '../helpers/fake-worker.js';
import { resultFor } from '../helpers/result-msg.js';

const TOTAL = 2 * 4 + 4 + 4 + 1;

function job(extra: Record<string, unknown>) {
  return parseConfig({
    data: { name: 'xor' },
    model: { layers: [{ units: 4, activation: 'tanh' }, { units: 1 }], loss: 'binaryCrossEntropy' },
    batchSize: 4,
    shards: 'per-worker',
    optimizer: { lr: 0.05 },
    ...extra,
  });
}

/** A shard's gradient sum: a function of the step and rows only. */
const gradient = (step: number, from: number) =>
  Float32Array.from({ length: TOTAL }, (_, i) => Math.sin(step * 31 + from * 7 + i) * 0.3);

/** Scripted worker answers: work with a gradient (after `delayMs`), evaluation with every row right at loss 0.25. */
function answer(msg: ToWorker, w: FakeWorker, delayMs = 0): void {
  if (msg.t === 'evaluate') {
    const count = msg.to - msg.from;
    w.send({
      t: 'evalResult',
      round: msg.round,
      shard: msg.shard,
      lossSum: 0.25 * count,
      correct: count,
      count,
      computeMs: 1,
    });
  }
  if (msg.t !== 'work') return;
  const reply = () =>
    w.send(resultFor(msg, { lossSum: 0.5, losses: [0.5], count: msg.to - msg.from }), gradient(msg.step, msg.from));
  if (delayMs) setTimeout(reply, delayMs);
  else reply();
}

interface Run {
  summary: RunSummary;
  rows: StepRecord[];
  evals: EvalRecord[];
  params: Float32Array;
}

/** Run `cfg` with one scripted worker per entry of `workers` (its options: host-agent count, behaviour). */
async function train(
  cfg: ReturnType<typeof job>,
  workers: Array<{ behind?: number; onMessage?: (msg: ToWorker, w: FakeWorker) => void }> = [{}],
): Promise<Run> {
  const net = createLocalNetwork();
  const rows: StepRecord[] = [];
  const evals: EvalRecord[] = [];
  const coord = new Coordinator({
    config: cfg,
    listener: net.listener,
    log: pino({ level: 'silent' }),
    runDir: null,
    startWorkers: workers.length,
    onStep: (r) => rows.push(structuredClone(r)), // as the row is written: later changes are not the row's
    onEval: (r) => evals.push(r),
  });
  const run = coord.run();
  for (const [k, o] of workers.entries())
    await fakeWorker(net.dial, TOTAL, { name: `w${k}`, workers: o.behind, onMessage: o.onMessage ?? answer });
  const summary = await run;
  await net.listener.close();
  return { summary, rows, evals, params: coord.params.slice() };
}

const evaluated = (rows: StepRecord[]) => rows.filter((r) => r.testLoss !== undefined).map((r) => r.step);

describe('the final evaluation in the metrics', () => {
  it('the last step of the run carries it, evaluated once; training computes the same', async () => {
    const periodic = await train(job({ steps: 6, evalEvery: 4 }));
    expect(evaluated(periodic.rows)).toEqual([4, 6]);
    expect(periodic.evals.map((e) => e.step)).toEqual([4, 6]); // not a second time after the loop
    expect(periodic.rows[5]).toMatchObject({ testLoss: 0.25, testAccuracy: 1 });
    expect(periodic.summary).toMatchObject({ testLoss: 0.25, testAccuracy: 1 });

    const none = await train(job({ steps: 6, evalEvery: 0 }));
    expect(evaluated(none.rows)).toEqual([6]);
    expect(none.evals.map((e) => e.step)).toEqual([6]);
    expect(Array.from(none.params)).toEqual(Array.from(periodic.params));
  }, 30_000);

  it('a run the budget stops carries it on its last step', async () => {
    const perSample = denseFlopsPerSample(jobLayout(job({})) as DenseLayout).training;
    const budget = 3.5 * 4 * perSample; // room for 3 steps of 4 samples, not 4
    const r = await train(job({ steps: 10, evalEvery: 0, compute: { budget } }));
    expect(r.summary.stoppedBy).toBe('budget');
    expect(r.rows.map((x) => x.step)).toEqual([1, 2, 3]);
    expect(evaluated(r.rows)).toEqual([3]);
    expect(r.evals.map((e) => e.step)).toEqual([3]);
  }, 30_000);

  it('a run with no step to carry it still evaluates at its end', async () => {
    const r = await train(job({ steps: 0, evalEvery: 5 }));
    expect(r.rows).toEqual([]);
    expect(r.evals.map((e) => e.step)).toEqual([0]);
    expect(r.summary.testLoss).toBe(0.25);
  }, 30_000);
});

describe('workers and members of a step', () => {
  it('a worker that left mid-step, its shard reassigned, did not compute the step', async () => {
    const LEAVE_AT = 3; // step index (0-based) whose shard w1 never answers
    const r = await train(job({ steps: 6, evalEvery: 0, batchSize: 8 }), [
      { onMessage: (msg, w) => answer(msg, w, 5) }, // slower: w1 is gone before w0 answers
      {
        onMessage: (msg, w) => {
          if (msg.t === 'work' && msg.step === LEAVE_AT) w.link.close('killed');
          else answer(msg, w);
        },
      },
    ]);
    const row = r.rows[LEAVE_AT];
    expect(Object.keys(row.workerComputeMs)).toEqual(['w1']); // ids: the coordinator numbers from w1
    expect(row).toMatchObject({ workers: 1, members: 1 });
    expect(r.rows[LEAVE_AT - 1]).toMatchObject({ workers: 2, members: 2 });
    expect(r.rows[LEAVE_AT + 1]).toMatchObject({ workers: 1, members: 1 });
  }, 30_000);

  it('a host agent counts as its workers, also in the step it left after computing its shard', async () => {
    const LEAVE_AT = 2;
    const r = await train(job({ steps: 4, evalEvery: 0, batchSize: 8 }), [
      { onMessage: (msg, w) => answer(msg, w, 60) }, // slower: the agent has left when this answers
      {
        behind: 3,
        onMessage: (msg, w) => {
          answer(msg, w);
          if (msg.t === 'work' && msg.step === LEAVE_AT) setTimeout(() => w.link.close('host lost'), 5);
        },
      },
    ]);
    expect(r.rows[0]).toMatchObject({ workers: 4, members: 2 });
    expect(Object.keys(r.rows[LEAVE_AT].workerComputeMs).sort()).toEqual(['w1', 'w2']);
    expect(r.rows[LEAVE_AT]).toMatchObject({ workers: 4, members: 2 });
    expect(r.rows[LEAVE_AT + 1]).toMatchObject({ workers: 1, members: 1 });
  }, 30_000);
});
