/**
 * Runs phases of work over the workers and takes their results: which result belongs to the
 * phase in flight, which is late or duplicated (ignored and counted), which comes from a
 * straggler coming back, and which is non-finite (recomputed once elsewhere). The training
 * loop asks for "gradients of these rows" and "loss of these test rows" and gets sums back.
 * The parameters reach the workers through params-broadcast.ts.
 */
import type { Logger } from '../shared/util/log.js';
import type { WireDtype } from '../shared/wire/wire-dtype.js';
import type { EvalResult, ShardResult } from '../shared/wire/protocol.js';
import type { Membership } from './membership.js';
import { requestTag, type WorkerSession } from './worker-session.js';
import { eligible, Phase, type PhasePlan, type PhaseStats } from './phase.js';
import { jsReduceOps, LeafFold, TreeReducer, type LastFold, type Reduction, type ReduceOps } from './reducer.js';
import { splitRange } from './scheduler.js';
import { coverNodes, leafStart, MAX_LEAVES, type TreeNode } from '../shared/job/shard-tree.js';
import { median } from '../shared/util/stats.js';
import { ParamsBroadcast } from './params-broadcast.js';

export interface DispatcherOptions {
  membership: Membership;
  log: Logger;
  totalParams: number;
  /** How parameter frames travel (the job's wireDtype). */
  wireDtype: WireDtype;
  /** Fixed shard deadline in ms; 0 = derived from recent phase times. */
  stepTimeoutMs: number;
  noWorkerTimeoutMs: number;
  /** Samples computed that no step will use (late, duplicated or recomputed results). */
  onWasted(samples: number): void;
  /** Called for each accepted result: which worker, which phase, its compute ms, when it arrived. */
  onAccepted?: (w: WorkerSession, key: string, shard: number, computeMs: number, atMs: number) => void;
  /**
   * Recompute a shard elsewhere when its gradient norm per sample exceeds this many times the
   * median of recent shards' (0 = off). A defence against a token holder sending wrong but
   * well-formed gradients, not a proof: see the README's threat model.
   */
  outlierFactor: number;
  /** The gradient passes (SIMD kernels in the coordinator's arena, or the scalar loops). */
  ops?: ReduceOps;
  /** Arrays for results that must wait (the arena's spare slots, where the kernels add them without a copy). */
  spares?: readonly Float32Array[];
  /**
   * Slice shards hold the parameters and take the gradients (coordinator/slices/): workers get
   * no parameter frames from here, and each accepted result is committed to the shards.
   */
  sliced?: {
    /** `leafFold`: per-worker shards, folded leaf by leaf in float64 (LeafFold), not along the tree. */
    commit(
      step: number,
      micro: number,
      shard: number,
      leaves: number,
      nodes: readonly TreeNode[],
      w: string,
      leafFold: boolean,
    ): void;
  } | null;
  /** Virtual shards per micro-batch (shared/job/shard-tree.ts); null: one per eligible worker. */
  leaves: number | null;
}

/** Shards whose per-sample gradient norm forms the outlier baseline, and how many are needed first. */
const NORM_HISTORY = 50;
const NORM_MIN_HISTORY = 10;

export interface DispatchCounters {
  stale: number;
  reassigned: number;
  recomputed: number;
  /** Shards whose gradient norm was an outlier and went to another worker. */
  outliers: number;
}

/** Before this many work phases have been timed, deadlines are generous (warm-up, JIT). */
const WARMUP_PHASES = 5;
const WARMUP_DEADLINE_MS = 60_000;
const MIN_DEADLINE_MS = 3_000;
const DEADLINE_FACTOR = 10;

