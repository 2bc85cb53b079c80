/**
 * The training loop. The coordinator alone owns the parameters, the Adam state, the step
 * counter and the data cursor; workers only compute shard gradients. One step:
 *   for each micro-step: split the global batch over the ready workers, collect shard sums
 *   reduce in shard order → mean gradient → clip → Adam → new parameter version
 *   record metrics; evaluate on the test split when due
 */
import { encodeFrame } from '../shared/codec.js';
import { budgetFlops, declaredPeak, jobOf, type Config } from '../shared/config.js';
import { datasetShape } from '../shared/datasets/index.js';
import { DptrainError, fail } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { initParams, layoutModel, type ModelLayout } from '../shared/model-spec.js';
import type { Listener } from '../shared/transport/transport.js';
import { Membership, newJobId, type WorkerSession } from './membership.js';
import { exportLayersModel } from './model-export.js';
import { clipByGlobalNorm } from './optimizers/clip.js';
import { Adam } from './optimizers/adam.js';
import { learningRate } from './optimizers/schedule.js';
import { Phase } from './phase.js';
import { meanGradient, ShardReducer } from './reducer.js';
import type { RunDir } from './run-dir.js';
import { median, summarize, type EvalRecord, type RunSummary, type StepRecord } from './summary.js';
import { ComputeMeter, type StepAccounting } from './accounting.js';
import { denseFlopsPerSample } from '../shared/accounting/flops.js';

export interface CoordinatorOptions {
  config: Config;
  listener: Listener;
  log: Logger;
  runDir: RunDir | null;
  /** Stop accepting more than this many workers (default: config.workers × 4, at least 64). */
  maxWorkers?: number;
  /** How long to wait for minWorkers at the start (default 120 s). */
  joinTimeoutMs?: number;
  /** How long a step may wait with no worker at all (default 120 s). */
  noWorkerTimeoutMs?: number;
  onStep?: (r: StepRecord) => void;
  onEval?: (r: EvalRecord) => void;
}

export class Coordinator {
  readonly layout: ModelLayout;
  readonly params: Float32Array;
  readonly membership: Membership;
  private readonly adam: Adam;
  readonly meter: ComputeMeter;
  private readonly cfg: Config;
  private version = 0;
  private position = 0;
  private phase: Phase | null = null;
  private paramsFrame: { version: number; bytes: Uint8Array } | null = null;
  private stale = 0;
  private reassigned = 0;
  private dropped = 0;
  private skipped = 0;
  /** Workers that left, kept so a step they contributed to can still be accounted. */
  private readonly departed = new Map<string, WorkerSession>();

  constructor(private readonly o: CoordinatorOptions) {
    this.cfg = o.config;
    const shape = datasetShape(this.cfg.data);
    this.layout = layoutModel(this.cfg.model, shape.inputSize, shape.outputSize);
    this.params = initParams(this.layout, this.cfg.seed);
    this.adam = new Adam(this.cfg.optimizer, this.layout.totalParams);
    const flops = denseFlopsPerSample(this.layout);
    this.meter = new ComputeMeter({
      trainFlopsPerSample: flops.training,
      evalFlopsPerSample: flops.forward,
      budget: budgetFlops(this.cfg.compute),
      policy: this.cfg.compute.budgetPolicy,
      log: o.log,
    });
    this.membership = new Membership(o.listener, {
      job: jobOf(this.cfg),
      jobId: newJobId(),
      totalParams: this.layout.totalParams,
      maxWorkers: o.maxWorkers ?? Math.max(64, this.cfg.workers * 4),
      log: o.log,
    });
    this.membership.on('ready', (w) => this.phase?.workerReady(w));
    this.membership.on('gone', (w) => {
      this.dropped++;
      this.departed.set(w.id, w);
      this.phase?.workerGone(w);
    });
    this.membership.on('result', (w, msg, grads) => this.onResult(w, msg.step, msg.micro, msg.shard, msg.count, msg.computeMs, () => this.reducer!.add(msg.shard, grads, msg.lossSum, msg.count)));
    this.membership.on('evalResult', (w, msg) =>
      this.onResult(w, msg.round, 0, msg.shard, msg.count, msg.computeMs, () => {
        this.evalSums.lossSum += msg.lossSum;
        this.evalSums.correct += msg.correct;
        this.evalSums.count += msg.count;
        return true;
      }, 'eval'),
    );
  }

  private reducer: ShardReducer | null = null;
  private evalSums = { lossSum: 0, correct: 0, count: 0 };

