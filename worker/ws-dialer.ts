/**
 * The worker's side of the WebSocket transport: one connection attempt, turned into a Link,
 * or a CONNECT_FAILED error that says what to check.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { heldFor, wrapSocket } from '../shared/transport/ws-link.js';
import { DptrainError, fail } from '../shared/util/errors.js';
import type { Link } from '../shared/transport/transport.js';

/**
 * The coordinator pings every 10 s (coordinator/ws-listener.ts) and cuts a peer after 3 missed
 * ones; a worker busy with a long shard answers late. Without a ping for this long
 * the coordinator is taken as gone (a partition or a frozen host, where no FIN ever comes) and
 * the socket is cut, so the worker can reconnect. A coordinator that computes a shard itself
 * says so in a ping first (Listener.holdingThread); its silence is then allowed that much longer,
 * until the next frame from it.
 */
export const SILENCE_MS = 90_000;

/** Certificates to trust for wss:// beyond the system's (a self-signed coordinator's). */
export interface DialTls {
  ca?: Buffer;
}

export function readCa(file: string | undefined): DialTls {
  if (!file) return {};
  let ca: Buffer;
  try {
    ca = readFileSync(file);
  } catch (e) {
    return fail(
      'CONFIG_UNREADABLE',
      `--ca ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
    );
  }
  // Node takes a --ca that holds no certificate without a word, and every dial then fails as
  // if none were given.
  try {
    new X509Certificate(ca);
  } catch {
    fail(
      'CONFIG_INVALID',
      `--ca ${file}: not a PEM certificate (-----BEGIN CERTIFICATE-----); give the coordinator's certificate (its --tls-cert) or the CA that signed it`,
    );
  }
  return { ca };
}

export interface DialOptions {
  silenceMs?: number;
  tls?: DialTls;
}

/**
 * A coordinator address must be a WebSocket URL with a host and a port in range: refused at
 * once, naming the flag it came from, before any retrying (or anything else) starts.
 */
export function checkWsUrl(url: string, flag = '--connect'): void {
  if (!/^wss?:\/\//.test(url))
    fail('CONFIG_INVALID', `${flag} ${url}: use a ws:// or wss:// address, e.g. ws://host:7070`);
  // URL.canParse refuses a port above 65535 and an empty host ("ws://:7070").
  if (!URL.canParse(url) || new URL(url).hostname === '' || new URL(url).port === '0')
    fail('CONFIG_INVALID', `${flag} ${url}: not a valid address; expected ws://HOST:PORT with a port from 1 to 65535`);
}

/** A dial that failed; `permanent` when trying again cannot help (the certificate will not change). */
export class DialError extends DptrainError {
  constructor(
    message: string,
    readonly permanent: boolean,
  ) {
    super('CONNECT_FAILED', message);
  }
}

/** OpenSSL's verdicts (err.code) on a certificate that does not chain to a trusted one. */
const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
]);

/**
 * Whether a dial that failed with `e` fails the same way on every try, by err.code alone: a
 * certificate that does not name the address dialled, or that nothing trusted signed (the
 * coordinator's certificate does not change while a worker retries). Refused, unreachable, timed
 * out: the coordinator may come up yet.
 */
export const permanentDialFailure = (e: NodeJS.ErrnoException): boolean =>
  e.code === 'ERR_TLS_CERT_ALTNAME_INVALID' || UNTRUSTED.has(e.code ?? '');

/**
 * Why a dial failed, in one line. OpenSSL's texts carry newlines and source paths: those are cut
 * (the user gets the reason, not the library's internals). A TLS record of the wrong version
 * means no TLS answered (a ws:// coordinator dialled as wss://), where a certificate is no help.
 * `hasCa`: a --ca was given, so the hint is not to give one but to give the right one.
 */
export function dialFailure(url: string, e: NodeJS.ErrnoException, hasCa = false): string {
  // "write EPROTO 80…:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/…c:350:" → its reason.
  const ssl = /:error:[0-9A-Fa-f]+:[^:]*:[^:]*:([^:]+)/.exec(e.message);
  const msg = (ssl ? ssl[1] : e.message).replace(/\s+/g, ' ').trim();
  if (e.code === 'ECONNREFUSED')
    return 'connection refused (is the coordinator running and listening on that address?)';
  if (e.code === 'ENOTFOUND') return 'host not found';
  if (e.code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong[ _]version[ _]number/i.test(msg))
    return `it does not seem to speak TLS (try ${url.replace(/^wss:/, 'ws:')})`;
  if (e.code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const host = new URL(url).hostname;
    return `TLS: ${msg}: dial the coordinator at an address its certificate names, or give it a certificate that names ${host}`;
  }
  if (hasCa && UNTRUSTED.has(e.code ?? ''))
    return `TLS: ${msg}: the certificate given with --ca does not verify the coordinator's; give --ca the coordinator's own certificate (its --tls-cert) or the CA that signed it`;
  if (
    /certificate|self.signed|SSL|TLS/i.test(msg) ||
    /^(DEPTH_ZERO|SELF_SIGNED|UNABLE_TO_VERIFY|CERT_)/.test(e.code ?? '')
  )
    return `TLS: ${msg}${hasCa ? '' : " (give the coordinator's certificate with --ca)"}`;
  // A TLS coordinator dialled as ws:// drops the plain HTTP upgrade: the socket closes unanswered.
  if (url.startsWith('ws:') && (e.code === 'ECONNRESET' || /socket hang up/i.test(msg)))
    return `${msg}: the connection closed before the WebSocket handshake (if the coordinator serves TLS, use ${url.replace(/^ws:/, 'wss:')})`;
  return msg;
}

export function dialWs(url: string, maxPayload: number, opts: DialOptions = {}): Promise<Link> {
  checkWsUrl(url);
  const silenceMs = opts.silenceMs ?? SILENCE_MS;
  return new Promise<Link>((resolve, reject) => {
    const ws = new WebSocket(url, {
      perMessageDeflate: false,
      maxPayload,
      handshakeTimeout: 10_000,
      ...(opts.tls?.ca ? { ca: opts.tls.ca } : {}),
    });
    ws.binaryType = 'nodebuffer';
    const onError = (e: NodeJS.ErrnoException) => {
      const why = dialFailure(url, e, opts.tls?.ca !== undefined);
      reject(new DialError(`cannot reach the coordinator at ${url}: ${why}`, permanentDialFailure(e)));
    };
    ws.once('error', onError);
    ws.once('open', () => {
      ws.off('error', onError);
      // Timers run before the event loop reads sockets: after a long shard held this thread,
      // the pings that came meanwhile are still unread when the watchdog fires. It decides on
      // setImmediate, after they are read, that the coordinator has gone silent.
      let heard = Date.now();
      let limit = silenceMs;
      const check = () =>
        setImmediate(() => {
          if (ws.readyState !== ws.OPEN) return; // closed meanwhile: nothing to watch
          const quiet = Date.now() - heard;
          if (quiet >= limit) ws.terminate();
          else watchdog = setTimeout(check, limit - quiet);
        });
      let watchdog = setTimeout(check, silenceMs);
      ws.on('ping', (data: Buffer) => {
        heard = Date.now();
        limit = silenceMs + heldFor(data);
      });
      ws.on('message', () => {
        heard = Date.now();
        limit = silenceMs;
      });
      ws.once('close', () => clearTimeout(watchdog));
      resolve(wrapSocket(ws, url));
    });
  });
}
