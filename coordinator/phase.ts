/**
 * One phase of distributed work: a range split into shards over the ready workers, sent,
 * and collected. Shards of a worker that leaves go to the least-loaded ready worker (or wait
 * for one to join); results are settled at most once. The caller decides what a shard message
 * says and what to do with a result; this decides who computes what.
 */
import { DptrainError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { ToWorker } from '../shared/protocol.js';
import type { Membership, WorkerSession } from './membership.js';
import { Assignments, splitRange, type ShardRange } from './scheduler.js';

export interface PhasePlan {
  /** Identifies results that belong to this phase ("work:12:0", "eval:3"). */
  key: string;
  from: number;
  to: number;
  /** Called once the shard count is known. */
  begin(shards: number): void;
  /** The message that asks a worker for one shard (after its params are current). */
  message(s: ShardRange): ToWorker;
}

export interface PhaseStats {
  shards: number;
  reassigned: number;
  /** Compute ms reported, and rows computed, per worker id in this phase. */
  computeMs: Record<string, number>;
  samples: Record<string, number>;
}

export interface PhaseContext {
  membership: Membership;
  log: Logger;
  /** Make sure this worker holds the current parameters before it gets work. */
  ensureParams(w: WorkerSession): void;
  /** How long shards may wait for any worker to be ready before the run fails. */
  noWorkerTimeoutMs: number;
}

export class Phase {
  private asg!: Assignments<WorkerSession>;
  private orphans: ShardRange[] = [];
  private orphanTimer: NodeJS.Timeout | null = null;
  private resolve!: () => void;
  private reject!: (e: Error) => void;
  readonly stats: PhaseStats = { shards: 0, reassigned: 0, computeMs: {}, samples: {} };

  constructor(
    private readonly ctx: PhaseContext,
    readonly plan: PhasePlan,
  ) {}

  run(): Promise<void> {
    const done = new Promise<void>((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    const live = this.ctx.membership.ready();
    const shards = splitRange(this.plan.from, this.plan.to, Math.max(1, live.length));
    this.asg = new Assignments(shards);
    this.stats.shards = shards.length;
    this.plan.begin(shards.length);
    shards.forEach((s, i) => (live.length ? this.give(s, live[i]) : this.orphan(s)));
    return done;
  }

  private give(s: ShardRange, w: WorkerSession): void {
    this.asg.assign(s.shard, w);
    this.ctx.ensureParams(w);
    this.ctx.membership.send(w, this.plan.message(s));
  }

  private orphan(s: ShardRange): void {
    this.orphans.push(s);
    if (this.orphanTimer) return;
    this.ctx.log.warn({ phase: this.plan.key, shards: this.orphans.length }, 'no ready workers: waiting for one to join');
    this.orphanTimer = setTimeout(() => {
      const secs = this.ctx.noWorkerTimeoutMs / 1000;
      this.reject(new DptrainError('WORKER_LOST', `no worker has been available for ${secs} s; start workers and resume`));
    }, this.ctx.noWorkerTimeoutMs);
  }

  /** True if the result is this phase's to take (the caller then adds it). */
  accept(w: WorkerSession, shard: number, computeMs: number): boolean {
    if (!this.asg.settle(shard, w)) return false;
    this.stats.computeMs[w.id] = (this.stats.computeMs[w.id] ?? 0) + computeMs;
    this.stats.samples[w.id] = (this.stats.samples[w.id] ?? 0) + this.shardSize(shard);
    return true;
  }

  /** Rows [from, to) of a shard, to check a result's count. */
  shardSize(shard: number): number {
    const s = this.asg.shards[shard];
    return s ? s.to - s.from : -1;
  }

  /** After an accepted result was added: finish when nothing is open. */
  settleCheck(): void {
    if (this.asg.done) {
      if (this.orphanTimer) clearTimeout(this.orphanTimer);
      this.resolve();
    }
  }

  workerGone(w: WorkerSession): void {
    for (const s of this.asg.heldBy(w)) {
      this.stats.reassigned++;
      const target = this.leastLoaded();
      this.ctx.log.warn({ phase: this.plan.key, shard: s.shard, from: w.id, to: target?.id ?? 'waiting' }, 'shard reassigned');
      if (target) this.give(s, target);
      else this.orphan(s);
    }
  }

  workerReady(w: WorkerSession): void {
    if (this.orphans.length === 0) return;
    if (this.orphanTimer) clearTimeout(this.orphanTimer);
    this.orphanTimer = null;
    for (const s of this.orphans.splice(0)) this.give(s, w);
  }

  private leastLoaded(): WorkerSession | undefined {
    let best: WorkerSession | undefined;
    let load = Infinity;
    for (const w of this.ctx.membership.ready()) {
      const n = this.asg.openCount(w);
      if (n < load) {
        best = w;
        load = n;
      }
    }
    return best;
  }
}
