/**
 * Who is in the job. Owns every worker link from connection to goodbye: runs the handshake
 * (hello → welcome → ready), decodes and validates every frame, checks that each worker loaded
 * the same dataset, and drops a worker that misbehaves — with its reason logged — so the
 * training loop only ever sees ready workers and valid results. Who may join is admission.ts's.
 */
import { EventEmitter } from 'node:events';
import { encodeFrame } from '../shared/wire/codec.js';
import type { JobConfig } from '../shared/job/config.js';
import { describeError, DptrainError } from '../shared/util/errors.js';
import type { Logger } from '../shared/util/log.js';
import {
  PROTOCOL_VERSION,
  type EvalResult,
  type Hello,
  type Members,
  type Ready,
  type ShardResult,
  type ToCoordinator,
  type ToWorker,
} from '../shared/wire/protocol.js';
import type { CloseKind, Link, Listener } from '../shared/transport/transport.js';
import { readFromWorker } from '../shared/wire/validate.js';
import type { ResultDecoder } from './compression.js';
import type { PayloadChannel } from '../shared/transport/payload-channel.js';
import { coordinatorProof, newNonce } from '../shared/wire/auth.js';
import { busyOrIdle, requestTag, takeStrength, type WorkerSession, type WorkerState } from './worker-session.js';
import { AUTH_TIMEOUT_MS, deadline, overPendingLimits, READY_TIMEOUT_MS, refuseHello } from './admission.js';

export interface DataShape {
  fingerprint: string;
  trainSize: number;
  testSize: number;
}

export interface MembershipEvents {
  ready: [WorkerSession];
  gone: [WorkerSession, string];
  result: [WorkerSession, ShardResult, Float32Array];
  evalResult: [WorkerSession, EvalResult];
}

export interface MembershipOptions {
  job: JobConfig;
  jobId: string;
  totalParams: number;
  maxWorkers: number;
  log: Logger;
  /** The job token; null = no authentication (allowed on loopback only, see cli). */
  token: string | null;
  /** Close a connection that has not sent a valid hello within this many ms (default 10 s). */
  authTimeoutMs?: number;
  /** Close a welcomed worker that has not sent ready within this many ms (default 300 s). */
  readyTimeoutMs?: number;
  /** Refuse connections beyond this many unauthenticated at once from one address (admission.ts)… */
  maxPendingPerAddress?: number;
  /** …and from all addresses together. */
  maxPending?: number;
  /**
   * Payload channels, each granted to a worker that proves it holds the channel's secret (local
   * workers: shared-memory files; the worker inside the coordinator: memory).
   */
  channels?: readonly PayloadChannel[];
  /** Where channel results are read into (the coordinator's arena, for its kernels); default the channel's own buffer. */
  landing?: Float32Array | null;
  /**
   * The job's dataset fingerprint, computed by the coordinator from its own copy of the data.
   * Without it, the first worker to be ready sets the fingerprint the others must match.
   */
  fingerprint?: string | null;
  /** Workers send gradients to slice shards; results carry none (coordinator/slices/). */
  slicedResults?: boolean;
  /** Results carry compressed gradients, decoded here (coordinator/compression.ts); null: dense. */
  decoder?: ResultDecoder | null;
}

/** The states in which each message from a worker is accepted; anything else drops it as invalid. */
const ACCEPTS: Record<ToCoordinator['t'], readonly WorkerState[]> = {
  hello: ['hello'],
  ready: ['loading'],
  members: ['ready'],
  result: ['ready'],
  evalResult: ['ready'],
  fault: ['hello', 'loading', 'ready'], // in hello: the worker turned this job down (another job, another protocol)
};

/** Parses "mnist:8500+1500:784->10:abcd1234" (see datasets/dataset.ts fingerprint). */
function parseFingerprint(fp: string): DataShape | null {
  const m = /^[^:]+:(\d+)\+(\d+):/.exec(fp);
  return m ? { fingerprint: fp, trainSize: Number(m[1]), testSize: Number(m[2]) } : null;
}

const NO_GRADIENTS = new Float32Array(0);

export class Membership extends EventEmitter<MembershipEvents> {
  readonly workers = new Map<string, WorkerSession>();
  /** The job's dataset (options.fingerprint), or else the first ready worker's; every worker must match it. */
  data: DataShape | null = null;
  /** Frame bytes received from and sent to workers, all frames. */
  readonly traffic = { in: 0, out: 0 };
  private trafficSeen = 0;

