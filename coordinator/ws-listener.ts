/**
 * The WebSocket side of the coordinator's transport: a ws server whose connections become
 * Links. Binary frames only, no compression (float payloads do not compress and deflate costs
 * CPU on the step's critical path), maxPayload sized from the model by the caller, and a
 * ping/pong heartbeat that drops a peer whose pongs stop.
 */
import { WebSocketServer, type WebSocket } from 'ws';
import { holdPing, wrapSocket } from '../shared/transport/ws-link.js';
import type { AddressInfo, Socket } from 'node:net';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { fail } from '../shared/util/errors.js';
import type { Link, Listener } from '../shared/transport/transport.js';

export interface WsListenerOptions {
  host: string;
  port: number;
  /** Largest frame accepted, in bytes. */
  maxPayload: number;
  /** Ping interval; a peer that leaves MISSED_PINGS pings in a row unanswered is dropped. Default 10 s. */
  heartbeatMs?: number;
  /** How long a peer computing on our requests (Link.setBusy) may leave pings unanswered. Default BUSY_LIMIT_MS. */
  busyLimitMs?: number;
  /** Plain HTTP requests on the same port (e.g. GET /metrics); return false for a 404. */
  http?: (req: IncomingMessage, res: ServerResponse) => boolean;
  /** Serve wss:// with this certificate and key (PEM). */
  tls?: { cert: Buffer; key: Buffer };
  /** Cut a client whose HTTP upgrade request is not complete within this time (default 10 s). */
  headersTimeoutMs?: number;
  /** Largest frame before the link's liftFrameCap() (default HANDSHAKE_MAX_FRAME; 0: no cap). */
  handshakeMaxFrame?: number;
}

/**
 * A handshake's frames (hello, ready) are a few hundred bytes; the strings in them are bounded
 * by validate.ts. Until a worker authenticates, nothing larger is buffered for it.
 */
export const HANDSHAKE_MAX_FRAME = 64 << 10;

/** Unanswered pings in a row before a peer is cut. */
export const MISSED_PINGS = 3;

/**
 * How long a busy peer may stay silent: a shard can take minutes on a CPU backend, and the
 * worker answers pings only between shards. A stalled shard goes to another worker long before
 * (stepTimeoutSec); this bound only ends a link that will never answer. Thirty minutes, as
 * torch.distributed's default process-group timeout.
 */
export const BUSY_LIMIT_MS = 30 * 60_000;

/** A client that has not sent its HTTP upgrade request within this time is cut (slow-loris). */
export const HEADERS_TIMEOUT_MS = 10_000;

/** On close, how long open connections get to finish their close handshake before they are cut. */
export const CLOSE_GRACE_MS = 1000;

export async function listenWs(opts: WsListenerOptions): Promise<Listener> {
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    if (opts.http?.(req, res)) return;
    res
      .writeHead(404, { 'content-type': 'text/plain' })
      .end('dptrain coordinator: WebSocket workers connect here; metrics at /metrics\n');
  };
  // Node enforces headersTimeout on a sweep every connectionsCheckingInterval (default 30 s).
  const timeout = opts.headersTimeoutMs ?? HEADERS_TIMEOUT_MS;
  const http = { connectionsCheckingInterval: Math.min(1000, timeout) };
  // Over TLS the header deadline starts only once the handshake is done; Node's own handshake
  // deadline is 120 s, so a client that never finishes its handshake gets the same limit.
  const server = opts.tls
    ? createHttpsServer({ ...http, cert: opts.tls.cert, key: opts.tls.key, handshakeTimeout: timeout }, onRequest)
    : createServer(http, onRequest);
  server.headersTimeout = timeout;
  server.requestTimeout = timeout;
  const wss = new WebSocketServer({
    server,
    perMessageDeflate: false,
    maxPayload: opts.maxPayload,
    clientTracking: true,
  });
  // ws re-emits the http server's errors; a listen error is reported below, from the server.
  wss.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    server.listen(opts.port, opts.host, resolve);
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'EADDRINUSE'
          ? new Error(`--listen ${opts.host}:${opts.port}: the port is in use; pick another port (or 0: any free one)`)
          : new Error(`--listen ${opts.host}:${opts.port}: ${e.message}`),
      ),
    );
  }).catch((e: Error) => fail('RUN_FAILED', e.message));
  const addr = server.address() as AddressInfo;
  // Every socket, upgraded or not, so that close() can cut them all (closeAllConnections()
  // knows only those still speaking HTTP).
  const sockets = new Set<Socket>();
  server.on('connection', (sock: Socket) => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
  });
  // A worker answers pings only between shards (TF.js computes on its main thread): an idle
  // peer is cut after MISSED_PINGS pings in a row go unanswered (≥ 30 s at the default
  // interval), one computing on our requests only after busyLimitMs of silence. Any frame from
  // a peer is an answer too.
  const missed = new WeakMap<WebSocket, number>();
  const busySince = new WeakMap<WebSocket, number>();
  const busyLimitMs = opts.busyLimitMs ?? BUSY_LIMIT_MS;
  const heartbeat = setInterval(() => {
    const now = Date.now();
    for (const ws of wss.clients) {
      const n = (missed.get(ws) ?? 0) + 1;
      const since = busySince.get(ws);
      const excused = since !== undefined && now - since < busyLimitMs;
      if (n > MISSED_PINGS && !excused) {
        ws.terminate();
        continue;
      }
      missed.set(ws, n);
      ws.ping();
    }
  }, opts.heartbeatMs ?? 10_000);
  heartbeat.unref();
  let handler: ((l: Link) => void) | null = null;
  wss.on('connection', (ws, req) => {
    ws.binaryType = 'nodebuffer';
    missed.set(ws, 0);
    ws.on('pong', () => missed.set(ws, 0));
    ws.on('message', () => {
      missed.set(ws, 0);
      if (busySince.has(ws)) busySince.set(ws, Date.now()); // an answer: the limit is on silence, not on work
    });
    const setBusy = (busy: boolean) => {
      if (!busy) busySince.delete(ws);
      else if (!busySince.has(ws)) busySince.set(ws, Date.now());
    };
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    if (!handler) {
      ws.close(1013, 'coordinator not ready');
      return;
    }
    const cap = opts.handshakeMaxFrame ?? HANDSHAKE_MAX_FRAME;
    handler(
      wrapSocket(
        ws,
        remote,
        cap > 0 && cap < opts.maxPayload ? { frameCap: cap, maxPayload: opts.maxPayload } : undefined,
        setBusy,
      ),
    );
  });
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    address: `${opts.tls ? 'wss' : 'ws'}://${host}:${addr.port}`,
    onLink(h) {
      handler = h;
    },
    holdingThread() {
      const ping = holdPing(busyLimitMs);
      for (const ws of wss.clients) ws.ping(ping);
    },
    close: () =>
      new Promise<void>((resolve) => {
        // Stop accepting first: once closing, Node no longer enforces the header deadline, so a
        // connection accepted from here on could trickle bytes and hold close() open for good.
        let done = false;
        const finish = () => {
          if (done) return;
          done = true;
          clearTimeout(deadline);
          resolve();
        };
        server.close(finish);
        clearInterval(heartbeat);
        for (const ws of wss.clients) ws.close(1001, 'coordinator shut down');
        wss.close();
        server.closeAllConnections();
        // Workers get a moment to see the close frame; then everything still open is cut.
        const deadline = setTimeout(() => {
          for (const sock of sockets) sock.destroy();
          setImmediate(finish);
        }, CLOSE_GRACE_MS);
      }),
  };
}
