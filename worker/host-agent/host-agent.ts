/**
 * A host agent: the one link from a host to the coordinator, for every worker on the host. To
 * the coordinator it is one worker (the same protocol: challenge, hello, welcome, ready, params,
 * work, result); to the host's workers it is a coordinator (HostWorkers: the coordinator's own
 * membership and phases over a local listener). Parameters cross the host link once per
 * version, not once per worker; each shard the coordinator gives the host is cut over the
 * host's workers and their gradient sums are added here (host-sum.ts), so the host link carries
 * one result, not one per worker.
 *
 * The session to the coordinator is the worker's (coordinator-session.ts): one explicit state,
 * one handler per message, frames handled one at a time in arrival order, a message the state
 * does not expect ends it with a coded close. A worker lost behind the agent is the
 * coordinator's worker loss one level down: its shard goes to another worker on the host. The last one lost, the agent
 * leaves the coordinator, which gives the host's shard to another host; the agent lost, the
 * coordinator sees the host's one member go (its workers notice and leave).
 */
import { type Config, parseConfig } from '../../shared/job/config.js';
import { jobLayout, prepareJob } from '../../shared/job/job-layout.js';
import { encodeFrame } from '../../shared/wire/codec.js';
import { DptrainError } from '../../shared/util/errors.js';
import type { ShmChannel } from '../../shared/transport/shm.js';
import type { Link, Listener } from '../../shared/transport/transport.js';
import type { Evaluate, Params, Strength, Welcome, Work } from '../../shared/wire/protocol.js';
import type { WireDtype } from '../../shared/wire/wire-dtype.js';
import { type Arrival, CoordinatorSession, type Joiner, type WorkerOutcome } from '../coordinator-session.js';
import { HostWorkers } from './host-workers.js';

export interface HostAgentOptions extends Joiner {
  /** The link to the coordinator. */
  up: Link;
  /** Where the host's workers connect (a loopback WebSocket, or the in-process transport). */
  listener: Listener;
  /** The job token, proved to the coordinator (null: none). */
  token: string | null;
  /** The token the host's workers must prove (default `token`; null: none, loopback or in-process only). */
  localToken?: string | null;
  /** The agent's shared-memory directory for its workers' payloads (null: through their sockets). */
  shm: ShmChannel | null;
  /** Workers to wait for before telling the coordinator the host is ready (default 1). */
  workers?: number;
}

/**
 * Why a host agent cannot serve this job, or null: the agent checks it at the welcome, and the
 * launchers before they start any agent.
 */
export function hostAgentRefusal(cfg: Pick<Config, 'compression'>): string | null {
  // The agent sums its workers' dense gradients; a compressed job would need it to decode and re-encode.
  if (cfg.compression.kind !== 'none')
    return `compression ${cfg.compression.kind} is not supported behind a host agent: run the workers without one, or leave compression off`;
  return null;
}

/** gathering: the job is known, waiting for the host's workers to be ready. */
class HostAgentSession extends CoordinatorSession<'gathering'> {
  private workers: HostWorkers | null = null;
  private job: { totalParams: number; wireDtype: WireDtype } | null = null;
  private version = -1;
  private lastEncodeMs = 0;
  private wasReady = false;

  constructor(private readonly o: HostAgentOptions) {
    super(o.up, 'host agent', o);
  }

  protected framing(): { totalParams: number; wireDtype: WireDtype } | null {
    return this.job;
  }

  protected onClosed(reason: string): Pick<WorkerOutcome, 'wasReady'> {
    this.workers?.abort(new DptrainError('RUN_FAILED', `the coordinator link closed: ${reason}`));
    this.workers?.close(
      this.finished ? 'training finished' : `host agent lost the coordinator: ${reason}`,
      this.finished,
    );
    return { wasReady: this.wasReady };
  }

  /** The job is known: open the host to its workers; say ready once enough of them are. */
  protected async onWelcome(msg: Welcome): Promise<void> {
    const o = this.o;
    const cfg = parseConfig(msg.job);
    const refused = hostAgentRefusal(cfg);
    if (refused) return this.giveUp(refused);
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
      else if (this.state === 'serving') this.sayMembers(); // one back, or one more, after ready
    });
    workers.membership.on('gone', (w, why) => {
      if (this.state !== 'serving') return;
      if (workers.membership.ready().length > 0) return this.sayMembers();
      // Nobody left to compute the host's shards: the coordinator gives them to other hosts.
      o.log.warn({ lastWorker: w.name, reason: why }, 'every worker on this host is gone; leaving the coordinator');
      o.up.close(`host agent ${o.name}: every worker on the host is gone (last: ${why})`, 'normal');
    });
  }

  /** Ready, for the host: its workers' dataset, backends and FLOP/s together. */
  private sayReady(): void {
    const strength = this.strength();
    this.state = 'serving';
    this.wasReady = true;
    this.send({
      t: 'ready',
      fingerprint: this.workers!.membership.data!.fingerprint,
      backendReason: `host agent: ${strength.workers} worker${strength.workers === 1 ? '' : 's'} behind one link`,
      ...strength,
    });
    this.o.log.info({ workers: strength.workers, backend: strength.backend }, 'host agent ready');
  }

  /** The host's workers changed after ready: the coordinator counts them anew. */
  private sayMembers(): void {
    const strength = this.strength();
    this.send({ t: 'members', ...strength });
    this.o.log.info({ workers: strength.workers, backend: strength.backend }, 'host workers changed');
  }

  /** The host's ready workers together: backends, declared peak (all declared, or none), measured FLOP/s, count. */
  private strength(): Strength {
    const ready = this.workers!.membership.ready();
    const declared = ready.every((w) => w.peakFlops > 0);
    return {
      backend: [...new Set(ready.map((w) => w.backend))].join('+'),
      peakFlops: declared ? ready.reduce((s, w) => s + w.peakFlops, 0) : 0,
      attainableFlops: ready.reduce((s, w) => s + w.attainableFlops, 0),
      workers: ready.reduce((s, w) => s + w.workers, 0),
    };
  }

  protected onParams(msg: Params, { payload, bytes }: Arrival): void {
    this.version = msg.version;
    this.workers!.setParams(msg.version, payload!, bytes);
  }

  protected async onWork(msg: Work, { t0, arrived }: Arrival): Promise<void> {
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
      this.link.send(frame);
    } finally {
      r.release();
    }
    this.o.log.debug({ step: msg.step, micro: msg.micro, shard: msg.shard, ms: performance.now() - t0 }, 'host result');
  }

  protected async onEvaluate(msg: Evaluate): Promise<void> {
    if (this.version !== msg.version)
      return this.giveUp(`evaluate for params v${msg.version}, holding v${this.version}`);
    const r = await this.workers!.evaluate(msg);
    if (this.closed) return;
    this.send({ t: 'evalResult', round: msg.round, shard: msg.shard, ...r });
  }
}

/** One session of a host agent with one coordinator: until bye, a refusal, or the link's loss. */
export function runHostAgent(o: HostAgentOptions): Promise<WorkerOutcome> {
  return new HostAgentSession(o).run();
}
