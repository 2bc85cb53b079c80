/**
 * The training loop. The coordinator alone owns the parameters, the Adam state, the step
 * counter and the data cursor; workers only compute shard gradients. One step:
 *   for each micro-step: gradient sums of the next `batchSize` stream positions (dispatcher)
 *   mean gradient → clip → Adam → new parameter version, or skip if non-finite (parameter-update.ts)
 *   account FLOPs; metrics; evaluate and checkpoint when due
 */
import { declaredPeak, type Config } from '../shared/job/config.js';
import { DptrainError, fail } from '../shared/util/errors.js';
import { jobLayout } from '../shared/job/job-layout.js';
import { initParams, modelKind, type AnyLayout } from '../shared/models/index.js';
import type { ComputeMeter } from './accounting.js';
import { resumedDataFingerprint, saveCheckpoint, type CheckpointCounters, type CheckpointState } from './checkpoint.js';
import type { Dispatcher } from './dispatcher.js';
import { NO_COMPRESSION_REPORT, ResultDecoder } from './compression.js';
import { compressorOf } from '../shared/compress/index.js';
import { traceStep } from './trace.js';
import type { Membership } from './membership.js';
import { exportLayersModel } from './model-export.js';
import { MemberPeaks, waitForWorkers } from './roster.js';
import { dispatcherFor, membershipFor, meterFor, type CoordinatorOptions } from './wiring.js';
import { eligible } from './phase.js';
import { ParameterUpdate } from './parameter-update.js';
import { membersAtEnd, summarize, type EvalRecord, type RunSummary, type StepRecord } from './summary.js';
import { StepTally, stepTimeline } from './timeline.js';
import { StopRequest } from './stop-request.js';

export type { CoordinatorOptions } from './wiring.js';

export class Coordinator {
  readonly layout: AnyLayout;
  readonly params: Float32Array;
  readonly membership: Membership;
  readonly meter: ComputeMeter;
  /** The parameters, Adam's state and a step's update of them. */
  private readonly update: ParameterUpdate;
  private readonly dispatcher: Dispatcher;
  /** Decodes compressed results (the job's compression); null: results are dense. */
  private readonly decoder: ResultDecoder | null;
  /** The next step's first shards, sent as soon as a step's parameters went out (see prefetch). */
  private prefetched: { step: number; t0: number; work: ReturnType<Dispatcher['work']> } | null = null;
  private readonly cfg: Config;
  /** Sequence models report tokens/s beside samples/s. */
  private readonly tokensPerSample: number | null;
  private stepsDone = 0;
  private position = 0;
  private dropped = 0;
  private readonly stopRequest: StopRequest;
  /** Peaks and processes (a host agent's) of workers that left, for the steps in flight when they did. */
  readonly peaks: MemberPeaks;

  constructor(private readonly o: CoordinatorOptions) {
    const datasetFingerprint = resumedDataFingerprint(o.resume, o.datasetFingerprint ?? null);
    this.cfg = o.config;
    this.layout = jobLayout(this.cfg);
    const init = initParams(this.layout, this.cfg.seed);
    const nonFiniteTaken = () => this.dispatcher.nonFiniteTaken;
    this.update = new ParameterUpdate(this.cfg, this.layout.totalParams, init, o.slices ?? null, nonFiniteTaken, o.log);
    this.params = this.update.params;
    const arena = this.update.arena;
    const flops = modelKind(this.layout.spec).flops(this.layout);
    this.tokensPerSample = flops.unit === 'token' ? flops.itemsPerSample : null;
    this.meter = meterFor(o, this.layout);
    const compressor = compressorOf(this.cfg.compression);
    this.decoder = compressor && new ResultDecoder(compressor, this.layout.totalParams, this.cfg.wireDtype);
    this.membership = membershipFor({ ...o, datasetFingerprint }, this.layout, arena?.landing, this.decoder);
    this.peaks = new MemberPeaks(this.membership, declaredPeak(this.cfg.compute), this.cfg.maxWorkers);
    this.membership.on('gone', (w) => {
      this.dropped++;
      this.peaks.left(w, this.stepsDone);
    });
    const { ops } = this.update;
    this.dispatcher = dispatcherFor(o, this.layout, this.membership, ops, this.meter, () => this.stepsDone, {
      spares: arena?.spares,
    });
    const idle = () => eligible(this.membership).length === 0;
    this.stopRequest = new StopRequest(this.dispatcher, idle, Boolean(o.slices));
    if (o.resume) this.restore(o.resume);
    this.dispatcher.setParams(this.update.version, this.params);
  }