export class Dispatcher {
  readonly counters: DispatchCounters = { stale: 0, reassigned: 0, recomputed: 0, outliers: 0 };
  private norms: number[] = [];
  private phase: Phase | null = null;
  private reducer: Reduction | null = null;
  /** Rows of the micro-batch in flight. */
  private batch = 0;
  private readonly ops: ReduceOps;
  /** The ready-worker count last warned of having workers without a leaf (noteIdle). */
  private idleNoted = 0;
  /** Copies of results waiting for an earlier shard or a sibling node, kept across steps (see TreeReducer). */
  private readonly spare: Float32Array[];
  /** Results taken although not finite (no other worker to recompute them): their step's mean is not finite. */
  nonFiniteTaken = 0;
  private evalSums = { lossSum: 0, correct: 0, count: 0 };
  /** The parameters each phase's workers must hold, sent with their first shard (or by pushParams). */
  readonly broadcast: ParamsBroadcast;
  private recentPhaseMs: number[] = [];
  /** Time spent folding shard results into the sum during the phase in flight. */
  private reduceMs = 0;
  private abortError: Error | null = null;
  private onAbort: ((e: Error) => void) | null = null;

  constructor(private readonly o: DispatcherOptions) {
    this.ops = o.ops ?? jsReduceOps;
    this.spare = [...(o.spares ?? [])];
    const { membership, log, wireDtype } = o;
    this.broadcast = new ParamsBroadcast({ membership, log, wireDtype, sliced: Boolean(o.sliced) });
    membership.on('ready', (w) => this.phase?.workerReady(w));
    membership.on('gone', (w) => this.phase?.workerGone(w));
    membership.on('result', (w, msg, grads) => this.onWorkResult(w, msg, grads));
    membership.on('evalResult', (w, msg) => this.onEvalResult(w, msg));
  }

  /** The parameters workers must hold for the next phase (a view; not copied until sent). */
  setParams(version: number, values: Float32Array): void {
    this.broadcast.set(version, values);
  }

  /**
   * Send the current parameters to every eligible worker now, rather than with its next shard:
   * they decode while the coordinator does its step bookkeeping, off the critical path.
   */
  pushParams(): void {
    for (const w of eligible(this.o.membership)) this.broadcast.offer(w);
  }

  /** Fail the phase in flight (and any later one) with `e`. */
  abort(e: Error): void {
    this.abortError ??= e;
    this.onAbort?.(e);
  }

  abortable<T>(p: Promise<T>): Promise<T> {
    if (this.abortError) return Promise.reject(this.abortError);
    return Promise.race([p, new Promise<never>((_, reject) => (this.onAbort = reject))]);
  }

  deadlineMs(): number {
    if (this.o.stepTimeoutMs > 0) return this.o.stepTimeoutMs;
    if (this.recentPhaseMs.length < WARMUP_PHASES) return WARMUP_DEADLINE_MS;
    return Math.max(MIN_DEADLINE_MS, DEADLINE_FACTOR * (median(this.recentPhaseMs) ?? 0));
  }

  private async run(plan: PhasePlan, deadlineMs: number): Promise<Phase> {
    const o = this.o;
    const phase = new Phase(
      {
        membership: o.membership,
        log: o.log,
        ensureParams: this.broadcast.ensure,
        noWorkerTimeoutMs: o.noWorkerTimeoutMs,
        deadlineMs,
      },
      plan,
    );
    this.phase = phase;
    try {
      await this.abortable(phase.run());
    } finally {
      phase.clearTimers();
      this.phase = null;
      this.counters.reassigned += phase.stats.reassigned;
    }
    return phase;
  }

