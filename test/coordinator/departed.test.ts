/**
 * Workers joining and leaving all run long: the coordinator keeps what accounting needs of a
 * departed worker only for the steps in flight when it left, never a growing list.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Coordinator } from '../../coordinator/coordinator.js';
import { parseConfig } from '../../shared/job/config.js';
import { createLocalNetwork } from '../../shared/transport/local.js';
import { fakeWorker } from '../helpers/fake-worker.js';
import { resultFor } from '../helpers/result-msg.js';
import { XOR_JOB, XOR_TOTAL } from '../helpers/xor-job.js';

const cfg = parseConfig({
  ...XOR_JOB,
  steps: 100_000,
  batchSize: 4,
  evalEvery: 0,
  maxWorkers: 8,
});
const TOTAL = XOR_TOTAL;

describe('departed workers', () => {
  it('200 join/leave cycles during a run leave at most maxWorkers entries, all recent', async () => {
    const net = createLocalNetwork();
    const coord = new Coordinator({
      config: cfg,
      listener: net.listener,
      log: pino({ level: 'silent' }),
      runDir: null,
    });
    const run = coord.run().catch((e: Error) => e);
    const answer = (name: string) =>
      fakeWorker(net.dial, TOTAL, {
        name,
        onMessage: (msg, w) => {
          if (msg.t !== 'work') return;
          w.send(resultFor(msg, { lossSum: 0, losses: [0], count: msg.to - msg.from }), new Float32Array(TOTAL));
        },
      });
    await answer('steady');
    for (let i = 0; i < 200; i++) {
      const ready = new Promise((r) => coord.membership.once('ready', r));
      const w = await answer(`visitor-${i}`);
      await ready;
      const gone = new Promise((r) => coord.membership.once('gone', r));
      w.link.close('visit over');
      await gone;
    }
    const departed = coord.peaks.departed;
    const done = (coord as unknown as { stepsDone: number }).stepsDone;
    expect(done).toBeGreaterThan(10); // it trained meanwhile
    expect(departed.size).toBeGreaterThan(0);
    expect(departed.size).toBeLessThanOrEqual(cfg.maxWorkers);
    for (const atStep of departed.steps()) expect(atStep).toBeGreaterThanOrEqual(done - 2);
    coord.requestStop('test over');
    await run;
    await net.listener.close();
  }, 60_000);
});
