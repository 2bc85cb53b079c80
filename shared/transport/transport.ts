/**
 * What the coordinator and worker loops talk through. They see frames (bytes that the codec
 * made), never sockets: the WebSocket transport and the in-process local transport both
 * implement these and run the same conformance suite (test/transport.conformance.ts).
 */
/**
 * Why a link closed, as a code both ends agree on: the receiver branches on the kind, never on
 * the reason's text (that is for people and logs). On a WebSocket the kind travels as the close
 * code (application codes 4000–4999, besides ws's own 1000 and 1008).
 */
export const CLOSE_CODES = {
  /** bye, shutdown, a session ending on purpose */
  normal: 1000,
  /** the coordinator stops (a signal) and its run can be resumed: rejoin it then (WebSocket "going away") */
  goingAway: 1001,
  /** a malformed, out-of-order or unexpected message (WebSocket "policy violation") */
  invalid: 1008,
  authFailed: 4001,
  protocolMismatch: 4002,
  wrongJob: 4003,
  /** this worker's dataset is not the job's */
  datasetDiffers: 4004,
  /** the worker reported that it cannot continue */
  workerFault: 4005,
  /** the job has maxWorkers members: try again later */
  jobFull: 4006,
  /** too many connections waiting to authenticate: try again later */
  busy: 4007,
  /** a deadline of the handshake passed: try again */
  timeout: 4008,
  /** leave and come back at once (e.g. without shared memory) */
  reconnect: 4009,
} as const;

/** `lost`: the connection dropped with no close code of ours (crash, network, 1006). */
export type CloseKind = keyof typeof CLOSE_CODES | 'lost';

const KIND_OF_CODE = new Map<number, CloseKind>(Object.entries(CLOSE_CODES).map(([k, c]) => [c, k as CloseKind]));

/** The kind a received close code stands for; codes of no kind of ours are `lost`. */
export function closeKindOf(code: number): CloseKind {
  return KIND_OF_CODE.get(code) ?? 'lost';
}

export interface Link {
  /** Who is at the other end, for logs ("127.0.0.1:53422", "local#3"). */
  readonly remote: string;
  /** Queue one frame. A no-op once the link is closed. */
  send(frame: Uint8Array): void;
  /**
   * Close with a kind the other side branches on and a reason it logs (default kind: normal).
   * Idempotent. The local side's onClose runs at once: the link is gone for it from here on.
   */
  close(reason: string, kind?: CloseKind): void;
  /** Frames in the order sent. Set once, before frames can arrive (same tick as creation). */
  onFrame(handler: (frame: Uint8Array) => void): void;
  /** Called exactly once, with the reason and kind, whichever side closed or the connection dropped. */
  onClose(handler: (reason: string, kind: CloseKind) => void): void;
  /**
   * Lift a handshake's cap on incoming frames to the transport's full limit: called once the
   * peer has authenticated, so that strangers can never make the receiver buffer a model-sized
   * frame. Transports without a cap leave this out.
   */
  liftFrameCap?(): void;
  /**
   * Whether the peer is computing on requests of ours. A worker computes on its main thread and
   * answers no liveness check until it is done, so while it is busy a transport that checks
   * liveness waits for the answer (up to a long bound) instead of taking silence for a dead
   * peer. Transports without such checks leave this out.
   */
  setBusy?(busy: boolean): void;
}

export interface Listener {
  /** Where workers can reach it ("ws://127.0.0.1:7070", "local"). */
  readonly address: string;
  onLink(handler: (link: Link) => void): void;
  close(): Promise<void>;
  /**
   * This process is about to hold its thread (the coordinator computing a shard of its own):
   * peers that check its liveness by its pings are told to wait, up to the bound it grants a
   * busy peer of its own, instead of taking the silence for a coordinator gone. Transports
   * without such checks leave this out.
   */
  holdingThread?(): void;
}

export type Dial = () => Promise<Link>;
