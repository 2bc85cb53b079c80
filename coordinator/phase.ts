/**
 * One phase of distributed work: a range (of rows, or of a micro-batch's virtual shards) split
 * into shards over the eligible workers, sent, and collected. A shard whose worker leaves, or
 * misses its deadline, goes to the least-loaded other worker (or waits for one to join);
 * results are settled at most once. The caller
 * decides what a shard message says and what to do with a result; this decides who computes what.
 */
import { DptrainError } from '../shared/util/errors.js';
import type { Logger } from '../shared/util/log.js';
import type { ToWorker } from '../shared/wire/protocol.js';
import type { Membership, WorkerSession } from './membership.js';
import { busyOrIdle } from './worker-session.js';
import { Assignments, type ShardRange } from './scheduler.js';

export interface PhasePlan {
  /** Identifies results that belong to this phase ("work:12:0", "eval:3"). */
  key: string;
  /** The shards, given how many workers are eligible now (at least 1): at most one each. */
  cut(workers: number): ShardRange[];
  /** Rows a shard covers (results must report this count). */
  rows(s: ShardRange): number;
  /** Called once the shards are known. */
  begin(shards: readonly ShardRange[]): void;
  /** The message that asks a worker for one shard (after its params are current). */
  message(s: ShardRange): ToWorker;
}

export interface PhaseStats {
  shards: number;
  reassigned: number;
  /** Compute ms reported, and rows computed, per worker id in this phase. */
  computeMs: Record<string, number>;
  samples: Record<string, number>;
  /** Per worker id, summed over its shards: params decode and result encode (worker-reported), and wire time. */
  decodeMs: Record<string, number>;
  encodeMs: Record<string, number>;
  /**
   * Round trip (work sent → result received) minus the worker's own busy and encode time:
   * the parameters going down and the gradients coming up, socket queues included.
   */
  wireMs: Record<string, number>;
}

/** What a worker reports about one shard; eval results carry compute time only. */
export interface ShardTiming {
  computeMs: number;
  decodeMs?: number;
  encodeMs?: number;
  busyMs?: number;
}

const add = (rec: Record<string, number>, id: string, ms: number) => (rec[id] = (rec[id] ?? 0) + ms);

export interface PhaseContext {
  membership: Membership;
  log: Logger;
  /** Make sure this worker holds the current parameters before it gets work. */
  ensureParams(w: WorkerSession): void;
  /** How long shards may wait for any worker to be ready before the run fails. */
  noWorkerTimeoutMs: number;
  /** A shard not back within this many ms is given to another worker. */
  deadlineMs: number;
}

/** Workers that may get new shards: ready, and not behind on an earlier deadline. */
export function eligible(m: Membership): WorkerSession[] {
  return m.ready().filter((w) => !w.lagging);
}

export class Phase {
  private asg!: Assignments<WorkerSession>;
  private orphans: ShardRange[] = [];
  private orphanTimer: NodeJS.Timeout | null = null;
  private deadlines = new Map<number, NodeJS.Timeout>();
  private retried = new Set<number>();
  private resolve!: () => void;
  private reject!: (e: Error) => void;
  private readonly started = performance.now();
  readonly stats: PhaseStats = {
    shards: 0,
    reassigned: 0,
    computeMs: {},
    samples: {},
    decodeMs: {},
    encodeMs: {},
    wireMs: {},
  };
  /** When each shard's work message went out (for the wire time). */
  private sentAt = new Map<number, number>();

  constructor(
    private readonly ctx: PhaseContext,
    readonly plan: PhasePlan,
  ) {}

