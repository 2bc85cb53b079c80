/**
 * Who gets in: the limits on connections that have not proven the token yet, the checks a hello
 * must pass before its worker is welcomed, and the deadlines that keep a place from being held
 * for good. Decisions carried as refusal codes; Membership (membership.ts) carries them out.
 */
import { proofsEqual, workerProof } from '../shared/wire/auth.js';
import { type Hello, PROTOCOL_VERSION } from '../shared/wire/protocol.js';
import type { CloseKind, Link } from '../shared/transport/transport.js';

export const AUTH_TIMEOUT_MS = 10_000;
/** Loading a large dataset, checking kernels and calibrating can take minutes; waiting forever cannot. */
export const READY_TIMEOUT_MS = 300_000;
export const MAX_PENDING_PER_ADDRESS = 16;
export const MAX_PENDING = 64;

/** Why a worker is sent away: a kind it branches on, a reason it logs. */
export interface Refusal {
  kind: CloseKind;
  reason: string;
}

export interface PendingLimits {
  /** Unauthenticated connections at once from one address (default MAX_PENDING_PER_ADDRESS)… */
  maxPendingPerAddress?: number;
  /** …and from all addresses together (default MAX_PENDING). */
  maxPending?: number;
}

/** "10.0.0.7:53422" → "10.0.0.7" (the port is the client's own choice). */
function addressOf(remote: string): string {
  const at = remote.lastIndexOf(':');
  return at > 0 ? remote.slice(0, at) : remote;
}

/**
 * Whether one more connection from `remote` would pass the limits, given the remotes of the
 * unauthenticated connections open now: null if it fits, else the counts that refuse it.
 */
export function overPendingLimits(
  remote: string,
  pendingRemotes: readonly string[],
  limits: PendingLimits,
): { pending: number; fromHere: number } | null {
  // Per address first: one client holding its share of connections open keeps nobody else out.
  const address = addressOf(remote);
  const fromHere = pendingRemotes.filter((r) => addressOf(r) === address).length;
  const pending = pendingRemotes.length;
  const full =
    fromHere >= (limits.maxPendingPerAddress ?? MAX_PENDING_PER_ADDRESS) ||
    pending >= (limits.maxPending ?? MAX_PENDING);
  return full ? { pending, fromHere } : null;
}

export interface HelloContext {
  jobId: string;
  /** The job token; null = no authentication. */
  token: string | null;
  /** The challenge nonce sent on this connection. */
  nonce: string;
  maxWorkers: number;
  /** Authenticated workers in the job now (loading or ready). */
  members: number;
}

/** The first reason to refuse this hello, checked in the order a worker can act on them; null: welcome it. */
export function refuseHello(msg: Hello, c: HelloContext): Refusal | null {
  if (msg.protocol !== PROTOCOL_VERSION) {
    return {
      kind: 'protocolMismatch',
      reason: `protocol mismatch: worker speaks v${msg.protocol}, coordinator v${PROTOCOL_VERSION}; install the same dptrain version on both`,
    };
  }
  if (msg.jobId !== '' && msg.jobId !== c.jobId) {
    return {
      kind: 'wrongJob',
      reason: `wrong job: this coordinator runs ${c.jobId}, the worker was started for ${msg.jobId}`,
    };
  }
  if (c.token !== null && msg.proof === '') {
    return {
      kind: 'authFailed',
      reason:
        'authentication failed: this coordinator requires the job token; the worker has none (--token-file FILE or DPTRAIN_TOKEN)',
    };
  }
  if (c.token !== null && !proofsEqual(msg.proof, workerProof(c.token, c.jobId, c.nonce, msg.cnonce))) {
    return { kind: 'authFailed', reason: "authentication failed: the job token does not match the coordinator's" };
  }
  // Only authenticated workers count toward maxWorkers: strangers cannot fill the job.
  if (c.members >= c.maxWorkers) {
    return { kind: 'jobFull', reason: `job is full (maxWorkers ${c.maxWorkers}); try again later` };
  }
  return null;
}

/** Runs `expire` after `ms` unless the link closes first; the timer keeps no process alive. */
export function deadline(link: Link, ms: number, expire: () => void): void {
  const timer = setTimeout(expire, ms);
  timer.unref();
  link.onClose(() => clearTimeout(timer));
}
