/**
 * What the worker's and the host agent's sessions share (worker/coordinator-session.ts), run
 * against a scripted coordinator over the in-process transport for each: a message out of turn,
 * a coordinator that cannot prove the token, another protocol version and another job each end
 * the session with a coded close and the matching error, naming which side gave up.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { jobOf } from '../../shared/job/config.js';
import { createLocalNetwork } from '../../shared/transport/local.js';
import type { CloseKind, Link } from '../../shared/transport/transport.js';
import { decodeFrame, encodeFrame } from '../../shared/wire/codec.js';
import { coordinatorProof } from '../../shared/wire/auth.js';
import { PROTOCOL_VERSION } from '../../shared/wire/protocol.js';
import type { WorkerOutcome } from '../../worker/coordinator-session.js';
import { runHostAgent } from '../../worker/host-agent/host-agent.js';
import { runWorker } from '../../worker/worker.js';
import { selectBackend } from '../../worker/backend.js';
import { scriptedCoordinator, TINY, TINY_TOTAL, TOKEN } from '../helpers/scripted-coordinator.js';

const log = pino({ level: 'silent' });
const CPU = { name: 'cpu', provider: 'test', reason: 'test' } as const;

/** Each session on a link, started for `jobId`. */
const SESSIONS: Array<[string, (link: Link, jobId?: string) => Promise<WorkerOutcome>]> = [
  ['worker', (link, jobId) => runWorker({ link, backend: CPU, name: 'w', log, token: TOKEN, jobId })],
  [
    'host agent',
    (up, jobId) =>
      runHostAgent({ up, listener: createLocalNetwork().listener, name: 'a', log, token: TOKEN, shm: null, jobId }),
  ],
];

describe.each(SESSIONS)('%s session, as any coordinator session', (role, start) => {
  const session = (jobId?: string) => scriptedCoordinator((link) => start(link, jobId), TINY_TOTAL);

  it('a message its state does not expect ends the session: fault, then a workerFault close', async () => {
    const s = await session();
    const work = { step: 0, micro: 0, shard: 0, version: 0, from: 0, to: 4, leaves: 1, first: 0, last: 1, batch: 4 };
    s.send({ t: 'work', ...work, shmRead: 0 });
    const fault = await s.next('fault');
    expect(fault).toMatchObject({ t: 'fault', message: 'invalid: work while challenged' });
    expect(await s.closed).toBe('workerFault');
    expect((await s.outcome).fatal).toBe('RUN_FAILED');
    await s.net.listener.close();
  });

  it('a coordinator that cannot prove the token: AUTH_FAILED, closed as authFailed', async () => {
    const s = await session();
    await s.join(jobOf(TINY), null); // a forged proof
    expect(await s.closed).toBe('authFailed');
    expect((await s.outcome).fatal).toBe('AUTH_FAILED');
    await s.net.listener.close();
  });

  it('another protocol version: PROTOCOL_MISMATCH, naming this side', async () => {
    const s = await session();
    s.send({ t: 'challenge', protocol: PROTOCOL_VERSION + 1, jobId: 'job-test', nonce: 'n1' });
    expect(await s.closed).toBe('protocolMismatch');
    const out = await s.outcome;
    expect(out.fatal).toBe('PROTOCOL_MISMATCH');
    expect(out.reason).toContain(`this ${role} v${PROTOCOL_VERSION}`);
    await s.net.listener.close();
  });

  it('started for another job: WRONG_JOB, closed as wrongJob', async () => {
    const s = await session('job-other');
    s.send({ t: 'challenge', protocol: PROTOCOL_VERSION, jobId: 'job-test', nonce: 'n1' });
    expect(await s.closed).toBe('wrongJob');
    const out = await s.outcome;
    expect(out.fatal).toBe('WRONG_JOB');
    expect(out.reason).toContain(`this ${role} was started for job-other`);
    await s.net.listener.close();
  });
});

describe('a bye', () => {
  it('followed at once by the close, while the session still handles the welcome: finished, not lost', async () => {
    // A link driven by hand: the welcome, the bye and the close arrive in one go, so the bye is
    // still queued behind the welcome (the job loading) when the close comes.
    let toWorker: (frame: Uint8Array) => void = () => {};
    let closeWorker: (reason: string, kind: CloseKind) => void = () => {};
    const sent: Uint8Array[] = [];
    const link: Link = {
      remote: 'by-hand',
      send: (f) => void sent.push(f),
      close: () => {},
      onFrame: (h) => {
        toWorker = h;
      },
      onClose: (h) => {
        closeWorker = h;
      },
    };
    const outcome = runWorker({ link, backend: await selectBackend('cpu'), name: 'w', log, token: TOKEN });
    toWorker(encodeFrame({ t: 'challenge', protocol: PROTOCOL_VERSION, jobId: 'job-test', nonce: 'n1' }));
    while (sent.length === 0) await new Promise((r) => setImmediate(r));
    const hello = decodeFrame(sent[0]).header as { cnonce: string };
    const proof = coordinatorProof(TOKEN, 'job-test', hello.cnonce, 'n1');
    toWorker(
      encodeFrame({
        t: 'welcome',
        protocol: PROTOCOL_VERSION,
        workerId: 'w1',
        jobId: 'job-test',
        job: jobOf(TINY),
        proof,
        shm: false,
      }),
    );
    toWorker(encodeFrame({ t: 'bye', reason: 'run ended: another worker failed' }));
    closeWorker('run ended: another worker failed', 'normal');
    const out = await outcome;
    expect(out, out.reason).toMatchObject({ finished: true, fatal: null });
  });
});