  /**
   * Gradient sums over stream positions [from, to), cut into virtual shards, each worker given a
   * contiguous range of them; added into `acc` along the fixed tree as results arrive.
   * `lastFold` may take over the fold that completes the reduction: the last per-worker shard,
   * or the tree's root when it is known finite (reducer.ts).
   */
  async work(
    step: number,
    micro: number,
    from: number,
    to: number,
    acc: Float64Array,
    lastFold?: LastFold,
  ): Promise<{ lossSum: number; count: number; stats: PhaseStats; reduceMs: number }> {
    const version = this.broadcast.version;
    const batch = to - from;
    this.batch = batch;
    let leaves = 1;
    const start = (leaf: number) => leafStart(batch, leaves, leaf);
    const phase = await this.run(
      {
        key: `work:${step}:${micro}`,
        cut: (workers) => {
          // per-worker: past MAX_LEAVES workers, some wait
          leaves = Math.min(batch, MAX_LEAVES, this.o.leaves ?? workers);
          if (leaves < workers) this.noteIdle(workers, leaves, batch);
          return splitRange(0, leaves, workers);
        },
        rows: (s) => start(s.to) - start(s.from),
        begin: () => {
          // Per-worker shards keep the float64 fold in shard order; fixed ones the float32 tree.
          this.reducer =
            this.o.leaves === null
              ? new LeafFold(leaves, acc, this.ops, this.spare, lastFold, micro === 0)
              : new TreeReducer(leaves, acc, this.ops, this.spare, lastFold);
          this.reduceMs = 0;
        },
        // shmRead is the receiving worker's own credit: membership.send stamps it.
        message: (s) => {
          const rows = { from: from + start(s.from), to: from + start(s.to) };
          const leafRange = { leaves, first: s.from, last: s.to, batch };
          return { t: 'work', step, micro, shard: s.shard, version, ...rows, ...leafRange, shmRead: 0 };
        },
      },
      this.deadlineMs(),
    );
    this.recentPhaseMs.push(phase.elapsedMs);
    if (this.recentPhaseMs.length > 20) this.recentPhaseMs.shift();
    const sums = this.reducer!.totals();
    this.reducer = null;
    return { ...sums, stats: phase.stats, reduceMs: this.reduceMs };
  }

  /** Loss sum and correct count over test rows [0, rows). */
  async evaluate(round: number, rows: number): Promise<{ lossSum: number; correct: number; count: number }> {
    const version = this.broadcast.version;
    this.evalSums = { lossSum: 0, correct: 0, count: 0 };
    await this.run(
      {
        key: `eval:${round}`,
        cut: (workers) => splitRange(0, rows, workers),
        rows: (s) => s.to - s.from,
        begin: () => {},
        message: (s) => ({ t: 'evaluate', round, shard: s.shard, version, from: s.from, to: s.to }),
      },
      Math.max(WARMUP_DEADLINE_MS, this.deadlineMs()),
    );
    return this.evalSums;
  }

  /** Fewer leaves than ready workers: the rest wait. Said once per worker count, with the fix. */
  private noteIdle(workers: number, leaves: number, batch: number): void {
    if (this.idleNoted === workers) return;
    this.idleNoted = workers;
    const fix =
      this.o.leaves === null ? 'raise the batch' : `set shards (--shards) to ${workers} or more, or per-worker`;
    const why = `a batch of ${batch} is cut into ${leaves} virtual shards`;
    const idle = workers - leaves === 1 ? '1 worker waits' : `${workers - leaves} workers wait`;
    this.o.log.warn({ workers, leaves, batch }, `${workers} workers ready, but ${why}: ${idle}; ${fix}`);
  }

  /** Common checks; returns the phase if the result is this phase's to take. */
  private claim(w: WorkerSession, key: string, shard: number, count: number): Phase | null {
    // Only the answer to a request this worker was sent says it is back; anything else (a
    // stale or forged result) is ignored below and leaves it lagging.
    const owed = w.owed.delete(requestTag(key, shard));
    if (w.lagging && owed) {
      // A straggler is back: it rejoins at the next phase.
      const lateMs = Math.round(performance.now() - w.laggingSince);
      this.o.log.info(
        { worker: w.id, host: w.host, key, lateMs },
        `worker ${w.id} answered again ${lateMs} ms after missing its deadline; it rejoins at the next step`,
      );
      w.lagging = false;
      this.phase?.workerReady(w); // shards waiting for a worker can go to this one now
    }
    const p = this.phase;
    if (!p || p.plan.key !== key || !p.owns(w, shard)) {
      this.counters.stale++;
      if (key.startsWith('work:')) this.o.onWasted(count);
      this.o.log.debug({ worker: w.id, key, shard }, 'late or duplicate result ignored');
      return null;
    }
    if (count !== p.shardSize(shard)) {
      this.o.membership.drop(
        w,
        'invalid',
        `invalid result: shard ${shard} has ${p.shardSize(shard)} rows, worker reported ${count}`,
      );
      return null;
    }
    return p;
  }

  /** Rows of the micro-batch in flight that a tree node covers. */
  private leafRows(t: TreeNode): number {
    const { leaves } = this.reducer!;
    return leafStart(this.batch, leaves, t.end) - leafStart(this.batch, leaves, t.first);
  }