  private onResult(w: WorkerSession, id: number, micro: number, shard: number, count: number, ms: number, add: () => boolean, kind = 'work'): void {
    const p = this.phase;
    const key = kind === 'eval' ? `eval:${id}` : `work:${id}:${micro}`;
    if (!p || p.plan.key !== key || !p.accept(w, shard, ms)) {
      this.stale++;
      if (kind === 'work') this.meter.wasted(count);
      this.o.log.debug({ worker: w.id, key, shard }, 'late or duplicate result ignored');
      return;
    }
    if (count !== p.shardSize(shard)) {
      this.membership.drop(w, `invalid result: shard ${shard} has ${p.shardSize(shard)} rows, worker reported ${count}`);
      return;
    }
    add();
    p.settleCheck();
  }

  private ensureParams = (w: WorkerSession): void => {
    if (w.paramsVersion === this.version) return;
    // Encode once per version; every worker gets the same bytes.
    if (this.paramsFrame?.version !== this.version) {
      this.paramsFrame = { version: this.version, bytes: encodeFrame({ t: 'params', version: this.version }, this.params) };
    }
    w.link.send(this.paramsFrame.bytes);
    w.paramsVersion = this.version;
  };

  private async runPhase(plan: Phase['plan']): Promise<Phase> {
    const phase = new Phase(
      { membership: this.membership, log: this.o.log, ensureParams: this.ensureParams, noWorkerTimeoutMs: this.o.noWorkerTimeoutMs ?? 120_000 },
      plan,
    );
    this.phase = phase;
    try {
      await this.abortable(phase.run());
    } finally {
      this.phase = null;
      this.reassigned += phase.stats.reassigned;
    }
    return phase;
  }

  private abortError: Error | null = null;
  private onAbort: ((e: Error) => void) | null = null;

  /** End the run from outside (all local workers died, a signal): the current wait rejects with `e`. */
  abort(e: Error): void {
    this.abortError ??= e;
    this.onAbort?.(e);
  }

  private abortable<T>(p: Promise<T>): Promise<T> {
    if (this.abortError) return Promise.reject(this.abortError);
    return Promise.race([
      p,
      new Promise<never>((_, reject) => {
        this.onAbort = reject;
      }),
    ]);
  }

  private async waitForWorkers(): Promise<void> {
    const need = this.cfg.minWorkers;
    const timeoutMs = this.o.joinTimeoutMs ?? 120_000;
    const start = Date.now();
    while (this.membership.ready().length < need) {
      const have = this.membership.ready().length;
      if (Date.now() - start > timeoutMs) {
        fail('WORKER_LOST', `only ${have} of ${need} workers became ready within ${timeoutMs / 1000} s; check the workers' logs`);
      }
      this.o.log.info({ ready: have, need, listen: this.o.listener.address }, 'waiting for workers');
      await this.abortable(
        new Promise<void>((res) => {
          const done = () => {
            clearTimeout(t);
            this.membership.off('ready', done);
            res();
          };
          const t = setTimeout(done, 5000);
          this.membership.on('ready', done);
        }),
      );
    }
  }

  private get data() {
    const d = this.membership.data;
    if (!d) throw new DptrainError('RUN_FAILED', 'no worker has reported the dataset yet');
    return d;
  }

  private async evaluate(step: number): Promise<EvalRecord | null> {
    if (this.data.testSize === 0) return null; // data.testFraction 0: nothing held out
    const t0 = performance.now();
    this.evalSums = { lossSum: 0, correct: 0, count: 0 };
    const round = step;
    const version = this.version;
    await this.runPhase({
      key: `eval:${round}`,
      from: 0,
      to: this.data.testSize,
      begin: () => {},
      message: (s) => ({ t: 'evaluate', round, shard: s.shard, version, from: s.from, to: s.to }),
    });
    const { lossSum, correct, count } = this.evalSums;
    this.meter.evaluated(count);
    const labels = datasetShape(this.cfg.data).targets !== 'real';
    const rec: EvalRecord = { step, testLoss: lossSum / count, testAccuracy: labels ? correct / count : null, evalMs: performance.now() - t0 };
    this.o.onEval?.(rec);
    return rec;
  }

  /** The peak a worker counts with: its own declaration, the job's, or its measured figure. */
  peakOf(w: WorkerSession | undefined): number {
    return (w?.peakFlops || declaredPeak(this.cfg.compute)) ?? w?.attainableFlops ?? 0;
  }