  private restore(s: CheckpointState): void {
    if (s.params.length !== this.layout.totalParams)
      fail('CHECKPOINT_CORRUPT', `checkpoint has ${s.params.length} parameters, the model ${this.layout.totalParams}`);
    this.update.load(s.params, s.adam);
    this.stepsDone = s.step;
    this.position = s.position;
    this.update.version = s.version;
    const c = s.counters;
    Object.assign(this.dispatcher.counters, {
      stale: c.stale,
      reassigned: c.reassigned,
      recomputed: c.recomputed ?? 0,
      outliers: c.outliers ?? 0,
    });
    this.dropped = c.dropped;
    this.update.skipped = c.skipped;
    this.meter.cumulativeFlops = c.cumulativeFlops;
    this.meter.hardwareFlops = c.hardwareFlops;
  }

  /** Everything needed to continue exactly from here. */
  snapshot(): CheckpointState {
    return {
      step: this.stepsDone,
      position: this.position,
      version: this.update.version,
      config: this.cfg,
      params: this.params,
      adam: this.update.adamState,
      counters: this.counters(),
      dataFingerprint: this.membership.data?.fingerprint ?? null,
    };
  }

  private counters(): CheckpointCounters {
    const { cumulativeFlops, hardwareFlops } = this.meter;
    const skipped = this.update.skipped;
    return { ...this.dispatcher.counters, dropped: this.dropped, skipped, cumulativeFlops, hardwareFlops };
  }

  /** With slice shards: their parameters and optimizer state, here (before a checkpoint; at a step boundary). */
  private async pull(): Promise<void> {
    if (!this.o.slices) return;
    const { params, adam } = await this.o.slices.gather(this.stepsDone);
    this.update.load(params, adam);
  }

  checkpoint(): string | null {
    if (!this.o.runDir) return null;
    const path = saveCheckpoint(this.o.runDir.path, this.snapshot());
    this.o.log.info({ step: this.stepsDone, path }, 'checkpoint written');
    return path;
  }

  /** Stop after the step in flight (or abandon it: stop-request.ts), checkpoint, end the run with INTERRUPTED. */
  requestStop(why: string): void {
    this.stopRequest.request(why);
  }

  /** Checkpoint, say goodbye, and end the run with INTERRUPTED (after requestStop). */
  private stop(): never {
    this.dispatcher.abort(new DptrainError('INTERRUPTED', `${this.stopRequest.why}`)); // a prefetched step's shards are not waited for
    const path = this.checkpoint();
    if (this.o.tracer && this.o.traceFile) this.o.tracer.write(this.o.traceFile); // the steps traced so far
    const why = `coordinator stopped: ${this.stopRequest.why}`;
    this.membership.closeAll(
      this.o.workersStay ? `${why}; rejoin once it is resumed` : why,
      this.o.workersStay ? 'goingAway' : 'bye',
    );
    return fail(
      'INTERRUPTED',
      `${this.stopRequest.why}: stopped after step ${this.stepsDone}${path ? `; checkpoint written, continue with --resume ${this.o.runDir!.path}` : ''}`,
    );
  }

  /** The run failed: workers it was given are dismissed (bye); those that joined on their own stay, to rejoin a resume. */
  dismissAfterFailure(reason: string): void {
    if (!this.o.workersStay) this.membership.closeAll(reason);
  }

