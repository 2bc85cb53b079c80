/**
 * What a worker's session and a host agent's session with the coordinator share: the handshake
 * (answer the challenge, check the welcome's proof of the token), frames handled one at a time
 * in arrival order, a message the state does not expect ending the session with a coded close,
 * giving up on our side, and the outcome: finished, refused (by the close's kind, never its
 * text), or worth another session. Each session adds its own handlers for the welcome's job,
 * params, work and evaluate.
 */
import { hostname } from 'node:os';
import { coordinatorProof, newNonce, proofsEqual, workerProof } from '../shared/wire/auth.js';
import { decodeFrame, encodeFrame } from '../shared/wire/codec.js';
import { describeError, type ErrorCode } from '../shared/util/errors.js';
import type { Logger } from '../shared/util/log.js';
import type { CloseKind, Link } from '../shared/transport/transport.js';
import {
  PROTOCOL_VERSION,
  type Challenge,
  type Evaluate,
  type Params,
  type ToCoordinator,
  type ToWorker,
  type Welcome,
  type Work,
} from '../shared/wire/protocol.js';
import { readFromCoordinator } from '../shared/wire/validate.js';
import type { WireDtype } from '../shared/wire/wire-dtype.js';
import type { SlicedLink } from './sliced-link.js';

/** A link through slice shards: the hello says so, and it may refuse the job itself (its shards are not the coordinator's). */
const isSliced = (link: Link): link is SlicedLink => 'sliceShards' in link;

export interface WorkerOutcome {
  /** A shared-memory file could not be read: the next session should not offer shared memory. */
  shmFailed?: boolean;
  /** A host agent's session told the coordinator it was ready (its workers had gathered). */
  wasReady?: boolean;
  /** True when the coordinator ended the job normally (bye). */
  finished: boolean;
  /** Set when reconnecting cannot help: this worker gave up, or the coordinator refused it. */
  fatal: ErrorCode | null;
  reason: string;
}

/**
 * Closes after which coming back cannot help, and the error each ends the worker with. Every
 * other kind (normal, lost, jobFull, busy, timeout, reconnect) is worth another session.
 */
export const REFUSALS: Partial<Record<CloseKind, ErrorCode>> = {
  authFailed: 'AUTH_FAILED',
  protocolMismatch: 'PROTOCOL_MISMATCH',
  wrongJob: 'WRONG_JOB',
  invalid: 'RUN_FAILED',
  datasetDiffers: 'RUN_FAILED',
  workerFault: 'RUN_FAILED',
};

/** How a worker's own failure closes its link (the coordinator logs the kind). */
export const CLOSE_OF: Partial<Record<ErrorCode, CloseKind>> = {
  AUTH_FAILED: 'authFailed',
  PROTOCOL_MISMATCH: 'protocolMismatch',
  WRONG_JOB: 'wrongJob',
};

/** Who joins the coordinator: its name, log, token and the job it was started for. */
export interface Joiner {
  name: string;
  log: Logger;
  /** The job token (null: none; a coordinator that requires one will refuse us). */
  token?: string | null;
  /** Only join this job id ('' or undefined: any). */
  jobId?: string;
}

/**
 * challenged: waiting for the coordinator's challenge; helloSent: waiting for the welcome;
 * `Joining`: the job is known, the session gets ready for it (its own name per session);
 * serving: answering params, work and evaluate; closed: nothing more is handled.
 */
export type SessionState<Joining extends string> = 'challenged' | 'helloSent' | Joining | 'serving' | 'closed';

/** The state each message is accepted in; bye is, in any (nothing is handled once closed). */
const AWAITS: Record<Exclude<ToWorker['t'], 'bye'>, 'challenged' | 'helloSent' | 'serving'> = {
  challenge: 'challenged',
  welcome: 'helloSent',
  params: 'serving',
  work: 'serving',
  evaluate: 'serving',
};

/** A frame as it came: its payload and bytes, when it arrived and when its handling began. */
export interface Arrival {
  payload: Float32Array | null;
  bytes: Uint8Array;
  arrived: number;
  t0: number;
}

export abstract class CoordinatorSession<Joining extends string> {
  protected state: SessionState<Joining> = 'challenged';
  /** The coordinator said bye. */
  protected finished = false;
  private failure: { code: ErrorCode; why: string } | null = null;
  private readonly cnonce = newNonce();
  /** The coordinator's nonce, from its challenge. */
  protected nonce = '';
  /** Frames are handled one at a time, in arrival order (see run). */
  private queue: Promise<void> = Promise.resolve();
  /** Frames arrived and not yet handled, in order (read only if the link closes meanwhile). */
  private readonly waiting: Uint8Array[] = [];

  /** `role` names this side in what the user reads ('worker', 'host agent'). */
  constructor(
    protected readonly link: Link,
    private readonly role: string,
    private readonly joiner: Joiner,
  ) {}

  /** The job's parameter count and wire dtype, once known: the sizes the coordinator's frames must have. */
  protected abstract framing(): { totalParams: number; wireDtype: WireDtype } | null;
  /** Release what the session holds once the link is closed; what the outcome adds. */
  protected abstract onClosed(reason: string): Pick<WorkerOutcome, 'shmFailed' | 'wasReady'>;
  /** The welcome, its proof checked. */
  protected abstract onWelcome(msg: Welcome): Promise<void>;
  protected abstract onParams(msg: Params, a: Arrival): void;
  protected abstract onWork(msg: Work, a: Arrival): Promise<void>;
  protected abstract onEvaluate(msg: Evaluate, a: Arrival): Promise<void>;

  /** The hello's shared-memory proof (none by default: payloads cross the socket). */
  protected shmProof(): string {
    return '';
  }

