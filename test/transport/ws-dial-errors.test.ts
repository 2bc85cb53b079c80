/**
 * Why a worker cannot reach its coordinator, in one line that says what to change: a wss://
 * address at a plain ws:// coordinator is no certificate problem, and OpenSSL's multi-line text
 * never reaches the user.
 */
import { describe, expect, it } from 'vitest';
import { listenWs } from '../../coordinator/ws-listener.js';
import { isDptrainError } from '../../shared/util/errors.js';
import { dialFailure, dialWs } from '../../worker/ws-dialer.js';

const MAX = 1 << 20;

describe('dial failures', () => {
  it('wss:// at a ws:// coordinator: it does not speak TLS, try ws:// (no --ca hint, one line)', async () => {
    const listener = await listenWs({ host: '127.0.0.1', port: 0, maxPayload: MAX });
    const plain = listener.address;
    const tls = plain.replace(/^ws:/, 'wss:');
    try {
      const err = await dialWs(tls, MAX).catch((e: unknown) => e);
      expect(isDptrainError(err, 'CONNECT_FAILED')).toBe(true);
      const msg = (err as Error).message;
      expect(msg).toBe(`cannot reach the coordinator at ${tls}: it does not seem to speak TLS (try ${plain})`);
    } finally {
      await listener.close();
    }
  });

  it('certificate errors keep the --ca hint; OpenSSL texts come down to their reason on one line', () => {
    const e = (message: string, code: string) => Object.assign(new Error(message), { code });
    expect(dialFailure('wss://h:1', e('self-signed certificate', 'DEPTH_ZERO_SELF_SIGNED_CERT'))).toBe(
      "TLS: self-signed certificate (give the coordinator's certificate with --ca)",
    );
    expect(
      dialFailure(
        'wss://h:1',
        e('C0A0:error:0A000086:SSL routines::certificate verify failed:ssl.c:2091:\n', 'EPROTO'),
      ),
    ).toBe("TLS: certificate verify failed (give the coordinator's certificate with --ca)");
    const wrongVersion = e(
      'write EPROTO 809C887B9D7F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/openssl/openssl/ssl/record/ssl3_record.c:350:\n',
      'EPROTO',
    );
    expect(dialFailure('wss://h:1', wrongVersion)).toBe('it does not seem to speak TLS (try ws://h:1)');
    expect(dialFailure('ws://h:1', e('socket hang up', 'ECONNRESET'))).toMatch(
      /^socket hang up: .*if the coordinator serves TLS, use wss:\/\/h:1\)$/,
    );
    expect(dialFailure('ws://h:1', e('a\nb', 'EOTHER'))).toBe('a b');
  });
});