  /** End the run from outside (all local workers died): the current wait rejects with `e`. */
  abort(e: Error): void {
    this.dispatcher.abort(e);
  }

  private get data() {
    const d = this.membership.data;
    if (!d) throw new DptrainError('RUN_FAILED', 'no worker has reported the dataset yet');
    return d;
  }

  /** Wait until `need` workers are eligible, logging every 5 s; fail after `timeoutMs`. */
  private waitForWorkers(need: number, timeoutMs: number, what: string): Promise<void> {
    return waitForWorkers(
      {
        membership: this.membership,
        log: this.o.log,
        listen: this.o.listener.address,
        step: this.stepsDone,
        expected: this.o.expectedWorkers,
        checkStop: () => this.stopRequest.why && this.stop(),
        abortable: (p) => this.dispatcher.abortable(p),
        checkpoint: () => this.checkpoint(),
        resumeDir: this.o.runDir?.path ?? null,
      },
      need,
      timeoutMs,
      what,
    );
  }

  private async evaluate(step: number): Promise<EvalRecord | null> {
    if (this.data.testSize === 0) return null; // data.testFraction 0: nothing held out
    const t0 = performance.now();
    const { lossSum, correct, count } = await this.dispatcher.evaluate(step, this.data.testSize);
    this.meter.evaluated(count);
    const labels = this.layout.data.targets === 'onehot' || this.layout.data.targets === 'binary';
    const rec: EvalRecord = {
      step,
      testLoss: lossSum / count,
      testAccuracy: labels ? correct / count : null,
      evalMs: performance.now() - t0,
    };
    this.o.onEval?.(rec);
    return rec;
  }

  /**
   * Send the next step's first shards now, before this step's metrics are written, so workers
   * go from the new parameters straight to their next shard — unless something else must
   * happen first: an evaluation, a stop, the budget's end, too few workers, the last step.
   * Each worker gets its parameter frame and its shard back to back, so one wake-up serves
   * both (sent apart, a worker woke for its parameters, then again for its shard).
   */
  private prefetch(next: number): void {
    const { steps, evalEvery, batchSize, accumulate, minWorkers } = this.cfg;
    if (next >= steps || this.stopRequest.why || (evalEvery > 0 && next % evalEvery === 0)) return;
    if (this.meter.stopsBefore(batchSize * accumulate) || eligible(this.membership).length < minWorkers) return;
    const t0 = performance.now();
    const { fused, gradSum } = this.update;
    fused.begin(next);
    const last = fused.lastFold(next, 0, { lossSum: 0, count: 0 });
    const work = this.dispatcher.work(next, 0, this.position, this.position + batchSize, gradSum, last);
    work.catch(() => {}); // awaited by the next step; until then a rejection is not unhandled
    this.prefetched = { step: next, t0, work };
    this.o.onStepStart?.(next + 1);
  }

