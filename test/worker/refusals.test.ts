/**
 * How a worker takes a close from the coordinator: by its kind, never its text. A refusal ends
 * the worker with the matching error; a closed door for now (job full, busy, a handshake
 * deadline, a reconnect request, a lost connection) is another session.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createLocalNetwork } from '../../shared/transport/local.js';
import type { CloseKind } from '../../shared/transport/transport.js';
import { runWorker } from '../../worker/worker.js';

async function outcomeAfter(kind: CloseKind, reason: string) {
  const net = createLocalNetwork();
  net.listener.onLink((link) => link.close(reason, kind));
  const link = await net.dial();
  return runWorker({
    link,
    backend: { name: 'cpu', provider: 'test', reason: 'test' },
    name: 'w',
    log: pino({ level: 'silent' }),
  });
}

describe('a worker closed by the coordinator', () => {
  it.each([
    ['authFailed', 'AUTH_FAILED'],
    ['protocolMismatch', 'PROTOCOL_MISMATCH'],
    ['wrongJob', 'WRONG_JOB'],
    ['invalid', 'RUN_FAILED'],
    ['datasetDiffers', 'RUN_FAILED'],
    ['workerFault', 'RUN_FAILED'],
  ] as const)('%s: gives up with %s', async (kind, code) => {
    const out = await outcomeAfter(kind, 'whatever the text says');
    expect(out.fatal).toBe(code);
    expect(out.finished).toBe(false);
  });

  it.each(['jobFull', 'busy', 'timeout', 'reconnect', 'lost', 'normal'] as const)(
    '%s: comes back (not fatal)',
    async (kind) => {
      // The text of a refusal does not make it one.
      const out = await outcomeAfter(kind, 'authentication failed: but the kind says otherwise');
      expect(out.fatal).toBeNull();
      expect(out.reason).toBe('authentication failed: but the kind says otherwise');
    },
  );
});