  run(): Promise<WorkerOutcome> {
    return new Promise<WorkerOutcome>((resolve) => {
      this.link.onClose((reason, kind) => {
        // A bye still queued behind a frame in flight (a host agent awaiting its workers) ended
        // the session as much as one handled: the close right behind it is no loss.
        const bye = this.finished ? null : this.waiting.map(byeReason).find((r) => r !== null);
        if (bye != null) this.noteBye(bye);
        this.state = 'closed'; // frames still queued are not handled: nobody would take their answers
        const notes = this.onClosed(reason);
        const refused = isSliced(this.link) ? this.link.refusal : null;
        resolve({
          finished: this.finished,
          fatal: this.failure?.code ?? refused?.code ?? REFUSALS[kind] ?? null,
          reason: this.failure?.why ?? refused?.message ?? reason,
          ...notes,
        });
      });
      // Handling a frame is async (GPU reads are, and so are the host's workers), and a params
      // frame must not replace the weights under a shard still being computed: so one at a time.
      this.link.onFrame((bytes) => {
        const arrived = performance.now();
        this.waiting.push(bytes);
        this.queue = this.queue.then(() => {
          this.waiting.shift();
          return this.handle(bytes, arrived);
        });
      });
    });
  }

  /** Read through a getter: an await may have closed the session meanwhile. */
  protected get closed(): boolean {
    return this.state === 'closed';
  }

  protected send(msg: ToCoordinator): void {
    this.link.send(encodeFrame(msg));
  }

  /** End the session on our side: tell the coordinator why, and close with a kind that says so. */
  protected giveUp(why: string, code: ErrorCode = 'RUN_FAILED'): void {
    this.failure = { code, why };
    this.joiner.log.error({ reason: why }, `${this.role} cannot continue`);
    this.send({ t: 'fault', message: why });
    this.link.close(why, CLOSE_OF[code] ?? 'workerFault');
  }

  private async handle(bytes: Uint8Array, arrived: number): Promise<void> {
    if (this.failure || this.closed) return;
    const t0 = performance.now();
    let frame: ReturnType<typeof readFromCoordinator>;
    try {
      const f = this.framing();
      frame = readFromCoordinator(bytes, { totalParams: f?.totalParams ?? null, wireDtype: f?.wireDtype ?? null });
    } catch (e) {
      return this.giveUp(`invalid message from coordinator: ${describeError(e)}`);
    }
    const { msg, payload } = frame;
    if (msg.t !== 'bye' && AWAITS[msg.t] !== this.state) return this.giveUp(`invalid: ${msg.t} while ${this.state}`);
    const a: Arrival = { payload, bytes, arrived, t0 };
    try {
      switch (msg.t) {
        case 'challenge':
          return this.onChallenge(msg);
        case 'welcome':
          return await this.welcomed(msg);
        case 'params':
          return this.onParams(msg, a);
        case 'work':
          return await this.onWork(msg, a);
        case 'evaluate':
          return await this.onEvaluate(msg, a);
        case 'bye':
          return this.onBye(msg.reason);
      }
    } catch (e) {
      if (!this.closed) this.giveUp(describeError(e));
    }
  }

  private onChallenge(msg: Challenge): void {
    const { token, jobId, name } = this.joiner;
    if (msg.protocol !== PROTOCOL_VERSION)
      return this.giveUp(
        `protocol mismatch: the coordinator speaks v${msg.protocol}, this ${this.role} v${PROTOCOL_VERSION}; install the same dptrain version on both`,
        'PROTOCOL_MISMATCH',
      );
    if (jobId && msg.jobId !== jobId)
      return this.giveUp(
        `wrong job: the coordinator runs ${msg.jobId}, this ${this.role} was started for ${jobId}`,
        'WRONG_JOB',
      );
    this.nonce = msg.nonce;
    this.send({
      t: 'hello',
      protocol: PROTOCOL_VERSION,
      name,
      host: hostname(),
      pid: process.pid,
      jobId: jobId ?? '',
      cnonce: this.cnonce,
      proof: token ? workerProof(token, msg.jobId, this.nonce, this.cnonce) : '',
      shm: this.shmProof(),
      sliceShards: isSliced(this.link) ? this.link.sliceShards : 0,
    });
    this.state = 'helloSent';
  }

  /** A welcome from a coordinator that holds the token (when we have one), else a refusal. */
  private async welcomed(msg: Welcome): Promise<void> {
    const { token } = this.joiner;
    if (token && !proofsEqual(msg.proof, coordinatorProof(token, msg.jobId, this.cnonce, this.nonce)))
      return this.giveUp(
        msg.proof === ''
          ? 'authentication failed: this worker has a job token, the coordinator runs without one (give it the same --token-file)'
          : 'authentication failed: the coordinator could not prove it holds the job token',
        'AUTH_FAILED',
      );
    await this.onWelcome(msg);
  }

  private onBye(reason: string): void {
    this.noteBye(reason);
    this.link.close('bye', 'normal');
  }

  private noteBye(reason: string): void {
    this.finished = true;
    this.joiner.log.info({ reason }, 'coordinator said goodbye');
  }
}

/** The reason of a coordinator's bye among frames not yet handled; null for any other frame. */
function byeReason(bytes: Uint8Array): string | null {
  if (bytes.length > 4096) return null; // payload frames: never a bye
  try {
    const h = decodeFrame(bytes).header as { t?: unknown; reason?: unknown };
    return h.t === 'bye' ? String(h.reason ?? '').slice(0, 1000) : null;
  } catch {
    return null; // malformed: the queue refuses it in turn
  }
}