  /** One optimizer step: accumulate micro-steps, reduce, clip, Adam. */
  private async step(step: number): Promise<StepRecord> {
    const pre = this.prefetched?.step === step ? this.prefetched : null;
    this.prefetched = null;
    const t0 = pre?.t0 ?? performance.now();
    const { batchSize, accumulate } = this.cfg;
    const { fused, gradSum: acc } = this.update; // acc is zero: the last step's mean consumed it
    const tally = new StepTally();
    if (!pre) fused.begin(step);
    fused.awaitingStep(step);
    for (let micro = 0; micro < accumulate; micro++) {
      const pending =
        micro === 0 && pre
          ? pre.work
          : this.dispatcher.work(
              step,
              micro,
              this.position,
              this.position + batchSize,
              acc,
              fused.lastFold(step, micro, tally),
            );
      if (micro === 0 && !pre) this.o.onStepStart?.(step + 1);
      tally.add(await pending);
      this.position += batchSize;
    }
    const { lossSum, count, computeMs } = tally;
    const update = await this.update.apply(step, lossSum, count);
    const { skipped, lr, gradNorm, sliced } = update;
    const tOpt = update.startedAt;
    // The fused pass ran inside the last fold: its time is the update's, not the reduction's.
    const reduceMs = tally.reduceMs - update.fusedMs;
    if (!skipped) this.dispatcher.setParams(this.update.version, this.params); // sent below, with the next shards where there are any
    this.stepsDone = step + 1;
    const tEnd = performance.now();
    const optimizerMs = tEnd - tOpt + update.fusedMs;
    const stepMs = tEnd - t0;
    const { tracer: tr } = this.o;
    const { broadcast } = this.dispatcher;
    const times = { start: t0, optimizer: tOpt, end: tEnd, fusedMs: update.fusedMs };
    if (tr?.records(step + 1)) traceStep(tr, step + 1, times, lossSum / count, reduceMs, broadcast.lastEncode);
    const params = broadcast.takeTiming(); // before the prefetch below encodes the next step's
    const { timeline, workerTimeline } = stepTimeline(stepMs, computeMs, tally.spans, params, reduceMs, optimizerMs);
    const acct = this.meter.account(skipped, count, stepMs, () =>
      Object.keys(tally.samples).map((id) => ({
        id,
        samples: tally.samples[id],
        computeMs: computeMs[id] ?? 0,
        peakFlops: this.peaks.contributor(id).peak,
      })),
    );
    this.prefetch(step + 1);
    // Workers left without a prefetched shard (or every worker, when nothing was prefetched) get
    // the parameters now, to decode while the coordinator writes metrics or evaluates.
    this.dispatcher.pushParams();
    return {
      step: step + 1,
      epoch: this.position / this.data.trainSize,
      loss: lossSum / count,
      lr,
      gradNorm,
      samples: count,
      stepMs,
      samplesPerSec: (count * 1000) / stepMs,
      ...(this.tokensPerSample ? { tokensPerSec: (count * this.tokensPerSample * 1000) / stepMs } : {}),
      // Who computed a shard, a host agent as its workers (tally.workers counts the shards the step was cut into).
      workers: Object.keys(computeMs).reduce((k, id) => k + this.peaks.contributor(id).workers, 0),
      members: Object.keys(computeMs).length,
      workerComputeMs: computeMs,
      timeline,
      workerTimeline,
      wireBytes:
        this.membership.takeTraffic() + (sliced ? sliced.shards.reduce((n, s) => n + s.bytesIn + s.bytesOut, 0) : 0),
      ...(sliced ? { shardTimeline: sliced.shards, earlyAdam: sliced.early } : {}),
      ...acct,
      ...(skipped ? { skipped: true } : {}),
    };
  }

  /** A step; if every worker is lost for good mid-step or a stop abandons it, rewind its data cursor, checkpoint. */
  private async stepOrCheckpoint(): Promise<StepRecord> {
    const position = this.position;
    try {
      return await this.step(this.stepsDone);
    } catch (e) {
      const abandoned = this.stopRequest.abandoned(e);
      const lost = e instanceof DptrainError && e.code === 'WORKER_LOST';
      if (!abandoned && !lost) throw e;
      this.position = position; // the step did not happen: its samples come again on resume
      await this.pull();
      if (abandoned) return this.stop();
      const path = this.checkpoint();
      return fail(
        'WORKER_LOST',
        `${(e as DptrainError).message}${path ? ` (checkpoint at step ${this.stepsDone} written: --resume ${this.o.runDir!.path})` : ''}`,
      );
    }
  }

