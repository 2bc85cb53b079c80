/**
 * A host agent: the one link from a host to the coordinator, for every worker on the host. To
 * the coordinator it is one worker (the same protocol: challenge, hello, welcome, ready, params,
 * work, result); to the host's workers it is a coordinator (HostWorkers: the coordinator's own
 * membership and phases over a local listener). Parameters cross the host link once per
 * version, not once per worker; each shard the coordinator gives the host is cut over the
 * host's workers and their gradient sums are added here (host-sum.ts), so the host link carries
 * one result, not one per worker.
 *
 * The session to the coordinator reads like the worker's: one explicit state, one handler per
 * message, frames handled one at a time in arrival order, a message the state does not expect
 * ends it with a coded close. A worker lost behind the agent is the coordinator's worker loss
 * one level down: its shard goes to another worker on the host. The last one lost, the agent
 * leaves the coordinator, which gives the host's shard to another host; the agent lost, the
 * coordinator sees the host's one member go (its workers notice and leave).
 */
import { hostname } from 'node:os';
import { parseConfig } from '../../shared/job/config.js';
import { jobLayout, prepareJob } from '../../shared/job/job-layout.js';
import { coordinatorProof, newNonce, proofsEqual, workerProof } from '../../shared/wire/auth.js';
import { encodeFrame } from '../../shared/wire/codec.js';
import { describeError, DptrainError, type ErrorCode } from '../../shared/util/errors.js';
import type { Logger } from '../../shared/util/log.js';
import type { ShmChannel } from '../../shared/transport/shm.js';
import type { Link, Listener } from '../../shared/transport/transport.js';
import {
  PROTOCOL_VERSION,
  type Challenge,
  type Evaluate,
  type Params,
  type ToCoordinator,
  type ToWorker,
  type Welcome,
  type Work,
} from '../../shared/wire/protocol.js';
import { readFromCoordinator } from '../../shared/wire/validate.js';
import type { WireDtype } from '../../shared/wire/wire-dtype.js';
import { CLOSE_OF, REFUSALS, type WorkerOutcome } from '../worker.js';
import { HostWorkers } from './host-workers.js';

export interface HostAgentOptions {
  /** The link to the coordinator. */
  up: Link;
  /** Where the host's workers connect (a loopback WebSocket, or the in-process transport). */
  listener: Listener;
  name: string;
  log: Logger;
  /** The job token, proved to the coordinator (null: none). */
  token: string | null;
  /** The token the host's workers must prove (default `token`; null: none, loopback or in-process only). */
  localToken?: string | null;
  /** Only join this job id ('' or undefined: any). */
  jobId?: string;
  /** The agent's shared-memory directory for its workers' payloads (null: through their sockets). */
  shm: ShmChannel | null;
  /** Workers to wait for before telling the coordinator the host is ready (default 1). */
  workers?: number;
}

/**
 * challenged: waiting for the challenge; helloSent: for the welcome; gathering: the job is
 * known, waiting for the host's workers to be ready; serving: answering params, work and
 * evaluate for them; closed: nothing more is handled.
 */
type AgentState = 'challenged' | 'helloSent' | 'gathering' | 'serving' | 'closed';

const ACCEPTS: Record<ToWorker['t'], readonly AgentState[]> = {
  challenge: ['challenged'],
  welcome: ['helloSent'],
  params: ['serving'],
  work: ['serving'],
  evaluate: ['serving'],
  bye: ['challenged', 'helloSent', 'gathering', 'serving'],
};