  /** Bytes on the wire since the last call (a step's; an evaluation round's frames count with the step after it). */
  takeTraffic(): number {
    const total = this.traffic.in + this.traffic.out;
    const d = total - this.trafficSeen;
    this.trafficSeen = total;
    return d;
  }
  private seq = 0;

  constructor(
    listener: Listener,
    private readonly o: MembershipOptions,
  ) {
    super();
    if (o.fingerprint) {
      this.data = parseFingerprint(o.fingerprint);
      if (!this.data) throw new DptrainError('RUN_FAILED', `dataset fingerprint ${o.fingerprint} cannot be parsed`);
    }
    listener.onLink((link) => this.accept(link));
  }

  /** Every worker with a link now, whatever its state. */
  all(): WorkerSession[] {
    return [...this.workers.values()];
  }

  /** Processes computing behind this member's link (a host agent's workers), 1 if unknown. */
  workersBehind(id: string): number {
    return this.workers.get(id)?.workers ?? 1;
  }

  ready(): WorkerSession[] {
    return [...this.workers.values()].filter((w) => w.state === 'ready');
  }

  send(w: WorkerSession, msg: ToWorker, payload: Float32Array | null = null): void {
    if (msg.t === 'work') msg = { ...msg, shmRead: w.shmRead };
    if (msg.t === 'work' || msg.t === 'evaluate') {
      w.requests++;
      w.owed.add(requestTag(msg.t === 'work' ? `work:${msg.step}:${msg.micro}` : `eval:${msg.round}`, msg.shard));
      busyOrIdle(w);
    }
    this.sendBytes(w, encodeFrame(msg, payload));
  }

  /** Send an already encoded frame (the parameter frame, encoded once for every worker). */
  sendBytes(w: WorkerSession, frame: Uint8Array): void {
    this.traffic.out += frame.length;
    w.link.send(frame);
  }

  /** Remove a worker: tell it why (a kind it branches on, a reason it logs), let the loop reassign its shards. */
  drop(w: WorkerSession, kind: CloseKind, reason: string, level: 'warn' | 'info' = 'warn'): void {
    if (w.state === 'gone') return;
    this.o.log[level]({ worker: w.id, host: w.host, remote: w.remote, kind, reason }, 'worker dropped');
    this.markGone(w, reason); // first: the close below runs this link's close handlers at once
    w.link.close(reason, kind);
  }

  private markGone(w: WorkerSession, reason: string): void {
    if (w.state === 'gone') return;
    const wasReady = w.state === 'ready';
    w.state = 'gone';
    this.workers.delete(w.id);
    w.channel?.removeResults(w.id);
    if (wasReady) this.emit('gone', w, reason);
  }

  private accept(link: Link): void {
    const pending = [...this.workers.values()].filter((x) => x.state === 'hello').map((x) => x.remote);
    const over = overPendingLimits(link.remote, pending, this.o);
    if (over) {
      this.o.log.warn({ remote: link.remote, ...over }, 'connection refused: too many unauthenticated connections');
      link.close('too many unauthenticated connections; try again later', 'busy');
      return;
    }
    const w: WorkerSession = {
      id: `w${++this.seq}`,
      name: '',
      host: '',
      remote: link.remote,
      pid: 0,
      backend: '',
      state: 'hello',
      link,
      paramsVersion: -1,
      peakFlops: 0,
      attainableFlops: 0,
      workers: 1,
      joinedAt: Date.now(),
      lagging: false,
      laggingSince: 0,
      overdue: false,
      nonce: newNonce(),
      channel: null,
      shmHeld: [],
      offeredAt: -1,
      shmRead: 0,
      requests: 0,
      answers: 0,
      owed: new Set(),
    };
    this.workers.set(w.id, w);
    const authMs = this.o.authTimeoutMs ?? AUTH_TIMEOUT_MS;
    deadline(link, authMs, () => {
      if (w.state === 'hello')
        this.drop(w, 'timeout', `authentication timeout: no valid hello within ${authMs / 1000} s`);
    });
    link.onFrame((bytes) => this.onFrame(w, bytes));
    this.send(w, { t: 'challenge', protocol: PROTOCOL_VERSION, jobId: this.o.jobId, nonce: w.nonce });
    link.onClose((reason) => {
      if (w.state === 'gone') return;
      this.o.log.warn({ worker: w.id, workerName: w.name, host: w.host, reason }, 'worker disconnected');
      this.markGone(w, reason);
    });
  }

