/**
 * The host's workers, as the host agent sees them: the coordinator's own Membership (handshake,
 * validation, dataset agreement, drops) and Phase (who owes which shard, deadlines, reassignment
 * when a worker leaves) over the agent's local listener, and parameter frames handed on through
 * shared memory where the workers have it. One coordinator request (work or evaluate) becomes
 * one local phase: its range cut over the host's ready workers, their results summed on the host.
 */
import type { JobConfig } from '../../shared/job/config.js';
import { jobLayout, jobLeaves } from '../../shared/job/job-layout.js';
import { median } from '../../shared/util/stats.js';
import { coverNodes } from '../../shared/job/shard-tree.js';
import type { Logger } from '../../shared/util/log.js';
import type { Listener } from '../../shared/transport/transport.js';
import type { ShmChannel } from '../../shared/transport/shm.js';
import { ParamsBroadcast } from '../../coordinator/params-broadcast.js';
import type { Evaluate, EvalResult, ShardResult, Work } from '../../shared/wire/protocol.js';
import type { WireDtype } from '../../shared/wire/wire-dtype.js';
import { Membership, requestTag, type WorkerSession } from '../../coordinator/membership.js';
import { eligible, Phase, type PhasePlan } from '../../coordinator/phase.js';
import { splitRange } from '../../coordinator/scheduler.js';
import { leafSpace, RowFold, rowOf, SubtreeSum, type HostReduction, type HostSum, type LeafSpace } from './host-sum.js';

export interface HostWorkersOptions {
  listener: Listener;
  job: JobConfig;
  jobId: string;
  totalParams: number;
  /** The job token the host's workers must prove (null: none, loopback or in-process only). */
  token: string | null;
  /** The agent's shared-memory directory for its workers' payloads (null: all through the socket). */
  shm: ShmChannel | null;
  log: Logger;
  /** How long a local phase waits for any worker before it fails (default 30 s). */
  noWorkerTimeoutMs?: number;
}

/** A host's answer to one work request: its node sums and what the coordinator's result reports. */
export interface HostWorkResult {
  sum: HostSum;
  lossSum: number;
  count: number;
  /** The slowest worker's compute and decode: the host's workers run side by side. */
  computeMs: number;
  decodeMs: number;
  /** Give the sum's arrays back once sent. */
  release(): void;
}

/** As the coordinator's dispatcher: generous deadlines until a few phases are timed, then 10× the median. */
const WARMUP_PHASES = 5;
const WARMUP_DEADLINE_MS = 60_000;
const MIN_DEADLINE_MS = 3_000;
const DEADLINE_FACTOR = 10;

export class HostWorkers {
  readonly membership: Membership;
  private readonly wireDtype: WireDtype;
  private readonly perWorker: boolean;
  private phase: Phase | null = null;
  /** The phase's leaf space, reduction and slowest timings (one phase at a time). */
  private space: LeafSpace | null = null;
  private reduction: HostReduction | null = null;
  private slowest = { computeMs: 0, decodeMs: 0 };
  private evalSums = { lossSum: 0, correct: 0, count: 0 };
  /** The agent's own request number: local results are told apart by it (a late one never counts twice). */
  private seq = 0;
  private readonly spare: Float32Array[] = [];
  private readonly recentPhaseMs: number[] = [];
  private abortError: Error | null = null;
  private onAbort: ((e: Error) => void) | null = null;
  /** The parameters the host's workers must hold, sent as the coordinator's dispatcher sends them. */
  private readonly broadcast: ParamsBroadcast;

  constructor(private readonly o: HostWorkersOptions) {
    this.wireDtype = o.job.wireDtype;
    // As the coordinator cuts: an unset `shards` is per-worker or auto by the job.
    this.perWorker = jobLeaves(o.job, jobLayout(o.job)) === null;
    this.membership = new Membership(o.listener, {
      job: o.job,
      jobId: o.jobId,
      totalParams: o.totalParams,
      maxWorkers: 256,
      log: o.log,
      token: o.token,
      channels: o.shm ? [o.shm] : [],
      fingerprint: null, // the first ready worker's; the coordinator checks the host's against the job's
    });
    const m = this.membership;
    m.on('ready', (w) => this.phase?.workerReady(w));
    m.on('gone', (w) => this.phase?.workerGone(w));
    m.on('result', (w, msg, grads) => this.onResult(w, msg, grads));
    m.on('evalResult', (w, msg) => this.onEvalResult(w, msg));
    this.broadcast = new ParamsBroadcast({ membership: m, log: o.log, wireDtype: this.wireDtype, sliced: false });
  }

  /**
   * The parameters the host's workers must hold; `frame` is the coordinator's own frame for
   * them, handed on as it came to workers without shared memory (the same bytes, no re-encode).
   */
  setParams(version: number, values: Float32Array, frame: Uint8Array): void {
    this.broadcast.set(version, values, frame);
  }

  private deadlineMs(): number {
    if (this.recentPhaseMs.length < WARMUP_PHASES) return WARMUP_DEADLINE_MS;
    return Math.max(MIN_DEADLINE_MS, DEADLINE_FACTOR * (median(this.recentPhaseMs) ?? 0));
  }

  private async run(plan: PhasePlan, deadlineMs: number): Promise<void> {
    const phase = new Phase(
      {
        membership: this.membership,
        log: this.o.log,
        ensureParams: this.broadcast.ensure,
        noWorkerTimeoutMs: this.o.noWorkerTimeoutMs ?? 30_000,
        deadlineMs,
      },
      plan,
    );
    this.phase = phase;
    try {
      if (this.abortError) throw this.abortError;
      await Promise.race([phase.run(), new Promise<never>((_, reject) => (this.onAbort = reject))]);
    } finally {
      phase.clearTimers();
      this.phase = null;
    }
    this.recentPhaseMs.push(phase.elapsedMs);
    if (this.recentPhaseMs.length > 20) this.recentPhaseMs.shift();
  }

