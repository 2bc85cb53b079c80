/**
 * The next step's shards go out before a step's metrics are handed on (coordinator.prefetch),
 * except when something must come first: an evaluation, the last step, a stop. And sending
 * early changes no number: the run equals one whose steps are each started after the last.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Coordinator } from '../../coordinator/coordinator.js';
import type { StepRecord } from '../../coordinator/summary.js';
import { parseConfig } from '../../shared/job/config.js';
import { DptrainError } from '../../shared/util/errors.js';
import { createLocalNetwork } from '../../shared/transport/local.js';
import { selectBackend } from '../../worker/backend.js';
import { runWorker } from '../../worker/worker.js';

const JOB = {
  data: { name: 'spirals', samples: 300 },
  model: { layers: [{ units: 8, activation: 'tanh' }, { units: 2 }], loss: 'softmaxCrossEntropy' },
  steps: 9,
  batchSize: 30,
  evalEvery: 4,
  checkpointEvery: 0,
};

/** Runs the job with 2 in-process cpu workers; returns the order of step starts (">n") and step records ("n"). */
async function run(job: object, onStep?: (r: StepRecord, c: Coordinator) => void) {
  const net = createLocalNetwork();
  const events: string[] = [];
  const coord: Coordinator = new Coordinator({
    config: parseConfig(job),
    listener: net.listener,
    log: pino({ level: 'silent' }),
    runDir: null,
    startWorkers: 2,
    onStepStart: (n) => events.push(`>${n}`),
    onStep: (r) => {
      events.push(String(r.step));
      onStep?.(r, coord);
    },
  });
  const backend = await selectBackend('cpu');
  const workers = [0, 1].map(async () =>
    runWorker({ link: await net.dial(), backend, name: 'w', log: pino({ level: 'silent' }) }),
  );
  try {
    const summary = await coord.run();
    return { events, summary, params: coord.params.slice() };
  } catch (e) {
    return { events, error: e as Error, params: coord.params.slice() };
  } finally {
    await net.listener.close();
    await Promise.all(workers);
  }
}

describe('prefetching the next step', () => {
  it('starts step n+1 before step n is reported, except before an evaluation and after the last step', async () => {
    const { events } = await run(JOB);
    // Evaluations follow steps 4 and 8 (evalEvery 4); step 9 is the last.
    expect(events).toEqual([
      '>1',
      '>2',
      '1',
      '>3',
      '2',
      '>4',
      '3',
      '4',
      '>5',
      '>6',
      '5',
      '>7',
      '6',
      '>8',
      '7',
      '8',
      '>9',
      '9',
    ]);
  });

  it('changes no number: parameters equal a run that never prefetches (evaluation after every step)', async () => {
    const eager = await run({ ...JOB, evalEvery: 0 });
    const never = await run({ ...JOB, evalEvery: 1 });
    expect(eager.events.filter((e) => e.startsWith('>'))).toHaveLength(9);
    expect(never.events).toEqual(Array.from({ length: 9 }, (_, i) => [`>${i + 1}`, String(i + 1)]).flat());
    expect(Array.from(eager.params)).toEqual(Array.from(never.params));
  });

  it('a stop requested while the next step is in flight ends the run after the step reported, and does not wait for it', async () => {
    const t0 = performance.now();
    const r = await run({ ...JOB, evalEvery: 0, steps: 1000 }, (rec, c) => {
      if (rec.step === 3) c.requestStop('test stop');
    });
    expect(r.error).toBeInstanceOf(DptrainError);
    expect((r.error as DptrainError).code).toBe('INTERRUPTED');
    expect(r.error!.message).toMatch(/stopped after step 3/);
    expect(r.events.slice(-2)).toEqual(['>4', '3']); // step 4 had been sent, and was abandoned
    expect(performance.now() - t0).toBeLessThan(20_000);
  });
});
