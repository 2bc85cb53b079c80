/**
 * The live side of the dashboard: a RunView kept up to date from the coordinator's hooks (step
 * and evaluation records, membership events, the log), pushed to open pages as server-sent
 * events. The training loop only appends a row; encoding and writing to pages happen in a
 * timer, coalesced to a few times a second, and only while a page is open.
 */
import type { ServerResponse } from 'node:http';
import type { Coordinator } from '../coordinator.js';
import type { WorkerSession } from '../membership.js';
import type { EvalRecord, RunSummary, StepRecord } from '../summary.js';
import {
  evalRow,
  MAX_ROWS,
  stepRow,
  thin,
  warningOf,
  type EvalRow,
  type RunView,
  type StepRow,
  type WarningRow,
  type WorkerRow,
} from './view.js';

/** Pages get what changed at most this often (well within a second of a step). */
export const FLUSH_MS = 250;
/** A comment line this often keeps idle connections (and proxies) open. */
const KEEPALIVE_MS = 15_000;
/** Warnings kept for the page. */
const MAX_WARNINGS = 100;
/** Open pages at once; more are told to try later. */
export const MAX_CLIENTS = 32;

/** What a page is sent after the snapshot: rows since the last update and the current tables. */
export interface LiveUpdate {
  steps: StepRow[];
  evals: EvalRow[];
  warnings: WarningRow[];
  workers?: WorkerRow[];
  state: RunView['state'];
  summary?: RunSummary;
}

/**
 * The coordinator's log messages the worker table reads (test/coordinator/dashboard.test.ts
 * checks that the coordinator still logs each of them).
 */
export const WATCHED_MESSAGES = {
  backend: 'worker backend choice',
  stale: 'late or duplicate result ignored',
  reassigned: 'shard reassigned',
  recomputeWhy: 'non-finite result',
} as const;

interface LiveWorker extends WorkerRow {
  results: number;
}

export class LiveRun {
  private readonly view: RunView;
  private readonly workers = new Map<string, LiveWorker>();
  private pending: LiveUpdate = { steps: [], evals: [], warnings: [], state: 'waiting' };
  private workersChanged = false;
  private readonly clients = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | null = null;
  private keepalive: NodeJS.Timeout | null = null;
  private warningSeq = 0;
  /** Backend accounts logged before the worker's ready event (membership logs, then emits). */
  private readonly adapters = new Map<string, string>();

  constructor(name: string, config: Record<string, unknown>, totalSteps: number) {
    this.view = {
      name,
      config,
      steps: [],
      evals: [],
      workers: [],
      warnings: [],
      budget: null,
      totalSteps,
      summary: null,
      state: 'waiting',
    };
  }

  /** A resumed run: the steps and evaluations it made before, from its run directory. */
  preload(before: RunView): void {
    this.view.steps = before.steps;
    this.view.evals = before.evals.filter((e) => e.step <= (before.steps[before.steps.length - 1]?.step ?? 0));
  }

  /** Follow a coordinator's workers and budget. */
  attach(c: Coordinator): void {
    this.view.budget = c.meter.budget;
    const m = c.membership;
    m.on('ready', (w) => {
      const row = this.worker(w);
      row.state = 'ready';
      row.backend = w.backend;
      row.declaredFlops = w.peakFlops || null;
      row.measuredFlops = w.attainableFlops;
      row.lastSeen = Date.now();
      this.touchWorkers();
    });
    m.on('gone', (w) => {
      this.worker(w).state = 'gone';
      this.touchWorkers();
    });
    m.on('result', (w) => {
      const row = this.worker(w);
      row.results++;
      row.lastSeen = Date.now();
      this.touchWorkers();
    });
    m.on('evalResult', (w) => {
      this.worker(w).lastSeen = Date.now();
      this.touchWorkers();
    });
  }

  private worker(w: WorkerSession): LiveWorker {
    let row = this.workers.get(w.id);
    if (!row) {
      row = {
        id: w.id,
        name: w.name,
        host: w.host,
        backend: w.backend,
        adapter: this.adapters.get(w.id) ?? '',
        declaredFlops: null,
        measuredFlops: 0,
        achievedFlops: null,
        state: w.state,
        lastSeen: Date.now(),
        shardsDone: 0,
        staleShards: 0,
        recomputedShards: 0,
        results: 0,
      };
      this.workers.set(w.id, row);
    }
    return row;
  }

  private touchWorkers(): void {
    this.workersChanged = true;
    this.schedule();
  }

  onStep(r: StepRecord): void {
    const prev = this.view.steps[this.view.steps.length - 1];
    const row = stepRow(r, prev?.t ?? 0);
    this.view.steps.push(row);
    if (this.view.steps.length > MAX_ROWS) this.view.steps = thin(this.view.steps);
    this.view.state = 'training';
    if (this.clients.size) this.pending.steps.push(row);
    this.pending.state = 'training';
    for (const [id, f] of Object.entries(r.workerFlopsPerSec)) {
      const w = this.workers.get(id);
      if (w) w.achievedFlops = f;
    }
    const e = evalRow(r);
    if (e) this.addEval(e);
    this.workersChanged = true;
    this.schedule();
  }

