/**
 * What the coordinator and worker loops talk through. They see frames (bytes that the codec
 * made), never sockets: the WebSocket transport and the in-process local transport both
 * implement these and run the same conformance suite (test/transport.conformance.ts).
 */
export interface Link {
  /** Who is at the other end, for logs ("127.0.0.1:53422", "local#3"). */
  readonly remote: string;
  /** Queue one frame. A no-op once the link is closed. */
  send(frame: Uint8Array): void;
  /** Close with a reason the other side receives (and logs). Idempotent. */
  close(reason: string): void;
  /** Frames in the order sent. Set once, before frames can arrive (same tick as creation). */
  onFrame(handler: (frame: Uint8Array) => void): void;
  /** Called exactly once, with the reason, whichever side closed or the connection dropped. */
  onClose(handler: (reason: string) => void): void;
}

export interface Listener {
  /** Where workers can reach it ("ws://127.0.0.1:7070", "local"). */
  readonly address: string;
  onLink(handler: (link: Link) => void): void;
  close(): Promise<void>;
}

export type Dial = () => Promise<Link>;