  run(): Promise<void> {
    const done = new Promise<void>((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    const live = eligible(this.ctx.membership);
    const shards = this.plan.cut(Math.max(1, live.length));
    this.asg = new Assignments(shards);
    this.stats.shards = shards.length;
    this.plan.begin(shards);
    shards.forEach((s, i) => {
      if (live.length) this.give(s, live[i]);
      else this.orphan(s);
    });
    return done;
  }

  get elapsedMs(): number {
    return performance.now() - this.started;
  }

  private give(s: ShardRange, w: WorkerSession): void {
    this.asg.assign(s.shard, w);
    this.ctx.ensureParams(w); // its encode and hand-off are timed on their own (encodeMs, broadcastMs)
    this.sentAt.set(s.shard, performance.now());
    this.ctx.membership.send(w, this.plan.message(s));
    clearTimeout(this.deadlines.get(s.shard));
    const t = setTimeout(() => this.missedDeadline(s, w), this.ctx.deadlineMs);
    t.unref();
    this.deadlines.set(s.shard, t);
  }

  private orphan(s: ShardRange): void {
    this.orphans.push(s);
    if (this.orphanTimer) return;
    this.ctx.log.warn(
      { phase: this.plan.key, shards: this.orphans.length },
      'no ready workers: waiting for one to join',
    );
    this.orphanTimer = setTimeout(() => {
      const secs = this.ctx.noWorkerTimeoutMs / 1000;
      this.reject(
        new DptrainError('WORKER_LOST', `no worker has been available for ${secs} s; start workers and resume`),
      );
    }, this.ctx.noWorkerTimeoutMs);
  }

  /** Hand a shard to the least-loaded eligible worker other than `not`, or queue it. */
  private reassign(s: ShardRange, from: WorkerSession, why: string): void {
    this.stats.reassigned++;
    const target = this.leastLoaded(from);
    this.ctx.log.warn(
      { phase: this.plan.key, shard: s.shard, from: from.id, to: target?.id ?? 'waiting', why },
      'shard reassigned',
    );
    if (target) this.give(s, target);
    else this.orphan(s);
  }

  private missedDeadline(s: ShardRange, w: WorkerSession): void {
    if (!this.asg.holds(s.shard, w) || w.state !== 'ready') return;
    w.overdue = true;
    busyOrIdle(w); // from now on its silence counts against it (the heartbeat cuts a dead one)
    if (!this.leastLoaded(w)) return; // nobody else to give it to: keep waiting for this one
    w.lagging = true;
    w.laggingSince = performance.now();
    this.ctx.log.warn(
      { worker: w.id, host: w.host, phase: this.plan.key, shard: s.shard, lateMs: Math.round(this.ctx.deadlineMs) },
      `worker ${w.id} (${w.host}) missed its deadline of ${Math.round(this.ctx.deadlineMs)} ms; its shards go to others`,
    );
    for (const held of this.asg.heldBy(w)) this.reassign(held, w, 'deadline');
  }

  /** Is this shard open and assigned to this worker? */
  owns(w: WorkerSession, shard: number): boolean {
    return this.asg.holds(shard, w);
  }

  /**
   * A non-finite result: give the shard to a different worker once. False if it was retried
   * already or no other worker is available (the caller then takes the result as it is).
   */
  retry(w: WorkerSession, shard: number): boolean {
    if (this.retried.has(shard) || !this.leastLoaded(w)) return false;
    this.retried.add(shard);
    this.reassign(this.asg.shards[shard], w, 'non-finite result');
    return true;
  }

  /** Settle a shard with this worker's result (the caller checked `owns`). */
  accept(w: WorkerSession, shard: number, t: ShardTiming): void {
    this.asg.settle(shard, w);
    clearTimeout(this.deadlines.get(shard));
    const st = this.stats;
    add(st.computeMs, w.id, t.computeMs);
    add(st.samples, w.id, this.shardSize(shard));
    add(st.decodeMs, w.id, t.decodeMs ?? 0);
    add(st.encodeMs, w.id, t.encodeMs ?? 0);
    const sent = this.sentAt.get(shard);
    if (sent !== undefined && t.busyMs !== undefined) {
      add(st.wireMs, w.id, Math.max(0, performance.now() - sent - t.busyMs - (t.encodeMs ?? 0)));
    }
  }

  /** Rows of a shard, to check a result's count. */
  shardSize(shard: number): number {
    const s = this.asg.shards[shard];
    return s ? this.plan.rows(s) : -1;
  }

  /** The range a shard covers (in the plan's units). */
  range(shard: number): ShardRange | undefined {
    return this.asg.shards[shard];
  }

  /** After an accepted result was added: finish when nothing is open. */
  settleCheck(): void {
    if (!this.asg.done) return;
    this.clearTimers();
    this.resolve();
  }

  clearTimers(): void {
    if (this.orphanTimer) clearTimeout(this.orphanTimer);
    for (const t of this.deadlines.values()) clearTimeout(t);
  }

  workerGone(w: WorkerSession): void {
    for (const s of this.asg.heldBy(w)) this.reassign(s, w, 'worker left');
  }

  workerReady(w: WorkerSession): void {
    if (this.orphans.length === 0) return;
    if (this.orphanTimer) clearTimeout(this.orphanTimer);
    this.orphanTimer = null;
    for (const s of this.orphans.splice(0)) this.give(s, w);
  }

  private leastLoaded(not?: WorkerSession): WorkerSession | undefined {
    let best: WorkerSession | undefined;
    let load = Infinity;
    for (const w of eligible(this.ctx.membership)) {
      if (w === not) continue;
      const n = this.asg.openCount(w);
      if (n < load) {
        best = w;
        load = n;
      }
    }
    return best;
  }
}
