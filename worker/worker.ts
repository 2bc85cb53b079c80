/**
 * A worker's session with one coordinator: answer the challenge, receive the job, load the
 * dataset, check the model against the backend, then answer params / work / evaluate messages
 * until the coordinator says bye. One explicit state and one handler per message; the handshake,
 * the coded closes and the outcome are the host agent's too (coordinator-session.ts). It holds
 * nothing that the next message cannot rebuild.
 */
import { encodeFrame } from '../shared/wire/codec.js';
import { parseConfig } from '../shared/job/config.js';
import { fingerprint, sameShape } from '../shared/datasets/index.js';
import { describeError, DptrainError } from '../shared/util/errors.js';
import { jobLayout, loadJobData, prepareJob } from '../shared/job/job-layout.js';
import type { Evaluate, Params, ShardResult, Welcome, Work } from '../shared/wire/protocol.js';
import { type PayloadChannel, type PayloadOffer, RESULT_SLOTS } from '../shared/transport/payload-channel.js';
import type { Link } from '../shared/transport/transport.js';
import type { WireDtype } from '../shared/wire/wire-dtype.js';
import { compressorOf, type CompressionConfig, type GradientCompressor } from '../shared/compress/index.js';
import type { BackendChoice } from './backend.js';
import { calibrate } from './calibrate.js';
import { type Arrival, CoordinatorSession, type Joiner, type WorkerOutcome } from './coordinator-session.js';
import { assertKernels } from './kernel-check.js';
import { shardSums, Trainer } from './trainer.js';

export interface WorkerOptions extends Joiner {
  link: Link;
  backend: BackendChoice;
  /** Declared peak FLOP/s of this worker's device (0 = none). */
  peakFlops?: number;
  /**
   * A payload channel to offer the coordinator: its shared-memory directory, when this worker
   * runs on its host (DPTRAIN_SHM_DIR: ShmChannel.offer), or its memory, when this worker runs
   * inside it (MemoryChannel.offer).
   */
  payloads?: PayloadOffer;
  /**
   * Sends a result's gradients from where they lie, without a result frame (slice shards:
   * sliced-link.ts); false when it cannot (then the frame goes on the link).
   */
  sendResult?: (msg: ShardResult, parts: readonly Float32Array[]) => boolean;
  /**
   * Runs each piece of work that holds this thread (loading the job, a shard, an evaluation):
   * the worker inside the coordinator warns the coordinator's peers through it, since the
   * coordinator sends no pings meanwhile (cli/coordinator-worker.ts). Others run it as it is.
   */
  holdsThread?: <T>(kind: ThreadHold, work: () => Promise<T>) => Promise<T>;
}

/** What holds a worker's thread, each kind timed apart. */
export type ThreadHold = 'load' | 'shard' | 'evaluate';

/** What serving needs, set once the job is loaded. */
interface Job {
  trainer: Trainer;
  totalParams: number;
  wireDtype: WireDtype;
  /**
   * The job's gradient compressor and this worker's error-feedback residual (shared/compress/).
   * The residual lives as long as this session: a worker that rejoins (or a resumed run) starts
   * from zero, which error feedback tolerates (it only defers what was unsent).
   */
  compression: { compressor: GradientCompressor; residual: Float32Array } | null;
}

/** loading: the job the welcome carries is being loaded (frames wait in the queue). */
class WorkerSession extends CoordinatorSession<'loading'> {
  private job: Job | null = null;
  private workerId = '';
  /** The payload channel, when the coordinator agreed to pass payloads through it. */
  private channel: PayloadChannel | null = null;
  /** Results go through shared memory (until a write fails; parameters may still come that way). */
  private shmResults = false;
  private shmFailed = false;
  private resultSeq = 0;
  /** The coordinator's credit: the newest of our shared-memory results it has read. */
  private shmRead = 0;
  /** This worker's own view of where its time goes, reported with each result. */
  private readonly timing = { decodeMs: 0, lastEncodeMs: 0 };

  constructor(private readonly o: WorkerOptions) {
    super(o.link, 'worker', o);
  }

  protected framing(): Job | null {
    return this.job;
  }

  protected onClosed(): Pick<WorkerOutcome, 'shmFailed'> {
    this.job?.trainer.dispose();
    return { shmFailed: this.shmFailed };
  }

  protected override shmProof(): string {
    return this.o.payloads?.proof(this.nonce) ?? '';
  }

  private holding<T>(kind: ThreadHold, work: () => Promise<T>): Promise<T> {
    return this.o.holdsThread ? this.o.holdsThread(kind, work) : work();
  }

  protected async onWelcome(msg: Welcome): Promise<void> {
    const o = this.o;
    this.workerId = msg.workerId;
    this.channel = msg.shm && o.payloads ? o.payloads.open() : null;
    this.shmResults = this.channel !== null;
    this.state = 'loading';
    await this.holding('load', () => this.load(msg));
    if (this.state === 'loading') this.state = 'serving';
  }