  async run(): Promise<RunSummary> {
    const t0 = performance.now();
    const { steps, evalEvery, checkpointEvery } = this.cfg;
    this.o.log.info(
      {
        params: this.layout.totalParams,
        steps,
        from: this.stepsDone,
        batchSize: this.cfg.batchSize,
        listen: this.o.listener.address,
      },
      this.stepsDone ? `coordinator resuming at step ${this.stepsDone}` : 'coordinator started',
    );
    const perStep = this.cfg.batchSize * this.cfg.accumulate;
    if (this.stepsDone < steps && this.meter.stopsBefore(perStep))
      fail('CONFIG_INVALID', this.meter.noStepLeft(!!this.o.resume));
    await this.waitForWorkers(this.o.startWorkers ?? this.cfg.minWorkers, this.o.joinTimeoutMs ?? 120_000, 'start');
    const records: StepRecord[] = [];
    let lastEval: EvalRecord | null = null;
    let evaluatedAt = -1;
    let stoppedBy: RunSummary['stoppedBy'] = 'steps';
    if (this.o.slices) await this.o.slices.assign(this.params, this.update.adamState, this.update.version);
    while (this.stepsDone < steps) {
      if (this.stopRequest.why) await this.pull().then(() => this.stop());
      if (this.meter.stopsRun(this.stepsDone, this.cfg.batchSize * this.cfg.accumulate)) {
        stoppedBy = 'budget';
        break;
      }
      if (eligible(this.membership).length < this.cfg.minWorkers) await this.pull(); // a pause may end in a checkpoint
      if (eligible(this.membership).length < this.cfg.minWorkers)
        await this.waitForWorkers(this.cfg.minWorkers, this.cfg.pauseTimeoutSec * 1000, 'paused');
      const rec = await this.stepOrCheckpoint();
      // The last step (all done, or the budget stops the next) takes the final evaluation, for its metrics row.
      const last = rec.step === steps || this.meter.stopsBefore(this.cfg.batchSize * this.cfg.accumulate);
      if (last || (evalEvery > 0 && rec.step % evalEvery === 0)) {
        lastEval = await this.evaluate(rec.step).catch((e: unknown) => {
          if (!this.stopRequest.abandoned(e)) throw e;
          this.o.runDir?.appendMetrics(rec); // the step happened; its evaluation was abandoned
          return this.stop();
        });
        evaluatedAt = rec.step;
        if (lastEval) Object.assign(rec, { testLoss: lastEval.testLoss, testAccuracy: lastEval.testAccuracy });
      }
      records.push(rec);
      this.o.runDir?.appendMetrics(rec);
      this.o.onStep?.(rec);
      if (checkpointEvery > 0 && rec.step % checkpointEvery === 0 && rec.step !== steps) {
        await this.pull();
        this.checkpoint();
      }
    }
    if (evaluatedAt !== this.stepsDone) lastEval = await this.evaluate(this.stepsDone); // no step ran (steps 0, budget spent)
    await this.pull();
    this.checkpoint();
    if (this.o.runDir) await exportLayersModel(this.layout, this.params, this.o.runDir.modelDir);
    const summary = summarize({
      config: this.cfg,
      records,
      lastEval,
      params: this.layout.totalParams,
      tokensPerSample: this.tokensPerSample,
      ...membersAtEnd(this.membership.ready(), (w) => w.peakFlops || this.peaks.declared(w)),
      wallSeconds: (performance.now() - t0) / 1000,
      counters: this.counters(),
      stoppedBy,
      stepsDone: this.stepsDone,
      compression: this.decoder?.report(records.length) ?? NO_COMPRESSION_REPORT,
      meter: this.meter,
    });
    this.o.runDir?.writeJson('summary.json', summary);
    if (this.o.tracer && this.o.traceFile) this.o.tracer.write(this.o.traceFile);
    this.o.log.info(
      { steps: summary.steps, stoppedBy: summary.stoppedBy, wallSeconds: +summary.wallSeconds.toFixed(2) },
      'run finished',
    );
    this.o.log.debug({ summary }, 'summary'); // the whole of it, for log.jsonl
    this.membership.closeAll('training finished');
    return summary;
  }
}
