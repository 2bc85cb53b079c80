/**
 * Elastic membership and the wire's failure modes: a worker joining a running job, a result
 * delivered twice, workers finding a restarted coordinator on their own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../shared/job/config.js';
import type { StepRecord } from '../../coordinator/summary.js';
import { decodeFrame } from '../../shared/wire/codec.js';
import type { Link } from '../../shared/transport/transport.js';
import { selectBackend } from '../../worker/backend.js';
import { runWorker } from '../../worker/worker.js';
import { dialWs } from '../../worker/ws-dialer.js';
import { CLI, exited, freePort, readSummary, spawnWorker, stepsReached, tempDir } from '../helpers/cli.js';
import { SPIRALS_NET, wsCoordinator } from '../helpers/ws-coordinator.js';

const JOB = {
  ...SPIRALS_NET,
  steps: 30,
  batchSize: 40,
  evalEvery: 0,
  checkpointEvery: 5,
};

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});
const worker = (address: string) => {
  const c = spawnWorker(address, ['--reconnect-timeout', '30']);
  children.push(c);
  return c;
};

describe('elastic membership', () => {
  it('a worker that joins a running job gets the current parameters and shards from the next step', async () => {
    // Open-ended job: stop it (requestStop) a few steps after the joiner has taken part.
    const cfg = parseConfig({ ...JOB, steps: 1_000_000 });
    const records: StepRecord[] = [];
    const { coord, listener } = await wsCoordinator(
      {
        config: cfg,
        startWorkers: 1,
        onStep: (r) => {
          records.push(r);
          if (r.step === 5) worker(listener.address);
          const firstTwo = records.findIndex((x) => x.workers === 2);
          if (firstTwo >= 0 && records.length >= firstTwo + 5) coord.requestStop('test done');
        },
      },
      1 << 22,
    );
    const run = coord.run();
    worker(listener.address);
    await expect(run).rejects.toThrow(/test done: stopped after step/);
    await listener.close();
    const firstTwo = records.findIndex((x) => x.workers === 2);
    expect(firstTwo).toBeGreaterThanOrEqual(5); // joined after step 5
    expect(records.slice(firstTwo).every((r) => r.workers === 2)).toBe(true);
    expect(Object.keys(records[records.length - 1].workerComputeMs)).toHaveLength(2);
  });
});

/** An in-process worker whose every result frame is sent twice (a retransmitting network). */
async function inProcessWorker(address: string, duplicate: boolean): Promise<void> {
  const link = await dialWs(address, 1 << 22);
  const twice: Link = {
    ...link,
    remote: link.remote,
    send(frame) {
      link.send(frame);
      if (duplicate && (decodeFrame(frame).header as { t: string }).t === 'result') link.send(frame);
    },
    close: (r) => link.close(r),
    onFrame: (h) => link.onFrame(h),
    onClose: (h) => link.onClose(h),
  };
  const backend = await selectBackend('cpu');
  await runWorker({ link: twice, backend, name: duplicate ? 'echo' : 'plain', log: pino({ level: 'silent' }) });
}

describe('duplicated results', () => {
  it('a result delivered twice is ignored and counted, never added twice: parameters are bit-identical', async () => {
    const cfg = parseConfig({ ...JOB, steps: 12, workers: 1 });
    const train = async (duplicate: boolean) => {
      const { coord, listener } = await wsCoordinator({ config: cfg }, 1 << 22);
      const run = coord.run();
      const w = inProcessWorker(listener.address, duplicate);
      const summary = await run;
      await w;
      await listener.close();
      return { summary, params: coord.params.slice() };
    };
    const plain = await train(false);
    const echoed = await train(true);
    expect(plain.summary.staleResults).toBe(0);
    expect(echoed.summary.staleResults).toBe(12);
    expect(echoed.params).toEqual(plain.params);
  });
});

describe('coordinator restart', () => {
  it.each([
    ['killed', 'SIGKILL', null],
    ['stopped by Ctrl-C', 'SIGINT', 130],
  ] as const)(
    'workers reconnect to a coordinator %s and resumed (with backoff), without being restarted',
    async (_, signal, code) => {
      const dir = tempDir('reconnect');
      const job = join(dir, 'job.json');
      writeFileSync(job, JSON.stringify({ ...JOB, minWorkers: 2 }));
      const port = await freePort();
      const listen = `127.0.0.1:${port}`;
      const out = join(dir, 'run');
      const first = spawn(process.execPath, [CLI, 'coordinator', '--listen', listen, '--config', job, '--out', out], {
        stdio: 'ignore',
      });
      children.push(first);
      const workers = [worker(`ws://${listen}`), worker(`ws://${listen}`)];
      await stepsReached(out, 7);
      first.kill(signal);
      expect(await exited(first)).toBe(code);
      await new Promise((r) => setTimeout(r, 500)); // the workers notice and start knocking
      expect(workers.map((w) => w.exitCode)).toEqual([null, null]); // not dismissed: waiting for the resume
      const second = spawn(process.execPath, [CLI, 'coordinator', '--listen', listen, '--resume', out], {
        stdio: 'ignore',
      });
      children.push(second);
      expect(await exited(second)).toBe(0);
      expect(await Promise.all(workers.map(exited))).toEqual([0, 0]); // same processes, finished normally
      const s = readSummary(out);
      expect(s.steps).toBe(30);
      expect(s.workers).toBe(2);
    },
  );
});
