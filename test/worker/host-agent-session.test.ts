/**
 * The host agent's session over the in-process transport, against a scripted coordinator: a job
 * it cannot serve (a compressed one) it gives up on in one line before opening the host to any
 * worker; an uncompressed one opens the host. The refusals it shares with the worker's session
 * are in coordinator-session.test.ts.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { jobOf, parseConfig } from '../../shared/job/config.js';
import { createLocalNetwork } from '../../shared/transport/local.js';
import { runHostAgent } from '../../worker/host-agent/host-agent.js';
import { scriptedCoordinator, TINY, TINY_TOTAL, TOKEN } from '../helpers/scripted-coordinator.js';
import { fakeWorker } from '../helpers/fake-worker.js';

/** A scripted coordinator for one host agent, and the listener the agent opens to its host's workers. */
async function agentSession() {
  const host = createLocalNetwork();
  const s = await scriptedCoordinator(
    (up) =>
      runHostAgent({
        up,
        listener: host.listener,
        name: 'agent',
        log: pino({ level: 'silent' }),
        token: TOKEN,
        shm: null,
      }),
    TINY_TOTAL,
  );
  return { ...s, host };
}

/** Resolves true once the agent lets a worker connect to its host; false if `stop` settles first. */
async function hostOpens(host: ReturnType<typeof createLocalNetwork>, stop: Promise<unknown>): Promise<boolean> {
  let stopped = false;
  const halt = () => {
    stopped = true;
  };
  stop.then(halt, halt);
  while (!stopped) {
    try {
      (await host.dial()).close('probe over');
      return true;
    } catch {
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  return false;
}

describe('host agent session', () => {
  it('a compressed job: one line that names the fix, a workerFault close, and no worker let in', async () => {
    const s = await agentSession();
    await s.join(jobOf(parseConfig({ ...TINY, compression: { kind: 'topk', ratio: 0.05 } })), TOKEN);
    const fault = s.next('fault');
    // Without the check the agent opens its host and waits for workers: fail at once, not at the timeout.
    expect(await hostOpens(s.host, fault), 'the agent opened its host to workers for a compressed job').toBe(false);
    const msg = await fault;
    if (msg.t !== 'fault') throw new Error('unreachable');
    expect(msg.message).toMatch(/^compression topk is not supported behind a host agent: .*leave compression off$/);
    expect(msg.message).not.toContain('\n');
    expect(await s.closed).toBe('workerFault');
    const out = await s.outcome;
    expect(out).toEqual({ finished: false, fatal: 'RUN_FAILED', reason: msg.message, wasReady: false });
    expect(s.got.map((m) => m.t)).toEqual(['hello', 'fault']); // never ready
    // The host stays shut: no worker can connect to an agent that will not serve the job.
    await expect(s.host.dial()).rejects.toThrow(/not listening/);
    await s.net.listener.close();
  });

  it('an uncompressed job opens the host to its workers', async () => {
    const s = await agentSession();
    await s.join(jobOf(TINY), TOKEN);
    expect(await hostOpens(s.host, s.closed)).toBe(true);
    expect(s.got.map((m) => m.t)).toEqual(['hello']); // waiting for its workers, nothing refused
    s.send({ t: 'bye', reason: 'done' });
    // Its workers never gathered: a next session would wait for all of them again.
    expect(await s.outcome).toMatchObject({ finished: true, fatal: null, wasReady: false });
    await s.net.listener.close();
  });

  it('once its workers gathered and it said ready, the outcome says so (a next session waits for the first back)', async () => {
    const s = await agentSession();
    await s.join(jobOf(TINY), TOKEN);
    await hostOpens(s.host, s.closed);
    await fakeWorker(s.host.dial, TINY_TOTAL, { token: TOKEN });
    const ready = await s.next('ready');
    expect(ready).toMatchObject({ t: 'ready', workers: 1 });
    s.send({ t: 'bye', reason: 'done' });
    expect(await s.outcome).toMatchObject({ finished: true, fatal: null, wasReady: true });
    await s.net.listener.close();
  });
});
