/**
 * The worker's side of the WebSocket transport: one connection attempt, turned into a Link,
 * or a CONNECT_FAILED error that says what to check.
 */
import WebSocket from 'ws';
import { wrapSocket } from '../shared/transport/ws-link.js';
import { fail } from '../shared/errors.js';
import type { Link } from '../shared/transport/transport.js';

/**
 * The coordinator pings every 10 s (coordinator/ws-listener.ts). Without a ping for this long
 * the coordinator is taken as gone (a partition or a frozen host, where no FIN ever comes) and
 * the socket is cut, so the worker can reconnect.
 */
export const SILENCE_MS = 35_000;

export function dialWs(url: string, maxPayload: number, silenceMs = SILENCE_MS): Promise<Link> {
  if (!/^wss?:\/\//.test(url)) fail('CONNECT_FAILED', `--connect ${url}: use a ws:// or wss:// address, e.g. ws://host:7070`);
  return new Promise<Link>((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload, handshakeTimeout: 10_000 });
    ws.binaryType = 'nodebuffer';
    const onError = (e: NodeJS.ErrnoException) => {
      const why =
        e.code === 'ECONNREFUSED'
          ? 'connection refused (is the coordinator running and listening on that address?)'
          : e.code === 'ENOTFOUND'
            ? 'host not found'
            : e.message;
      reject(new Error(why));
    };
    ws.once('error', onError);
    ws.once('open', () => {
      ws.off('error', onError);
      let watchdog = setTimeout(() => ws.terminate(), silenceMs);
      ws.on('ping', () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => ws.terminate(), silenceMs);
      });
      ws.once('close', () => clearTimeout(watchdog));
      resolve(wrapSocket(ws, url));
    });
  }).catch((e: Error) => fail('CONNECT_FAILED', `cannot reach the coordinator at ${url}: ${e.message}`));
}
