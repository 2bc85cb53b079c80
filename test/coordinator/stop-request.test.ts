/**
 * A stop (SIGINT/SIGTERM) ends the run after the step in flight, but a step that cannot finish
 * is not waited for: with no worker left it is abandoned at once, a stuck one after a grace
 * period, and the checkpoint holds the last completed step with its data cursor.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadLatestCheckpoint } from '../../coordinator/checkpoint.js';
import { Coordinator } from '../../coordinator/coordinator.js';
import { RunDir } from '../../coordinator/run-dir.js';
import { STOP_GRACE_MS, StopRequest } from '../../coordinator/stop-request.js';
import { parseConfig } from '../../shared/job/config.js';
import { createLocalNetwork } from '../../shared/transport/local.js';
import { DptrainError } from '../../shared/util/errors.js';
import { tempDir } from '../helpers/cli.js';
import { fakeWorker } from '../helpers/fake-worker.js';
import { resultFor } from '../helpers/result-msg.js';
import { XOR_JOB, XOR_TOTAL } from '../helpers/xor-job.js';

describe('StopRequest', () => {
  afterEach(() => vi.useRealTimers());

  it('abandons the work in flight at once when no worker is left, else after the grace period', () => {
    vi.useFakeTimers();
    const idleAbort = vi.fn();
    new StopRequest({ abort: idleAbort }, () => true, false).request('SIGTERM');
    expect(idleAbort).toHaveBeenCalledTimes(1);
    expect(idleAbort.mock.calls[0][0]).toMatchObject({ code: 'INTERRUPTED' });

    const busyAbort = vi.fn();
    const busy = new StopRequest({ abort: busyAbort }, () => false, false);
    busy.request('SIGINT');
    busy.request('SIGTERM'); // a second request changes nothing
    expect(busy.why).toBe('SIGINT');
    vi.advanceTimersByTime(STOP_GRACE_MS - 1);
    expect(busyAbort).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(busyAbort).toHaveBeenCalledTimes(1);
  });

  it('never abandons a step with slice shards, which may have applied their part of it', () => {
    vi.useFakeTimers();
    const abort = vi.fn();
    new StopRequest({ abort }, () => true, true).request('SIGTERM');
    vi.advanceTimersByTime(10 * STOP_GRACE_MS);
    expect(abort).not.toHaveBeenCalled();
  });

  it('takes an INTERRUPTED error for its own only once a stop was asked', () => {
    const s = new StopRequest({ abort: () => {} }, () => false, false);
    const e = new DptrainError('INTERRUPTED', 'x');
    expect(s.abandoned(e)).toBe(false);
    s.request('SIGTERM');
    expect(s.abandoned(e)).toBe(true);
    expect(s.abandoned(new DptrainError('WORKER_LOST', 'x'))).toBe(false);
  });
});

describe('a stop while a step waits for workers', () => {
  it('checkpoints the last completed step at once instead of waiting out the pause', async () => {
    const batchSize = 4;
    const config = parseConfig({ ...XOR_JOB, steps: 1000, batchSize, evalEvery: 0, pauseTimeoutSec: 300 });
    const dir = tempDir('stop-paused');
    const net = createLocalNetwork();
    const coord = new Coordinator({
      config,
      listener: net.listener,
      log: pino({ level: 'silent' }),
      runDir: RunDir.claim(dir, 'new'),
    });
    const run = coord.run().catch((e: unknown) => e);
    let answered = 0;
    const w = await fakeWorker(net.dial, XOR_TOTAL, {
      name: 'w0',
      onMessage: (msg, fw) => {
        if (msg.t !== 'work') return;
        if (++answered > 3) return void fw.link.close('leaving mid-step'); // the 4th step's shard is never answered
        fw.send(resultFor(msg, { lossSum: 0.5, losses: [0.5], count: msg.to - msg.from }), new Float32Array(XOR_TOTAL));
      },
    });
    expect(w).toBeDefined();
    await new Promise((r) => coord.membership.once('gone', r));
    const t0 = Date.now();
    coord.requestStop('SIGTERM');
    const e = await run;
    expect(e).toMatchObject({ code: 'INTERRUPTED' });
    expect(Date.now() - t0).toBeLessThan(STOP_GRACE_MS); // not the pause timeout, not the grace
    const saved = loadLatestCheckpoint(dir).state;
    expect(saved.step).toBe(3);
    expect(saved.position).toBe(3 * batchSize); // the abandoned step's samples come again on resume
    await net.listener.close();
  }, 30_000);

  it('during an evaluation: the step it follows is kept, its metrics row written, the evaluation dropped', async () => {
    const config = parseConfig({ ...XOR_JOB, steps: 1000, batchSize: 4, evalEvery: 2, pauseTimeoutSec: 300 });
    const dir = tempDir('stop-eval');
    const net = createLocalNetwork();
    const coord = new Coordinator({
      config,
      listener: net.listener,
      log: pino({ level: 'silent' }),
      runDir: RunDir.claim(dir, 'new'),
    });
    const run = coord.run().catch((e: unknown) => e);
    await fakeWorker(net.dial, XOR_TOTAL, {
      name: 'w0',
      onMessage: (msg, fw) => {
        if (msg.t === 'evaluate') return void fw.link.close('leaving during the evaluation');
        if (msg.t !== 'work') return;
        fw.send(resultFor(msg, { lossSum: 0.5, losses: [0.5], count: msg.to - msg.from }), new Float32Array(XOR_TOTAL));
      },
    });
    await new Promise((r) => coord.membership.once('gone', r));
    coord.requestStop('SIGTERM');
    expect(await run).toMatchObject({ code: 'INTERRUPTED' });
    expect(loadLatestCheckpoint(dir).state.step).toBe(2);
    const rows = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rows.map((r: { step: number }) => r.step)).toEqual([1, 2]);
    expect(rows[1]).not.toHaveProperty('testLoss');
    await net.listener.close();
  }, 30_000);
});
