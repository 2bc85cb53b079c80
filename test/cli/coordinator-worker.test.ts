/**
 * The worker inside the coordinator (cli/coordinator-worker.ts) against a scripted coordinator
 * over its in-process links: it joins beside the outer listener's links, joins again after a
 * close worth another session, finishes on bye, and reports a refusal once, by its reason.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { coordinatorWorker, holdNotices } from '../../cli/coordinator-worker.js';
import { RunDir } from '../../coordinator/run-dir.js';
import { jobOf, parseConfig } from '../../shared/job/config.js';
import type { Link, Listener } from '../../shared/transport/transport.js';
import { scriptLink, TINY, TINY_TOTAL, TOKEN } from '../helpers/scripted-coordinator.js';

const CONFIG = parseConfig({ ...jobOf(TINY), backend: 'cpu' });

/** A listener that never has links of its own, recording whether it was closed and its hold notices. */
function outerListener() {
  const state = { closed: false, handlers: 0, holds: 0 };
  const listener: Listener = {
    address: 'ws://127.0.0.1:7070',
    onLink: () => {
      state.handlers++;
    },
    close: async () => {
      state.closed = true;
    },
    holdingThread: () => {
      state.holds++;
    },
  };
  return { listener, state };
}

/** The worker's links, as they come. */
function linkQueue(l: Listener) {
  const links: Link[] = [];
  const waiting: Array<() => void> = [];
  l.onLink((link) => {
    links.push(link);
    for (const w of waiting.splice(0)) w();
  });
  return async (n: number) => {
    while (links.length <= n) await new Promise<void>((r) => waiting.push(r));
    return links[n];
  };
}

function setUp() {
  const outer = outerListener();
  const runDir = new RunDir(mkdtempSync(join(tmpdir(), 'dptrain-cw-')));
  const cw = coordinatorWorker(CONFIG, outer.listener, runDir, TOKEN);
  const link = linkQueue(cw.listener);
  const failures: string[] = [];
  const served = cw.start((why) => failures.push(why));
  return { outer, runDir, cw, link, failures, served };
}

describe('the worker inside the coordinator', () => {
  it('joins again after a "reconnect" close, finishes on bye, and closes with the outer listener', async () => {
    const t = setUp();
    expect(t.cw.listener.address).toBe('ws://127.0.0.1:7070');
    expect(t.outer.state.handlers).toBe(1); // the outer listener's links reach the same handler
    const first = scriptLink(await t.link(0), TINY_TOTAL);
    expect((await first.join(jobOf(TINY), TOKEN)).name).toBe('worker-0');
    await first.next('ready');
    expect(t.outer.state.holds).toBe(1); // loading the job: the outer listener's peers were told
    (await t.link(0)).close('shared memory failed: join again without it', 'reconnect');
    const second = scriptLink(await t.link(1), TINY_TOTAL);
    await second.join(jobOf(TINY), TOKEN);
    await second.next('ready');
    second.send({ t: 'bye', reason: 'training finished' });
    await t.served;
    expect(t.failures).toEqual([]);
    const log = readFileSync(t.runDir.workerLog('worker-0'), 'utf8');
    expect(log).toMatch(/\[worker-0\] session with the coordinator ended; joining again/);
    await t.cw.listener.close();
    expect(t.outer.state.closed).toBe(true);
  });

  it('tells the outer peers before the first work of each kind and after long ones, not after short ones', async () => {
    const state = { holds: 0 };
    const holds = holdNotices({ holdingThread: () => state.holds++ }, 50);
    const sleep = (ms: number) => () => new Promise<number>((r) => setTimeout(() => r(ms), ms));
    expect(await holds('shard', sleep(0))).toBe(0); // the work's own result comes back
    expect(state.holds).toBe(1); // the first shard
    await holds('shard', sleep(80));
    expect(state.holds).toBe(1); // the last shard was short
    await holds('shard', sleep(0));
    expect(state.holds).toBe(2); // the last one took 80 ms ≥ 50
    await holds('evaluate', sleep(0));
    expect(state.holds).toBe(3); // the first evaluation
    await holds('shard', sleep(0));
    expect(state.holds).toBe(3);
    await expect(holds('shard', () => Promise.reject(new Error('no')))).rejects.toThrow('no');
  });

  it('a refusal ends it at once, reported with its reason', async () => {
    const t = setUp();
    const s = scriptLink(await t.link(0), TINY_TOTAL);
    await s.join(jobOf(TINY), 'another-token-of-enough-length'); // the coordinator's proof does not check out
    await t.served;
    expect(t.failures).toHaveLength(1);
    expect(t.failures[0]).toMatch(/^the coordinator's own worker \(worker-0\) stopped: /);
  });
});
