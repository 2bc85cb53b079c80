/** A join timeout names the workers a launcher started that never became ready, and how far each got. */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Coordinator } from '../../coordinator/coordinator.js';
import { parseConfig } from '../../shared/job/config.js';
import { createLocalNetwork } from '../../shared/transport/local.js';
import type { Dial } from '../../shared/transport/transport.js';
import { fakeWorker } from '../helpers/fake-worker.js';
import { XOR_JOB, XOR_TOTAL } from '../helpers/xor-job.js';

const cfg = parseConfig({
  ...XOR_JOB,
  steps: 10,
  batchSize: 4,
  evalEvery: 0,
});
const TOTAL = XOR_TOTAL;

/** A coordinator waiting 600 ms for 3 workers (those a launcher started: `expected`); its run's error. */
function waitingForThree(expected?: string[]) {
  const net = createLocalNetwork();
  const coord = new Coordinator({
    config: cfg,
    listener: net.listener,
    log: pino({ level: 'silent' }),
    runDir: null,
    startWorkers: 3,
    joinTimeoutMs: 600,
    expectedWorkers: expected,
  });
  return { net, run: coord.run().catch((e: Error) => e) };
}

describe('join timeout', () => {
  it('names the missing workers: never connected, or connected but not ready', async () => {
    const expected = ['rank0@host1', 'rank1@host1', 'rank2@host2'];
    const { net, run } = waitingForThree(expected);
    await fakeWorker(net.dial, TOTAL, { name: 'rank0@host1' });
    await fakeWorker(net.dial, TOTAL, { name: 'rank2@host2', ready: false });
    const e = await run;
    expect(e).toMatchObject({ code: 'WORKER_LOST' });
    expect((e as Error).message).toBe(
      'start: only 1 of 3 workers ready for 1 s; not ready: rank1@host1 (never connected), rank2@host2 (connected, loading)',
    );
  });

  it("without a launcher's list, says who came: ready, loading, or nobody", async () => {
    const timeout = async (join: (dial: Dial) => Promise<void>) => {
      const { net, run } = waitingForThree();
      await join(net.dial);
      return ((await run) as Error).message;
    };
    expect(
      await timeout(async (dial) => {
        await fakeWorker(dial, TOTAL, { name: 'jt1' });
        await fakeWorker(dial, TOTAL, { name: 'jt2' });
      }),
    ).toMatch(/^start: only 2 of 3 workers ready for 1 s; ready: jt1 \(.+\), jt2 \(.+\)$/);
    expect(await timeout(async () => {})).toBe('start: only 0 of 3 workers ready for 1 s; no worker connected');
  });
});
