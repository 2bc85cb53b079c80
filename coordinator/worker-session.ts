/**
 * One member of the job as the coordinator sees it: its state, its link and what it owes. The
 * Membership (membership.ts) owns these; the dispatcher and the parameter broadcast read them.
 */
import type { Link } from '../shared/transport/transport.js';
import type { Strength } from '../shared/wire/protocol.js';
import type { PayloadChannel } from '../shared/transport/payload-channel.js';

/** hello: connected, not yet authenticated; loading: welcomed, loading the job; ready: takes shards. */
export type WorkerState = 'hello' | 'loading' | 'ready' | 'gone';

export interface WorkerSession {
  id: string;
  name: string;
  host: string;
  remote: string;
  pid: number;
  backend: string;
  state: WorkerState;
  link: Link;
  /** Last parameter version sent to this worker. */
  paramsVersion: number;
  /** Declared peak FLOP/s (0 = none) and the FLOP/s its calibration reached. */
  peakFlops: number;
  attainableFlops: number;
  /** Processes computing behind this link (a host agent's workers; 1 for a worker). */
  workers: number;
  joinedAt: number;
  /** Missed a deadline: gets no new shards until a result of its arrives (late or not). */
  lagging: boolean;
  laggingSince: number;
  /** Owes an answer past its deadline (whether or not another worker could take the shard); cleared by any answer. */
  overdue: boolean;
  /** The challenge nonce sent on this connection. */
  nonce: string;
  /** The payload channel granted to it (shared memory, or memory when it runs in this process); null: payloads in frames. */
  channel: PayloadChannel | null;
  /**
   * The parameter slots it was sent and may still be reading: each until `answers` reaches its
   * `until` (it reads frames in order, so answering a later request means it read the slot).
   */
  shmHeld: Array<{ slot: number; until: number }>;
  /** `requests` when it was last sent parameters ahead of a request (ParamsBroadcast.offer); -1: never. */
  offeredAt: number;
  /** Work and evaluate messages sent, and results answering them: a worker answers each, in order. */
  requests: number;
  answers: number;
  /** The newest shared-memory result read from it: the credit each work message carries. */
  shmRead: number;
  /** Requests sent and not yet answered, by requestTag: only an answer to one of these is news from this worker. */
  owed: Set<string>;
}

/** Names one request to one worker: a work shard of a (micro-)step, or an evaluation shard. */
export function requestTag(key: string, shard: number): string {
  return `${key}#${shard}`;
}

/**
 * Tell the link whether the worker is computing for us (loading the job, or owing answers
 * within its deadline): it answers no ping meanwhile, and the transport waits for it
 * (Link.setBusy). One past its deadline (overdue) is not excused: a stalled or cut-off worker
 * is still cut by the heartbeat, while a long shard is waited for (set --step-timeout above it).
 */
export function busyOrIdle(w: WorkerSession): void {
  w.link.setBusy?.(w.state === 'loading' || (w.answers < w.requests && !w.overdue));
}

/** What computes behind its link, as its ready (or a host agent's later members) says. */
export function takeStrength(w: WorkerSession, s: Strength): void {
  w.backend = s.backend;
  w.peakFlops = s.peakFlops;
  w.attainableFlops = s.attainableFlops;
  w.workers = s.workers;
}