  /** The tree nodes a result for this shard must carry, in payload order. */
  private nodesOf(p: Phase, shard: number): TreeNode[] {
    const s = p.range(shard)!;
    return coverNodes(s.from, s.to, this.reducer!.leaves, this.o.wireDtype !== 'float32');
  }

  private onWorkResult(w: WorkerSession, msg: ShardResult, payload: Float32Array): void {
    const p = this.claim(w, `work:${msg.step}:${msg.micro}`, msg.shard, msg.count);
    if (!p) return;
    const nodes = this.nodesOf(p, msg.shard);
    if (msg.losses.length !== nodes.length) {
      const why = `shard ${msg.shard} covers ${nodes.length} tree nodes, worker sent ${msg.losses.length}`;
      this.o.membership.drop(w, 'invalid', `invalid result: ${why}`);
      return;
    }
    const n = this.o.totalParams;
    // One node: landed once where the kernels read it (the usual case); several: each checked
    // there, then read from the payload (the tree adds in plain loops, the fold lands its own).
    const landed = nodes.length === 1 ? this.ops.land(payload) : null;
    const part = (j: number) => landed ?? payload.subarray(j * n, (j + 1) * n);
    let finite = Number.isFinite(msg.lossSum);
    for (let j = 0; finite && j < nodes.length; j++) finite = this.ops.allFinite(landed ?? this.ops.land(part(j)));
    if (!finite && p.retry(w, msg.shard)) {
      this.counters.recomputed++;
      this.o.onWasted(msg.count);
      return;
    }
    if (this.o.outlierFactor > 0 && this.isOutlier(w, p, msg, nodes, payload)) return;
    if (!finite) this.nonFiniteTaken++;
    p.accept(w, msg.shard, msg);
    const leafFold = this.reducer instanceof LeafFold;
    this.o.sliced?.commit(msg.step, msg.micro, msg.shard, this.reducer!.leaves, nodes, w.id, leafFold);
    const t0 = performance.now();
    this.o.onAccepted?.(w, p.plan.key, msg.shard, msg.computeMs, t0);
    nodes.forEach((t, j) => {
      this.reducer!.add(t, part(j), msg.losses[j], this.leafRows(t));
    });
    this.reduceMs += performance.now() - t0;
    p.settleCheck();
  }

  /**
   * A node whose gradient norm per sample is far above the recent median: recompute the shard
   * elsewhere (true), or record its norms as typical (false).
   */
  private isOutlier(w: WorkerSession, p: Phase, msg: ShardResult, nodes: TreeNode[], payload: Float32Array): boolean {
    const n = this.o.totalParams;
    let perSample = 0;
    nodes.forEach((t, j) => {
      let sq = 0;
      for (let i = j * n; i < (j + 1) * n; i++) sq += payload[i] * payload[i];
      perSample = Math.max(perSample, Math.sqrt(sq) / this.leafRows(t));
    });
    const typical = this.norms.length >= NORM_MIN_HISTORY ? median(this.norms) : null;
    if (typical !== null && perSample > this.o.outlierFactor * typical && p.retry(w, msg.shard)) {
      this.counters.outliers++;
      this.o.onWasted(msg.count);
      this.o.log.warn(
        { worker: w.id, host: w.host, shard: msg.shard, normPerSample: perSample, median: typical },
        `gradient norm of worker ${w.id} is ${(perSample / typical).toFixed(1)}× the median; recomputing its shard elsewhere`,
      );
      return true;
    }
    if (Number.isFinite(perSample)) {
      this.norms.push(perSample);
      if (this.norms.length > NORM_HISTORY) this.norms.shift();
    }
    return false;
  }

  private onEvalResult(w: WorkerSession, msg: EvalResult): void {
    const p = this.claim(w, `eval:${msg.round}`, msg.shard, msg.count);
    if (!p) return;
    p.accept(w, msg.shard, { computeMs: msg.computeMs });
    this.evalSums.lossSum += msg.lossSum;
    this.evalSums.correct += msg.correct;
    this.evalSums.count += msg.count;
    p.settleCheck();
  }
}