class HostAgentSession {
  private state: AgentState = 'challenged';
  private readonly cnonce = newNonce();
  private nonce = '';
  private workers: HostWorkers | null = null;
  private job: { totalParams: number; wireDtype: WireDtype } | null = null;
  private version = -1;
  private finished = false;
  private failure: { code: ErrorCode; why: string } | null = null;
  private lastEncodeMs = 0;
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly o: HostAgentOptions) {}

  run(): Promise<WorkerOutcome> {
    const { up } = this.o;
    return new Promise<WorkerOutcome>((resolve) => {
      up.onClose((reason, kind) => {
        this.state = 'closed';
        this.workers?.abort(new DptrainError('RUN_FAILED', `the coordinator link closed: ${reason}`));
        this.workers?.close(
          this.finished ? 'training finished' : `host agent lost the coordinator: ${reason}`,
          this.finished,
        );
        resolve({
          finished: this.finished,
          fatal: this.failure?.code ?? REFUSALS[kind] ?? null,
          reason: this.failure?.why ?? reason,
        });
      });
      up.onFrame((bytes) => {
        const arrived = performance.now();
        this.queue = this.queue.then(() => this.handle(bytes, arrived));
      });
    });
  }

  /** Read through a getter: an await may have closed the session meanwhile. */
  private get closed(): boolean {
    return this.state === 'closed';
  }

  private send(msg: ToCoordinator, payload: Float32Array | readonly Float32Array[] | null = null): void {
    this.o.up.send(encodeFrame(msg, payload, this.job?.wireDtype ?? 'float32'));
  }

  private giveUp(why: string, code: ErrorCode = 'RUN_FAILED'): void {
    this.failure = { code, why };
    this.o.log.error({ reason: why }, 'host agent cannot continue');
    this.send({ t: 'fault', message: why });
    this.o.up.close(why, CLOSE_OF[code] ?? 'workerFault');
  }

  private async handle(bytes: Uint8Array, arrived: number): Promise<void> {
    if (this.failure || this.state === 'closed') return;
    const t0 = performance.now();
    let frame: ReturnType<typeof readFromCoordinator>;
    try {
      frame = readFromCoordinator(bytes, {
        totalParams: this.job?.totalParams ?? null,
        wireDtype: this.job?.wireDtype ?? null,
      });
    } catch (e) {
      return this.giveUp(`invalid message from coordinator: ${describeError(e)}`);
    }
    const { msg, payload } = frame;
    if (!ACCEPTS[msg.t].includes(this.state)) return this.giveUp(`invalid: ${msg.t} while ${this.state}`);
    try {
      switch (msg.t) {
        case 'challenge':
          return this.onChallenge(msg);
        case 'welcome':
          return await this.onWelcome(msg);
        case 'params':
          return this.onParams(msg, payload!, bytes);
        case 'work':
          return await this.onWork(msg, t0, arrived);
        case 'evaluate':
          return await this.onEvaluate(msg);
        case 'bye':
          return this.onBye(msg.reason);
      }
    } catch (e) {
      if (!this.closed) this.giveUp(describeError(e));
    }
  }

  private onChallenge(msg: Challenge): void {
    const o = this.o;
    if (msg.protocol !== PROTOCOL_VERSION)
      return this.giveUp(
        `protocol mismatch: the coordinator speaks v${msg.protocol}, this host agent v${PROTOCOL_VERSION}; install the same dptrain version on both`,
        'PROTOCOL_MISMATCH',
      );
    if (o.jobId && msg.jobId !== o.jobId)
      return this.giveUp(
        `wrong job: the coordinator runs ${msg.jobId}, this host agent was started for ${o.jobId}`,
        'WRONG_JOB',
      );
    this.nonce = msg.nonce;
    this.send({
      t: 'hello',
      protocol: PROTOCOL_VERSION,
      name: o.name,
      host: hostname(),
      pid: process.pid,
      jobId: o.jobId ?? '',
      cnonce: this.cnonce,
      proof: o.token ? workerProof(o.token, msg.jobId, this.nonce, this.cnonce) : '',
      shm: '', // the agent is the host's one link; its payloads cross the network
    });
    this.state = 'helloSent';
  }

  /** The job is known: open the host to its workers; say ready once enough of them are. */
  private async onWelcome(msg: Welcome): Promise<void> {
    const o = this.o;
    if (o.token && !proofsEqual(msg.proof, coordinatorProof(o.token, msg.jobId, this.cnonce, this.nonce)))
      return this.giveUp(
        'authentication failed: the coordinator could not prove it holds the job token',
        'AUTH_FAILED',
      );
    const cfg = parseConfig(msg.job);
    // The agent sums its workers' dense gradients; a compressed job would need it to decode and re-encode.
    if (cfg.compression.kind !== 'none')
      return this.giveUp(
        `compression ${cfg.compression.kind} is not supported behind a host agent: run the workers without one, or leave compression off`,
      );
    await prepareJob(cfg);
    this.job = { totalParams: jobLayout(cfg).totalParams, wireDtype: cfg.wireDtype };
    if (this.closed) return;
    const workers = new HostWorkers({
      listener: o.listener,
      job: msg.job,
      jobId: msg.jobId,
      totalParams: this.job.totalParams,
      token: o.localToken === undefined ? o.token : o.localToken,
      shm: o.shm,
      log: o.log,
    });
    this.workers = workers;
    this.state = 'gathering';
    o.log.info({ coordinatorWorkerId: msg.workerId, job: msg.jobId }, 'host agent joined; waiting for workers');
    workers.membership.on('ready', () => {
      if (this.state === 'gathering' && workers.membership.ready().length >= (o.workers ?? 1)) this.sayReady();
    });
    workers.membership.on('gone', (w, why) => {
      if (this.state !== 'serving' || workers.membership.ready().length > 0) return;
      // Nobody left to compute the host's shards: the coordinator gives them to other hosts.
      o.log.warn({ lastWorker: w.name, reason: why }, 'every worker on this host is gone; leaving the coordinator');
      o.up.close(`host agent ${o.name}: every worker on the host is gone (last: ${why})`, 'normal');
    });
  }

  /** Ready, for the host: its workers' dataset, backends and FLOP/s together. */
  private sayReady(): void {
    const m = this.workers!.membership;
    const ready = m.ready();
    const backends = [...new Set(ready.map((w) => w.backend))];
    const declared = ready.every((w) => w.peakFlops > 0);
    this.state = 'serving';
    this.send({
      t: 'ready',
      fingerprint: m.data!.fingerprint,
      backend: backends.join('+'),
      backendReason: `host agent: ${ready.length} workers behind one link`,
      peakFlops: declared ? ready.reduce((s, w) => s + w.peakFlops, 0) : 0,
      attainableFlops: ready.reduce((s, w) => s + w.attainableFlops, 0),
    });
    this.o.log.info({ workers: ready.length, backend: backends.join('+') }, 'host agent ready');
  }

  private onParams(msg: Params, payload: Float32Array, bytes: Uint8Array): void {
    this.version = msg.version;
    this.workers!.setParams(msg.version, payload, bytes);
  }

  private async onWork(msg: Work, t0: number, arrived: number): Promise<void> {
    if (this.version !== msg.version) return this.giveUp(`work for params v${msg.version}, holding v${this.version}`);
    const r = await this.workers!.work(msg);
    if (this.closed) return;
    const tSend = performance.now();
    try {
      const frame = encodeFrame(
        {
          t: 'result',
          step: msg.step,
          micro: msg.micro,
          shard: msg.shard,
          lossSum: r.lossSum,
          losses: r.sum.losses,
          count: r.count,
          computeMs: r.computeMs,
          decodeMs: r.decodeMs,
          encodeMs: this.lastEncodeMs,
          busyMs: tSend - arrived,
          shm: 0,
        },
        r.sum.parts,
        this.job!.wireDtype,
      );
      this.lastEncodeMs = performance.now() - tSend;
      this.o.up.send(frame);
    } finally {
      r.release();
    }
    this.o.log.debug({ step: msg.step, micro: msg.micro, shard: msg.shard, ms: performance.now() - t0 }, 'host result');
  }

  private async onEvaluate(msg: Evaluate): Promise<void> {
    if (this.version !== msg.version)
      return this.giveUp(`evaluate for params v${msg.version}, holding v${this.version}`);
    const r = await this.workers!.evaluate(msg);
    if (this.closed) return;
    this.send({ t: 'evalResult', round: msg.round, shard: msg.shard, ...r });
  }

  private onBye(reason: string): void {
    this.finished = true;
    this.o.log.info({ reason }, 'coordinator said goodbye');
    this.o.up.close('bye', 'normal');
  }
}

/** One session of a host agent with one coordinator: until bye, a refusal, or the link's loss. */
export function runHostAgent(o: HostAgentOptions): Promise<WorkerOutcome> {
  return new HostAgentSession(o).run();
}
