/**
 * A ws WebSocket seen as a Link: binary frames in, binary frames out, one close callback with a
 * reason. Used by both ends (coordinator/ws-listener, worker/ws-dialer).
 */
import type { WebSocket } from 'ws';
import { CLOSE_CODES, closeKindOf, type CloseKind, type Link } from './transport.js';

/** Close reasons travel in the close frame, which allows 123 bytes. */
export function clipReason(reason: string): string {
  const b = Buffer.from(reason);
  return b.length <= 123 ? reason : b.subarray(0, 120).toString() + '...';
}

/**
 * ws (8.23, pinned) reads its frame limit from the receiver's `_maxPayload` on every frame
 * header, so a limit set there applies from the next frame. test/transport/ws.test.ts checks
 * the field is still where this expects it.
 */
interface ReceiverLimit {
  _receiver?: { _maxPayload?: number };
}

/** Set the largest frame `ws` accepts from here on; false if ws no longer has the field. */
export function setFrameLimit(ws: WebSocket, bytes: number): boolean {
  const r = (ws as unknown as ReceiverLimit)._receiver;
  if (!r || typeof r._maxPayload !== 'number') return false;
  r._maxPayload = bytes;
  return true;
}

/**
 * A ping's application data (RFC 6455 allows 125 bytes) saying the sender is about to hold its
 * thread for up to `ms`: the coordinator computing a shard of its own (--coordinator-worker)
 * sends no pings meanwhile, and its peers' liveness checks wait instead of taking it for gone.
 */
const HOLD_PREFIX = 'hold ';

export function holdPing(ms: number): Buffer {
  return Buffer.from(`${HOLD_PREFIX}${Math.max(0, Math.round(ms))}`);
}

/** How long a ping's sender said it may stay silent (0: an ordinary ping). */
export function heldFor(data: Buffer): number {
  const text = data.length <= 32 ? data.toString('latin1') : '';
  if (!text.startsWith(HOLD_PREFIX)) return 0;
  const ms = Number(text.slice(HOLD_PREFIX.length));
  return Number.isSafeInteger(ms) && ms > 0 ? ms : 0;
}

/**
 * `frameCap`: a smaller limit until liftFrameCap() restores `maxPayload` (the server's own).
 * `setBusy`: the side's liveness check (coordinator/ws-listener.ts), told when the peer computes.
 */
export function wrapSocket(
  ws: WebSocket,
  remote: string,
  caps?: { frameCap: number; maxPayload: number },
  setBusy?: (busy: boolean) => void,
): Link {
  if (caps) setFrameLimit(ws, caps.frameCap);
  let closed = false;
  const closeHandlers: Array<(r: string, k: CloseKind) => void> = [];
  const finish = (reason: string, kind: CloseKind) => {
    if (closed) return;
    closed = true;
    for (const h of closeHandlers) h(reason, kind);
  };
  ws.on('close', (code, buf) =>
    finish(buf.length ? buf.toString() : `connection closed (code ${code})`, closeKindOf(code)),
  );
  ws.on('error', (e) => {
    // A protocol error (oversized or malformed frame) or a dead socket: no close handshake
    // is owed to such a peer, and ws would otherwise wait 30 s for one.
    finish(`socket error: ${e.message}`, 'lost');
    ws.terminate();
  });
  // Frames that arrive before onFrame is set wait here (the Link contract, as the local transport).
  let frameHandler: ((f: Uint8Array) => void) | null = null;
  const backlog: Uint8Array[] = [];
  const link: Link = {
    remote,
    send(frame) {
      if (!closed && ws.readyState === ws.OPEN) ws.send(frame, { binary: true });
    },
    close(reason, kind = 'normal') {
      if (closed) return;
      ws.close(kind === 'lost' ? CLOSE_CODES.normal : CLOSE_CODES[kind], clipReason(reason));
      // Gone for us now, not when the handshake completes: nothing more is sent to or taken
      // from this peer. One that never answers the handshake is cut after 2 s.
      finish(reason, kind);
      setTimeout(() => ws.terminate(), 2000).unref();
    },
    onFrame(handler) {
      frameHandler = handler;
      for (const f of backlog.splice(0)) handler(f);
    },
    onClose(handler) {
      closeHandlers.push(handler);
    },
    ...(caps ? { liftFrameCap: () => void setFrameLimit(ws, caps.maxPayload) } : {}),
    ...(setBusy ? { setBusy } : {}),
  };
  ws.on('message', (data, isBinary) => {
    if (closed) return;
    if (!isBinary) return link.close('invalid: text frames are not accepted', 'invalid');
    const frame = data as Buffer;
    if (frameHandler) frameHandler(frame);
    else backlog.push(frame);
  });
  return link;
}