  /** Load the job the welcome carries, check it can run here, and say ready. */
  private async load(w: Welcome): Promise<void> {
    const o = this.o;
    const cfg = parseConfig(w.job); // the job is validated here exactly as from a file
    await prepareJob(cfg);
    const layout = jobLayout(cfg);
    const ds = loadJobData(cfg);
    const want = layout.data;
    if (!sameShape(ds, want)) {
      throw new DptrainError(
        'DATASET_UNAVAILABLE',
        `local ${ds.name} data has ${ds.inputShape.join('×')} inputs / ${ds.outputSize} outputs, the job expects ` +
          `${want.inputShape.join('×')} / ${want.outputSize}`,
      );
    }
    await assertKernels(layout, o.backend.name);
    const cal = await calibrate(o.backend.name);
    this.job = {
      trainer: new Trainer(layout, ds, cfg.seed),
      totalParams: layout.totalParams,
      wireDtype: cfg.wireDtype,
      compression: compressed(cfg.compression, layout.totalParams),
    };
    o.log.info(
      {
        worker: w.workerId,
        job: w.jobId,
        dataset: ds.name,
        train: ds.train.n,
        test: ds.test.n,
        params: layout.totalParams,
        attainableGflops: +(cal.flopsPerSec / 1e9).toFixed(2),
      },
      'job loaded',
    );
    this.send({
      t: 'ready',
      fingerprint: fingerprint(ds),
      backend: o.backend.name,
      backendReason: o.backend.reason,
      peakFlops: o.peakFlops ?? 0,
      attainableFlops: cal.flopsPerSec,
      workers: 1,
    });
  }

  protected onParams(msg: Params, { payload, t0 }: Arrival): void {
    const { trainer, totalParams, wireDtype } = this.job!;
    let values: Float32Array;
    if (msg.shm) {
      if (!this.channel)
        return this.giveUp('invalid: a shared-memory payload, but shared memory was not agreed in welcome');
      try {
        values = this.channel.readParams(msg.shm - 1, msg.version, totalParams, wireDtype);
      } catch (e) {
        // Not fatal: leave, and come back without shared memory (the coordinator gives our
        // shard to another worker meanwhile).
        this.shmFailed = true;
        this.o.log.warn({ error: describeError(e) }, 'shared memory unreadable; reconnecting without it');
        this.link.close('shared memory unreadable; reconnecting without it', 'reconnect');
        return;
      }
    } else values = payload!;
    trainer.setParams(msg.version, values);
    this.timing.decodeMs = performance.now() - t0; // frame decode and validation included
  }

  protected async onWork(msg: Work, { t0, arrived }: Arrival): Promise<void> {
    const { trainer, wireDtype, compression } = this.job!;
    if (trainer.version !== msg.version)
      return this.giveUp(`work for params v${msg.version}, holding v${trainer.version}`);
    this.shmRead = Math.max(this.shmRead, msg.shmRead);
    const r = await this.holding('shard', () => shardSums(trainer, msg, wireDtype !== 'float32'));
    const tSend = performance.now();
    let frame: Uint8Array | null = null;
    try {
      const result: ShardResult = {
        t: 'result',
        step: msg.step,
        micro: msg.micro,
        shard: msg.shard,
        lossSum: r.lossSum,
        losses: r.losses,
        count: r.count,
        computeMs: tSend - t0,
        decodeMs: this.timing.decodeMs,
        encodeMs: this.timing.lastEncodeMs,
        busyMs: tSend - arrived,
        shm: 0,
      };
      this.timing.decodeMs = 0; // the next shard on these params decodes nothing
      // Compressed results go through the socket: shared memory would carry no fewer bytes.
      const words = compression && compress(compression, r.parts, r.losses.length);
      // Without credit for the next slot (its last result may be unread), this one goes in the frame.
      if (!words && this.channel && this.shmResults && this.resultSeq + 1 - RESULT_SLOTS <= this.shmRead) {
        try {
          this.channel.writeResult(this.workerId, this.resultSeq + 1, r.parts, wireDtype);
          result.shm = ++this.resultSeq;
        } catch (e) {
          // A full tmpfs: this and every later result go through the socket.
          this.o.log.warn(
            { channel: this.channel.where, error: String(e) },
            'shared memory failed; sending gradients through the socket from now on',
          );
          this.shmResults = false;
        }
      }
      if (words) frame = encodeFrame(result, words);
      else if (result.shm || !this.o.sendResult?.(result, r.parts))
        frame = result.shm ? encodeFrame(result) : encodeFrame(result, r.parts, wireDtype);
    } finally {
      r.release(); // the parts may be views of tensor memory: written out above, now freed
    }
    this.timing.lastEncodeMs = performance.now() - tSend;
    if (frame) this.link.send(frame);
  }

  protected async onEvaluate(msg: Evaluate, { t0 }: Arrival): Promise<void> {
    const { trainer } = this.job!;
    if (trainer.version !== msg.version)
      return this.giveUp(`evaluate for params v${msg.version}, holding v${trainer.version}`);
    const r = await this.holding('evaluate', () => trainer.evaluate(msg.from, msg.to));
    this.send({
      t: 'evalResult',
      round: msg.round,
      shard: msg.shard,
      lossSum: r.lossSum,
      correct: r.correct,
      count: r.count,
      computeMs: performance.now() - t0,
    });
  }
}

function compressed(cfg: CompressionConfig, totalParams: number): Job['compression'] {
  const compressor = compressorOf(cfg);
  return compressor ? { compressor, residual: new Float32Array(totalParams) } : null;
}

/** A result's nodes as the compressor's words (the residual carries what is left unsent). */
function compress(
  { compressor, residual }: NonNullable<Job['compression']>,
  parts: Float32Array | readonly Float32Array[],
  nodes: number,
): Float32Array {
  const words = new Float32Array(nodes * compressor.wordsPerNode(residual.length));
  compressor.encode(parts instanceof Float32Array ? [parts] : parts, nodes, residual, words);
  return words;
}

export function runWorker(o: WorkerOptions): Promise<WorkerOutcome> {
  return new WorkerSession(o).run();
}