  private onFrame(w: WorkerSession, bytes: Uint8Array): void {
    if (w.state === 'gone') return;
    this.traffic.in += bytes.length;
    let frame: ReturnType<typeof readFromWorker>;
    try {
      const { totalParams, job, slicedResults, decoder } = this.o;
      const compressor = decoder?.compressor ?? null;
      frame = readFromWorker(bytes, { totalParams, wireDtype: job.wireDtype, slicedResults, compressor });
    } catch (e) {
      return this.drop(w, 'invalid', `invalid message: ${describeError(e)}`);
    }
    const { msg, payload } = frame;
    if (!ACCEPTS[msg.t].includes(w.state)) return this.drop(w, 'invalid', `invalid: ${msg.t} while ${w.state}`);
    switch (msg.t) {
      case 'hello':
        return this.onHello(w, msg);
      case 'ready':
        return this.onReady(w, msg);
      case 'members':
        return this.onMembers(w, msg);
      case 'result':
        return this.onResult(w, msg, payload);
      case 'evalResult':
        answered(w);
        return void this.emit('evalResult', w, msg);
      case 'fault':
        if (w.state === 'hello')
          this.o.log.warn({ remote: w.remote, fault: msg.message }, 'a worker turned the job down');
        else this.o.log.error({ worker: w.id, host: w.host, fault: msg.message }, 'worker cannot continue');
        return this.drop(w, 'workerFault', `worker fault: ${msg.message}`, 'info');
    }
  }

  /** Authenticate, check the place and the protocol, and welcome it with the job. */
  private onHello(w: WorkerSession, msg: Hello): void {
    const { jobId, token, maxWorkers } = this.o;
    const members = [...this.workers.values()].filter((x) => x.state === 'loading' || x.state === 'ready').length;
    const refusal = refuseHello(msg, { jobId, token, nonce: w.nonce, maxWorkers, members });
    if (refusal) return this.drop(w, refusal.kind, refusal.reason);
    // A payload channel only for a worker that proves it holds the channel's secret (a local
    // worker of `dptrain train`, which was handed our private directory, or the worker inside
    // this process, handed the memory channel): never on its word alone.
    const channel = this.o.channels?.find((c) => c.usable && c.verifiesGrant(w.nonce, msg.shm)) ?? null;
    Object.assign(w, { name: msg.name, host: msg.host, pid: msg.pid, state: 'loading', channel });
    busyOrIdle(w); // loading the job (the dataset, a calibration) may hold its thread
    w.link.liftFrameCap?.(); // from now on it may send results as large as the model
    // A member that never becomes ready would hold a place toward maxWorkers for good.
    const readyMs = this.o.readyTimeoutMs ?? READY_TIMEOUT_MS;
    deadline(w.link, readyMs, () => {
      if (w.state === 'loading')
        this.drop(w, 'timeout', `no ready within ${readyMs / 1000} s of the welcome; reconnect when the job is loaded`);
    });
    const proof = token === null ? '' : coordinatorProof(token, this.o.jobId, msg.cnonce, w.nonce);
    this.send(w, {
      t: 'welcome',
      protocol: PROTOCOL_VERSION,
      workerId: w.id,
      jobId: this.o.jobId,
      job: this.o.job,
      proof,
      shm: channel !== null,
    });
    this.o.log.info(
      {
        worker: w.id,
        workerName: w.name,
        host: w.host,
        remote: w.remote,
        authenticated: token !== null,
        payloads: channel?.kind ?? 'frames',
      },
      'worker connected',
    );
  }

