/**
 * A ws WebSocket seen as a Link: binary frames in, binary frames out, one close callback with a
 * reason. Used by both ends (coordinator/ws-listener, worker/ws-dialer).
 */
import type { WebSocket } from 'ws';
import type { Link } from './transport.js';

/** ws close codes: 1000 normal, 1008 policy violation (bad message), 1011 server error. */
function closeCode(reason: string): number {
  return reason.startsWith('invalid') || reason.startsWith('malformed') ? 1008 : 1000;
}

/** Close reasons travel in the close frame, which allows 123 bytes. */
export function clipReason(reason: string): string {
  const b = Buffer.from(reason);
  return b.length <= 123 ? reason : b.subarray(0, 120).toString() + '...';
}

export function wrapSocket(ws: WebSocket, remote: string): Link {
  let closed = false;
  const closeHandlers: Array<(r: string) => void> = [];
  let localReason: string | null = null;
  const finish = (reason: string) => {
    if (closed) return;
    closed = true;
    for (const h of closeHandlers) h(reason);
  };
  ws.on('close', (code, buf) => finish(localReason ?? (buf.length ? buf.toString() : `connection closed (code ${code})`)));
  ws.on('error', (e) => {
    // A protocol error (oversized or malformed frame) or a dead socket: no close handshake
    // is owed to such a peer, and ws would otherwise wait 30 s for one.
    finish(`socket error: ${e.message}`);
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
    close(reason) {
      if (closed || localReason !== null) return;
      localReason = reason;
      ws.close(closeCode(reason), clipReason(reason));
      // A peer that never answers the close handshake (stopped, or gone) is cut after 2 s.
      setTimeout(() => ws.terminate(), 2000).unref();
    },
    onFrame(handler) {
      frameHandler = handler;
      for (const f of backlog.splice(0)) handler(f);
    },
    onClose(handler) {
      closeHandlers.push(handler);
    },
  };
  ws.on('message', (data, isBinary) => {
    if (closed || localReason !== null) return;
    if (!isBinary) return link.close('invalid: text frames are not accepted');
    const frame = data as Buffer;
    if (frameHandler) frameHandler(frame);
    else backlog.push(frame);
  });
  return link;
}