  /** An evaluation as it is made (its step record, which carries it too, comes after). */
  onEval(r: EvalRecord): void {
    this.addEval({ step: r.step, testLoss: r.testLoss, testAccuracy: r.testAccuracy });
    this.schedule();
  }

  /** Each evaluation once, whether it comes on its own (onEval), with its step record, or both. */
  private addEval(e: EvalRow): void {
    if (this.view.evals[this.view.evals.length - 1]?.step === e.step) return;
    this.view.evals.push(e);
    if (this.clients.size) this.pending.evals.push(e);
  }

  /**
   * One pino JSON line of the coordinator's log: warnings for the page, and the per-worker
   * facts only the log carries (the backend's own account of itself, ignored and recomputed
   * shards).
   */
  onLogLine(line: string): void {
    let rec: {
      level?: number;
      msg?: string;
      time?: number;
      worker?: string;
      why?: string;
      from?: string;
      [k: string]: unknown;
    };
    try {
      rec = JSON.parse(line) as typeof rec;
    } catch {
      return;
    }
    const w = rec.worker ?? rec.from;
    const row = typeof w === 'string' ? this.workers.get(w) : undefined;
    if (typeof w === 'string' && rec.msg === WATCHED_MESSAGES.backend && typeof rec.why === 'string') {
      this.adapters.set(w, rec.why);
      if (row) row.adapter = rec.why;
    }
    if (row && rec.msg === WATCHED_MESSAGES.stale) row.staleShards++;
    if (row && rec.msg === WATCHED_MESSAGES.reassigned && rec.why === WATCHED_MESSAGES.recomputeWhy)
      row.recomputedShards++;
    if (row) this.touchWorkers();
    const warning = warningOf(rec, this.warningSeq + 1);
    if (warning) {
      this.warningSeq++;
      this.view.warnings.push(warning);
      if (this.view.warnings.length > MAX_WARNINGS) this.view.warnings.shift();
      if (this.clients.size) this.pending.warnings.push(warning);
      this.schedule();
    }
  }

  /**
   * The run ended: with its summary it finished; without one it was stopped (a signal, a failure),
   * and a page keeps trying to reconnect, to pick up a coordinator resumed on the same address.
   */
  finish(summary: RunSummary | null): void {
    this.view.state = summary ? 'finished' : 'stopped';
    this.view.summary = summary;
    this.pending.state = this.view.state;
    if (summary) this.pending.summary = summary;
    this.workersChanged = true;
    this.flush();
  }

  /** The whole view (what a page gets first). */
  snapshot(): RunView {
    return { ...this.view, workers: this.workerRows() };
  }

  private workerRows(): WorkerRow[] {
    return [...this.workers.values()].map(({ results, ...row }) => ({
      ...row,
      shardsDone: Math.max(0, results - row.staleShards - row.recomputedShards),
    }));
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** GET /events: a server-sent event stream, the snapshot first. False when there are too many. */
  subscribe(res: ServerResponse): boolean {
    if (this.clients.size >= MAX_CLIENTS) return false;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
    res.write(`retry: 2000\nevent: snapshot\ndata: ${JSON.stringify(this.snapshot())}\n\n`);
    this.clients.add(res);
    res.on('close', () => {
      this.clients.delete(res);
      if (this.clients.size === 0 && this.keepalive) {
        clearInterval(this.keepalive);
        this.keepalive = null;
      }
    });
    if (!this.keepalive) {
      this.keepalive = setInterval(() => this.broadcast(': keepalive\n\n'), KEEPALIVE_MS);
      this.keepalive.unref();
    }
    return true;
  }

  private schedule(): void {
    if (this.timer || this.clients.size === 0) return;
    this.timer = setTimeout(() => this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  /** Send what changed to every open page. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const u = this.pending;
    this.pending = { steps: [], evals: [], warnings: [], state: this.view.state };
    if (this.workersChanged) u.workers = this.workerRows();
    this.workersChanged = false;
    if (this.clients.size === 0) return;
    this.broadcast(`event: update\ndata: ${JSON.stringify(u)}\n\n`);
  }

  private broadcast(text: string): void {
    for (const res of this.clients) {
      // A page that does not keep up (its socket buffer full) is cut rather than buffered for.
      if (res.writableLength > 4 << 20) res.destroy();
      else res.write(text);
    }
  }

  /** End every stream (the coordinator is shutting down). */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.keepalive) clearInterval(this.keepalive);
    for (const res of this.clients) res.end();
    this.clients.clear();
  }
}