  /** One optimizer step: accumulate micro-steps, reduce, clip, Adam. */
  private async step(step: number): Promise<StepRecord> {
    const t0 = performance.now();
    const { batchSize, accumulate, optimizer } = this.cfg;
    const samplesBy: Record<string, number> = {};
    const acc = new Float64Array(this.layout.totalParams);
    let lossSum = 0;
    let count = 0;
    let workers = 0;
    const computeMs: Record<string, number> = {};
    for (let micro = 0; micro < accumulate; micro++) {
      const from = this.position;
      const version = this.version;
      const phase = await this.runPhase({
        key: `work:${step}:${micro}`,
        from,
        to: from + batchSize,
        begin: (shards) => {
          this.reducer = new ShardReducer(shards, this.layout.totalParams);
        },
        message: (s) => ({ t: 'work', step, micro, shard: s.shard, version, from: s.from, to: s.to }),
      });
      const sums = this.reducer!.addInto(acc);
      lossSum += sums.lossSum;
      count += sums.count;
      workers = Math.max(workers, phase.stats.shards);
      for (const [id, ms] of Object.entries(phase.stats.computeMs)) computeMs[id] = (computeMs[id] ?? 0) + ms;
      for (const [id, n] of Object.entries(phase.stats.samples)) samplesBy[id] = (samplesBy[id] ?? 0) + n;
      this.position += batchSize;
    }
    this.reducer = null;
    const { grads, finite } = meanGradient(acc, count);
    const lr = learningRate(optimizer, step, this.cfg.steps);
    let gradNorm = NaN;
    const skipped = !finite || !Number.isFinite(lossSum);
    if (skipped) {
      // As loss-scaling optimizers do: leave parameters and Adam state alone, move on.
      this.skipped++;
      this.o.log.warn({ step: step + 1, loss: lossSum / count }, 'step skipped: non-finite loss or gradient; lower optimizer.lr or set optimizer.clipNorm');
    } else {
      gradNorm = clipByGlobalNorm(grads, optimizer.clipNorm);
      this.adam.apply(this.params, grads, lr);
      this.version++;
    }
    const stepMs = performance.now() - t0;
    let acct: StepAccounting;
    if (skipped) {
      this.meter.wasted(count);
      acct = this.meter.idle();
    } else {
      const work = Object.keys(samplesBy).map((id) => ({
        id,
        samples: samplesBy[id],
        computeMs: computeMs[id] ?? 0,
        peakFlops: this.peakOf(this.membership.workers.get(id) ?? this.departed.get(id)),
      }));
      acct = this.meter.step(count, stepMs, work);
    }
    return {
      step: step + 1,
      epoch: this.position / this.data.trainSize,
      loss: lossSum / count,
      lr,
      gradNorm,
      samples: count,
      stepMs,
      samplesPerSec: (count * 1000) / stepMs,
      workers,
      workerComputeMs: computeMs,
      ...acct,
      ...(skipped ? { skipped: true } : {}),
    };
  }

  async run(): Promise<RunSummary> {
    const t0 = performance.now();
    const { steps, evalEvery } = this.cfg;
    this.o.log.info(
      { params: this.layout.totalParams, steps, batchSize: this.cfg.batchSize, listen: this.o.listener.address },
      'coordinator started',
    );
    await this.waitForWorkers();
    const records: StepRecord[] = [];
    let lastEval: EvalRecord | null = null;
    let stoppedBy: RunSummary['stoppedBy'] = 'steps';
    for (let s = 0; s < steps; s++) {
      if (this.meter.stopsBefore(this.cfg.batchSize * this.cfg.accumulate)) {
        stoppedBy = 'budget';
        const used = this.meter.budget ? this.meter.cumulativeFlops / this.meter.budget : 0;
        this.o.log.warn(
          { step: s, cumulativeFlops: this.meter.cumulativeFlops, budget: this.meter.budget, budgetUsed: +used.toFixed(4) },
          `compute budget reached after ${s} steps: the next step would exceed it; saving the model and stopping`,
        );
        break;
      }
      const rec = await this.step(s);
      if (evalEvery > 0 && rec.step % evalEvery === 0 && rec.step !== steps) {
        lastEval = await this.evaluate(rec.step);
        if (lastEval) Object.assign(rec, { testLoss: lastEval.testLoss, testAccuracy: lastEval.testAccuracy });
      }
      records.push(rec);
      this.o.runDir?.appendMetrics(rec);
      this.o.onStep?.(rec);
    }
    lastEval = await this.evaluate(steps);
    if (this.o.runDir) await exportLayersModel(this.layout, this.params, this.o.runDir.modelDir);
    const backends = [...new Set(this.membership.ready().map((w) => w.backend))];
    const summary = summarize({
      config: this.cfg,
      records,
      lastEval,
      params: this.layout.totalParams,
      workers: this.membership.ready().length,
      backends,
      wallSeconds: (performance.now() - t0) / 1000,
      staleResults: this.stale,
      reassignedShards: this.reassigned,
      droppedWorkers: this.dropped,
      skippedSteps: this.skipped,
      stoppedBy,
      meter: this.meter,
      peaks: this.membership.ready().map((w) => ({ declared: w.peakFlops || declaredPeak(this.cfg.compute), attainable: w.attainableFlops })),
    });
    this.o.runDir?.writeJson('summary.json', summary);
    this.o.log.info({ ...summary, medianStepMs: median(records.map((r) => r.stepMs)) }, 'run finished');
    this.membership.closeAll('training finished');
    return summary;
  }
}