  /** The coordinator's shard, cut over the host's workers and summed here. */
  async work(w: Work): Promise<HostWorkResult> {
    const seq = ++this.seq;
    this.slowest = { computeMs: 0, decodeMs: 0 };
    let space: LeafSpace;
    await this.run(
      {
        key: `work:${w.step}:${seq}`,
        cut: (workers) => {
          space = leafSpace(w, this.perWorker, workers);
          return splitRange(space.first, space.last, workers);
        },
        rows: (s) => rowOf(space, s.to) - rowOf(space, s.from),
        begin: () => {
          this.space = space;
          this.reduction = this.perWorker
            ? new RowFold(space.leaves, this.o.totalParams)
            : new SubtreeSum(w.leaves, w.first, w.last, this.wireDtype !== 'float32', this.spare);
        },
        // The local request carries the agent's own number as its micro-step (workers echo it).
        message: (s) => ({
          t: 'work',
          step: w.step,
          micro: seq,
          shard: s.shard,
          version: w.version,
          from: rowOf(space, s.from),
          to: rowOf(space, s.to),
          leaves: space.leaves,
          first: s.from,
          last: s.to,
          batch: space.batch,
          shmRead: 0,
        }),
      },
      this.deadlineMs(),
    );
    const red = this.reduction!;
    this.reduction = null;
    const sum = red.result();
    const lossSum = sum.losses.reduce((a, b) => a + b, 0);
    const release = () => (red instanceof SubtreeSum ? red.release(sum) : undefined);
    return { sum, lossSum, count: w.to - w.from, ...this.slowest, release };
  }

  /** Loss and accuracy over the coordinator's test rows, cut over the host's workers. */
  async evaluate(e: Evaluate): Promise<Omit<EvalResult, 't' | 'round' | 'shard'>> {
    const round = ++this.seq;
    this.evalSums = { lossSum: 0, correct: 0, count: 0 };
    this.slowest = { computeMs: 0, decodeMs: 0 };
    await this.run(
      {
        key: `eval:${round}`,
        cut: (workers) => splitRange(e.from, e.to, workers),
        rows: (s) => s.to - s.from,
        begin: () => {},
        message: (s) => ({ t: 'evaluate', round, shard: s.shard, version: e.version, from: s.from, to: s.to }),
      },
      Math.max(WARMUP_DEADLINE_MS, this.deadlineMs()),
    );
    return { ...this.evalSums, computeMs: this.slowest.computeMs };
  }

  /** As the dispatcher's claim: the phase's to take, or ignored (late, duplicate); a wrong count drops the worker. */
  private claim(w: WorkerSession, key: string, shard: number, count: number): Phase | null {
    const owed = w.owed.delete(requestTag(key, shard));
    if (w.lagging && owed) {
      w.lagging = false; // a straggler is back: it takes shards again
      this.phase?.workerReady(w);
    }
    const p = this.phase;
    if (!p || p.plan.key !== key || !p.owns(w, shard)) {
      this.o.log.debug({ worker: w.id, key, shard }, 'late or duplicate result ignored');
      return null;
    }
    if (count !== p.shardSize(shard)) {
      this.membership.drop(w, 'invalid', `invalid result: shard ${shard} has ${p.shardSize(shard)} rows, got ${count}`);
      return null;
    }
    return p;
  }

  private onResult(w: WorkerSession, msg: ShardResult, payload: Float32Array): void {
    const p = this.claim(w, `work:${msg.step}:${msg.micro}`, msg.shard, msg.count);
    if (!p) return;
    const s = p.range(msg.shard)!;
    const space = this.space!;
    const nodes = coverNodes(s.from, s.to, space.leaves, this.wireDtype !== 'float32');
    if (msg.losses.length !== nodes.length)
      return this.membership.drop(
        w,
        'invalid',
        `invalid result: shard ${msg.shard} covers ${nodes.length} tree nodes, worker sent ${msg.losses.length}`,
      );
    // Non-finite sums go up as they are: the coordinator decides (it recomputes or skips the step).
    p.accept(w, msg.shard, msg);
    const n = this.o.totalParams;
    nodes.forEach((t, j) => {
      this.reduction!.add(t, payload.subarray(j * n, (j + 1) * n), msg.losses[j]);
    });
    this.slowest.computeMs = Math.max(this.slowest.computeMs, msg.computeMs);
    this.slowest.decodeMs = Math.max(this.slowest.decodeMs, msg.decodeMs);
    p.settleCheck();
  }

  private onEvalResult(w: WorkerSession, msg: EvalResult): void {
    const p = this.claim(w, `eval:${msg.round}`, msg.shard, msg.count);
    if (!p) return;
    p.accept(w, msg.shard, { computeMs: msg.computeMs });
    this.evalSums.lossSum += msg.lossSum;
    this.evalSums.correct += msg.correct;
    this.evalSums.count += msg.count;
    this.slowest.computeMs = Math.max(this.slowest.computeMs, msg.computeMs);
    p.settleCheck();
  }

  /** Ready workers that take shards now. */
  get ready(): number {
    return eligible(this.membership).length;
  }

  /** Fail the phase in flight, and any later one, with `e` (the agent's session ended). */
  abort(e: Error): void {
    this.abortError ??= e;
    this.onAbort?.(e);
  }

  /** End every local worker's session: `bye` at the end of the run, else a close they reconnect after. */
  close(reason: string, finished: boolean): void {
    if (finished) this.membership.closeAll(reason);
    else for (const w of this.membership.all()) this.membership.drop(w, 'reconnect', reason, 'info');
  }
}
