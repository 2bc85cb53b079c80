/**
 * An in-process transport: coordinator and workers in one process, frames passed as copies on
 * the next macrotask, as a socket would deliver them. For tests and single-process runs.
 */
import type { CloseKind, Dial, Link, Listener } from './transport.js';

class LocalEnd implements Link {
  peer!: LocalEnd;
  private frameHandler: ((f: Uint8Array) => void) | null = null;
  private closeHandlers: Array<(reason: string, kind: CloseKind) => void> = [];
  private closed = false;
  private backlog: Uint8Array[] = [];

  constructor(readonly remote: string) {}

  send(frame: Uint8Array): void {
    if (this.closed) return;
    const copy = new Uint8Array(frame); // a real copy (Buffer#slice would be a view); the sender may reuse its buffer
    setImmediate(() => this.peer.deliver(copy));
  }

  private deliver(frame: Uint8Array): void {
    if (this.closed) return;
    if (this.frameHandler) this.frameHandler(frame);
    else this.backlog.push(frame);
  }

  close(reason: string, kind: CloseKind = 'normal'): void {
    if (this.closed) return;
    this.finish(reason, kind); // gone for this side at once (the Link contract)
    // Frames already sent arrive at the peer before the close, as on a socket.
    setImmediate(() => this.peer.finish(reason, kind));
  }

  private finish(reason: string, kind: CloseKind): void {
    if (this.closed) return;
    this.closed = true;
    for (const h of this.closeHandlers) h(reason, kind);
  }

  onFrame(handler: (frame: Uint8Array) => void): void {
    this.frameHandler = handler;
    for (const f of this.backlog.splice(0)) handler(f);
  }

  onClose(handler: (reason: string, kind: CloseKind) => void): void {
    this.closeHandlers.push(handler);
  }
}

export interface LocalNetwork {
  listener: Listener;
  dial: Dial;
}

export function createLocalNetwork(): LocalNetwork {
  let linkHandler: ((link: Link) => void) | null = null;
  let open = true;
  let n = 0;
  const ends = new Set<LocalEnd>();
  const listener: Listener = {
    address: 'local',
    onLink: (h) => {
      linkHandler = h;
    },
    close: async () => {
      open = false;
      for (const e of ends) e.close('coordinator shut down');
    },
  };
  const dial: Dial = async () => {
    if (!open || !linkHandler) throw new Error('local coordinator is not listening');
    const id = ++n;
    const server = new LocalEnd(`local#${id}`);
    const client = new LocalEnd('local');
    server.peer = client;
    client.peer = server;
    ends.add(server);
    server.onClose(() => ends.delete(server));
    linkHandler(server);
    return client;
  };
  return { listener, dial };
}