  /** The job is loaded there: check its data is the job's, and let it take shards. */
  private onReady(w: WorkerSession, msg: Ready): void {
    if (msg.workers < 1) return this.noWorkers(w, msg);
    const shape = parseFingerprint(msg.fingerprint);
    if (!shape) return this.drop(w, 'invalid', `invalid: dataset fingerprint ${msg.fingerprint}`);
    if (this.data && this.data.fingerprint !== shape.fingerprint) {
      return this.drop(
        w,
        'datasetDiffers',
        `dataset differs from the job's (${shape.fingerprint} vs ${this.data.fingerprint}); give every host the same files`,
      );
    }
    this.data ??= shape;
    takeStrength(w, msg);
    w.state = 'ready';
    busyOrIdle(w);
    this.o.log.info(
      {
        worker: w.id,
        host: w.host,
        backend: msg.backend,
        attainableGflops: +(msg.attainableFlops / 1e9).toFixed(2),
        declaredPeakFlops: msg.peakFlops || undefined,
      },
      'worker ready',
    );
    this.o.log.debug({ worker: w.id, backend: msg.backend, why: msg.backendReason }, 'worker backend choice'); // in log.jsonl
    this.emit('ready', w);
  }

  /** A host agent's workers changed: what it computes with from now on (its shards stay as they are). */
  private onMembers(w: WorkerSession, msg: Members): void {
    if (msg.workers < 1) return this.noWorkers(w, msg);
    const was = w.workers;
    takeStrength(w, msg);
    this.o.log.info(
      { worker: w.id, host: w.host, workers: msg.workers, was, backend: msg.backend },
      `${w.id} (${w.host}) now computes with ${msg.workers} worker${msg.workers === 1 ? '' : 's'} (was ${was})`,
    );
  }

  /** Every member computes for one worker at least: 0 would drop its processes from each step's count. */
  private noWorkers(w: WorkerSession, msg: Ready | Members): void {
    this.drop(w, 'invalid', `invalid: ${msg.t}.workers 0: a member computes for one worker at least`);
  }

  /** A shard's gradient sums, from the frame or from this worker's payload channel. */
  private onResult(w: WorkerSession, msg: ShardResult, payload: Float32Array | null): void {
    answered(w);
    let grads = payload ?? NO_GRADIENTS; // none: sliced results
    if (payload && this.o.decoder) grads = this.o.decoder.decode(payload, msg.losses.length);
    if (msg.shm > 0) {
      const channel = w.channel;
      if (!channel) {
        return this.drop(
          w,
          'invalid',
          `invalid message: ${describeError(new DptrainError('MESSAGE_INVALID', 'result.shm is set, but this worker was not granted a payload channel'))}`,
        );
      }
      try {
        // One node lands where the kernels read it; several, in the channel's own buffer.
        const nodes = msg.losses.length;
        const into = nodes === 1 ? (this.o.landing ?? undefined) : undefined;
        grads = channel.readResult(w.id, msg.shm, nodes * this.o.totalParams, this.o.job.wireDtype, into);
        w.shmRead = Math.max(w.shmRead, msg.shm);
      } catch (e) {
        // The directory went away, or a slot was overwritten: stop using this channel for
        // everyone, and let this worker reconnect (the reason is not a refusal); its shard
        // goes to another worker meanwhile.
        channel.disable(describeError(e));
        this.o.log.warn(
          { worker: w.id, channel: channel.where, error: describeError(e) },
          'shared memory failed; payloads go through the socket from now on',
        );
        return this.drop(w, 'reconnect', 'shared memory unreadable; reconnect to continue over the socket');
      }
    }
    this.emit('result', w, msg, grads);
  }

  /** Say goodbye to everyone (end of run). */
  /** End every session: with a bye (the job is over for them), or going away (they come back to a resumed run). */
  closeAll(reason: string, how: 'bye' | 'goingAway' = 'bye'): void {
    for (const w of [...this.workers.values()]) {
      if (how === 'bye') this.send(w, { t: 'bye', reason });
      this.markGone(w, reason);
      w.link.close(reason, how === 'bye' ? 'normal' : 'goingAway');
    }
  }
}

/** One request answered: the worker is alive, and busy only while it owes more. */
function answered(w: WorkerSession): void {
  w.answers++;
  w.overdue = false;
  busyOrIdle(w);
}

export { requestTag, type WorkerSession, type WorkerState } from './worker-session.js';

/** Stable across restarts of the same job, so reconnecting workers (and `--job`) match it. */
export function jobIdOf(job: JobConfig & { seed: number }, hash: string): string {
  return `job-${hash.slice(0, 16)}-s${job.seed}`;
}
