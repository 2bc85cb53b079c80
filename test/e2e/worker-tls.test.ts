/**
 * A worker dialing a wss:// coordinator whose certificate cannot be accepted: a certificate that
 * does not name the address dialed, or one no trusted certificate signed, is the same on every
 * try, so the worker ends at once with one line saying what to change (the --ca hint only without
 * --ca) instead of retrying for --connect-timeout. Judged by the error's code.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listenWs } from '../../coordinator/ws-listener.js';
import type { Listener } from '../../shared/transport/transport.js';
import { permanentDialFailure } from '../../worker/ws-dialer.js';
import { hasOpenssl, runCli, selfSignedCert } from '../helpers/cli.js';

const dialer = (address: string, flags: string[]) =>
  runCli(['worker', '--connect', address, '--backend', 'cpu', '--connect-timeout', '5', ...flags], 60_000, {
    ...process.env,
    DPTRAIN_TOKEN: 'worker-tls-token-0123456789abcdef',
  });

describe('permanent dial failures, by code', () => {
  it('certificate verdicts are permanent; refused, unreachable, timed out are not', () => {
    const e = (code: string) => Object.assign(new Error('whatever the text says'), { code });
    for (const code of [
      'ERR_TLS_CERT_ALTNAME_INVALID',
      'DEPTH_ZERO_SELF_SIGNED_CERT',
      'SELF_SIGNED_CERT_IN_CHAIN',
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    ])
      expect(permanentDialFailure(e(code)), code).toBe(true);
    for (const code of ['ECONNREFUSED', 'EHOSTUNREACH', 'ETIMEDOUT', 'ECONNRESET', 'ENOTFOUND'])
      expect(permanentDialFailure(e(code)), code).toBe(false);
  });
});

describe.skipIf(!hasOpenssl)('a worker and a certificate it cannot accept', () => {
  // Named only localhost (no subjectAltName): dialed at 127.0.0.1, the name does not match.
  const bare = selfSignedCert('worker-tls-bare', 1, false);
  const other = selfSignedCert('worker-tls-other');
  let listener: Listener;

  beforeAll(async () => {
    listener = await listenWs({
      host: '127.0.0.1',
      port: 0,
      maxPayload: 1 << 20,
      tls: { cert: readFileSync(bare.cert), key: readFileSync(bare.key) },
    });
  });
  afterAll(async () => {
    await listener?.close();
  });

  const noRetry = (stderr: string) => {
    expect(stderr).not.toMatch(/retrying/);
    expect(stderr).not.toMatch(/gave up after/);
    // The backend's info line, then the refusal: no warning of a try that failed before it.
    expect(stderr).not.toMatch(/ WARN /);
    expect(
      stderr
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('dptrain: ')),
    ).toHaveLength(1);
  };

  it('an address the certificate does not name: exits at once, says to dial a named address', async () => {
    const r = await dialer(listener.address, ['--ca', bare.cert]);
    expect(r.code).toBe(1);
    noRetry(r.stderr);
    expect(r.stderr).toMatch(
      /\ndptrain: CONNECT_FAILED: cannot reach the coordinator at wss:\/\/127\.0\.0\.1:\d+: TLS: .*: dial the coordinator at an address its certificate names, or give it a certificate that names 127\.0\.0\.1\n$/,
    );
    expect(r.stderr).not.toMatch(/with --ca/);
  }, 60_000);

  it('a --ca that does not verify it: exits at once, says to give the right --ca', async () => {
    const r = await dialer(listener.address.replace('127.0.0.1', 'localhost'), ['--ca', other.cert]);
    expect(r.code).toBe(1);
    noRetry(r.stderr);
    expect(r.stderr).toMatch(
      /TLS: .*: the certificate given with --ca does not verify the coordinator's; give --ca the coordinator's own certificate/,
    );
  }, 60_000);

  it('no --ca for a self-signed one: exits at once with the --ca hint', async () => {
    const r = await dialer(listener.address.replace('127.0.0.1', 'localhost'), []);
    expect(r.code).toBe(1);
    noRetry(r.stderr);
    expect(r.stderr).toMatch(/TLS: .*self.signed.* \(give the coordinator's certificate with --ca\)\n$/);
  }, 60_000);
});
