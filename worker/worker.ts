/**
 * A worker's session with one coordinator: answer the challenge, receive the job, load the
 * dataset, check the model against the backend, then answer params / work / evaluate messages
 * until the coordinator says bye. One explicit state and one handler per message; a message the
 * state does not expect ends the session with a coded close. It holds nothing that the next
 * message cannot rebuild.
 */
import { hostname } from 'node:os';
import { encodeFrame } from '../shared/wire/codec.js';
import { parseConfig } from '../shared/job/config.js';
import { fingerprint, sameShape } from '../shared/datasets/index.js';
import { coordinatorProof, newNonce, proofsEqual, workerProof } from '../shared/wire/auth.js';
import { describeError, DptrainError, type ErrorCode } from '../shared/util/errors.js';
import type { Logger } from '../shared/util/log.js';
import { jobLayout, loadJobData, prepareJob } from '../shared/job/job-layout.js';
import {
  PROTOCOL_VERSION,
  type Challenge,
  type Evaluate,
  type Params,
  type ShardResult,
  type ToCoordinator,
  type ToWorker,
  type Welcome,
  type Work,
} from '../shared/wire/protocol.js';
import { RESULT_SLOTS, ShmChannel } from '../shared/transport/shm.js';
import type { CloseKind, Link } from '../shared/transport/transport.js';
import type { WireDtype } from '../shared/wire/wire-dtype.js';
import { compressorOf, type CompressionConfig, type GradientCompressor } from '../shared/compress/index.js';
import { readFromCoordinator } from '../shared/wire/validate.js';
import type { BackendChoice } from './backend.js';
import { calibrate } from './calibrate.js';
import { assertKernels } from './kernel-check.js';
import { shardSums, Trainer } from './trainer.js';

export interface WorkerOptions {
  link: Link;
  backend: BackendChoice;
  name: string;
  log: Logger;
  /** Declared peak FLOP/s of this worker's device (0 = none). */
  peakFlops?: number;
  /** The job token (null: none; a coordinator that requires one will refuse us). */
  token?: string | null;
  /** Only join this job id ('' or undefined: any). */
  jobId?: string;
  /** The coordinator's shared-memory directory, when this worker runs on its host (DPTRAIN_SHM_DIR). */
  shmDir?: string;
  /**
   * Sends a result's gradients from where they lie, without a result frame (slice shards:
   * sliced-link.ts); false when it cannot (then the frame goes on the link).
   */
  sendResult?: (msg: ShardResult, parts: readonly Float32Array[]) => boolean;
}

export interface WorkerOutcome {
  /** A shared-memory file could not be read: the next session should not offer shared memory. */
  shmFailed?: boolean;
  /** True when the coordinator ended the job normally (bye). */
  finished: boolean;
  /** Set when reconnecting cannot help: this worker gave up, or the coordinator refused it. */
  fatal: ErrorCode | null;
  reason: string;
}

/**
 * Closes after which coming back cannot help, and the error each ends the worker with. Every
 * other kind (normal, lost, jobFull, busy, timeout, reconnect) is worth another session.
 */
export const REFUSALS: Partial<Record<CloseKind, ErrorCode>> = {
  authFailed: 'AUTH_FAILED',
  protocolMismatch: 'PROTOCOL_MISMATCH',
  wrongJob: 'WRONG_JOB',
  invalid: 'RUN_FAILED',
  datasetDiffers: 'RUN_FAILED',
  workerFault: 'RUN_FAILED',
};

/** How a worker's own failure closes its link (the coordinator logs the kind). */
export const CLOSE_OF: Partial<Record<ErrorCode, CloseKind>> = {
  AUTH_FAILED: 'authFailed',
  PROTOCOL_MISMATCH: 'protocolMismatch',
  WRONG_JOB: 'wrongJob',
};

/**
 * challenged: waiting for the coordinator's challenge; helloSent: waiting for the welcome;
 * loading: loading the job (frames wait in the queue); serving: answering params, work and
 * evaluate; closed: nothing more is handled.
 */
type SessionState = 'challenged' | 'helloSent' | 'loading' | 'serving' | 'closed';

/** The states each message is accepted in. */
const ACCEPTS: Record<ToWorker['t'], readonly SessionState[]> = {
  challenge: ['challenged'],
  welcome: ['helloSent'],
  params: ['serving'],
  work: ['serving'],
  evaluate: ['serving'],
  bye: ['challenged', 'helloSent', 'loading', 'serving'],
};

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

class WorkerSession {
  private state: SessionState = 'challenged';
  private job: Job | null = null;
  private readonly cnonce = newNonce();
  private nonce = '';
  private workerId = '';
  /** The coordinator's shared-memory directory, when it agreed to pass payloads through it. */
  private shm: ShmChannel | null = null;
  /** Results go through shared memory (until a write fails; parameters may still come that way). */
  private shmResults = false;
  private shmFailed = false;
  private resultSeq = 0;
  /** The coordinator's credit: the newest of our shared-memory results it has read. */
  private shmRead = 0;
  private finished = false;
  private failure: { code: ErrorCode; why: string } | null = null;
  /** This worker's own view of where its time goes, reported with each result. */
  private readonly timing = { decodeMs: 0, lastEncodeMs: 0 };
  /** Frames are handled one at a time, in arrival order (see run). */
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly o: WorkerOptions) {}

  run(): Promise<WorkerOutcome> {
    const { link } = this.o;
    return new Promise<WorkerOutcome>((resolve) => {
      link.onClose((reason, kind) => {
        this.state = 'closed'; // frames still queued are not computed: nobody would take their results
        this.job?.trainer.dispose();
        resolve({
          finished: this.finished,
          fatal: this.failure?.code ?? REFUSALS[kind] ?? null,
          reason: this.failure?.why ?? reason,
          shmFailed: this.shmFailed,
        });
      });
      // Computing a shard is async (GPU reads are), and a params frame must not replace the
      // weights under a shard still being computed: so one frame at a time.
      link.onFrame((bytes) => {
        const arrived = performance.now();
        this.queue = this.queue.then(() => this.handle(bytes, arrived));
      });
    });
  }

  private send(msg: ToCoordinator, payload: Float32Array | null = null): void {
    this.o.link.send(encodeFrame(msg, payload));
  }

  /** End the session on our side: tell the coordinator why, and close with a kind that says so. */
  private giveUp(why: string, code: ErrorCode = 'RUN_FAILED'): void {
    this.failure = { code, why };
    this.o.log.error({ reason: why }, 'worker cannot continue');
    this.send({ t: 'fault', message: why });
    this.o.link.close(why, CLOSE_OF[code] ?? 'workerFault');
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
          return this.onParams(msg, payload, t0);
        case 'work':
          return await this.onWork(msg, t0, arrived);
        case 'evaluate':
          return await this.onEvaluate(msg, t0);
        case 'bye':
          return this.onBye(msg.reason);
      }
    } catch (e) {
      this.giveUp(describeError(e));
    }
  }

  private onChallenge(msg: Challenge): void {
    const o = this.o;
    if (msg.protocol !== PROTOCOL_VERSION) {
      return this.giveUp(
        `protocol mismatch: the coordinator speaks v${msg.protocol}, this worker v${PROTOCOL_VERSION}; install the same dptrain version on both`,
        'PROTOCOL_MISMATCH',
      );
    }
    if (o.jobId && msg.jobId !== o.jobId)
      return this.giveUp(
        `wrong job: the coordinator runs ${msg.jobId}, this worker was started for ${o.jobId}`,
        'WRONG_JOB',
      );
    this.nonce = msg.nonce;
    const proof = o.token ? workerProof(o.token, msg.jobId, this.nonce, this.cnonce) : '';
    const shm = o.shmDir ? (ShmChannel.grantProof(o.shmDir, this.nonce) ?? '') : '';
    this.send({
      t: 'hello',
      protocol: PROTOCOL_VERSION,
      name: o.name,
      host: hostname(),
      pid: process.pid,
      jobId: o.jobId ?? '',
      cnonce: this.cnonce,
      proof,
      shm,
    });
    this.state = 'helloSent';
  }

  private async onWelcome(msg: Welcome): Promise<void> {
    const o = this.o;
    if (o.token && !proofsEqual(msg.proof, coordinatorProof(o.token, msg.jobId, this.cnonce, this.nonce))) {
      return this.giveUp(
        'authentication failed: the coordinator could not prove it holds the job token',
        'AUTH_FAILED',
      );
    }
    this.workerId = msg.workerId;
    this.shm = msg.shm && o.shmDir ? new ShmChannel(o.shmDir) : null;
    this.shmResults = this.shm !== null;
    this.state = 'loading';
    await this.load(msg);
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
    });
  }

  private onParams(msg: Params, payload: Float32Array | null, t0: number): void {
    const { trainer, totalParams, wireDtype } = this.job!;
    let values: Float32Array;
    if (msg.shm) {
      if (!this.shm)
        return this.giveUp('invalid: a shared-memory payload, but shared memory was not agreed in welcome');
      try {
        values = this.shm.readParams(msg.shm - 1, msg.version, totalParams, wireDtype);
      } catch (e) {
        // Not fatal: leave, and come back without shared memory (the coordinator gives our
        // shard to another worker meanwhile).
        this.shmFailed = true;
        this.o.log.warn({ error: describeError(e) }, 'shared memory unreadable; reconnecting without it');
        this.o.link.close('shared memory unreadable; reconnecting without it', 'reconnect');
        return;
      }
    } else values = payload!;
    trainer.setParams(msg.version, values);
    this.timing.decodeMs = performance.now() - t0; // frame decode and validation included
  }

  private async onWork(msg: Work, t0: number, arrived: number): Promise<void> {
    const { trainer, wireDtype, compression } = this.job!;
    if (trainer.version !== msg.version)
      return this.giveUp(`work for params v${msg.version}, holding v${trainer.version}`);
    this.shmRead = Math.max(this.shmRead, msg.shmRead);
    const r = await shardSums(trainer, msg, wireDtype !== 'float32');
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
      if (!words && this.shm && this.shmResults && this.resultSeq + 1 - RESULT_SLOTS <= this.shmRead) {
        try {
          this.shm.writeResult(this.workerId, this.resultSeq + 1, r.parts, wireDtype);
          result.shm = ++this.resultSeq;
        } catch (e) {
          // A full tmpfs: this and every later result go through the socket.
          this.o.log.warn(
            { dir: this.shm.dir, error: String(e) },
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
    if (frame) this.o.link.send(frame);
  }

  private async onEvaluate(msg: Evaluate, t0: number): Promise<void> {
    const { trainer } = this.job!;
    if (trainer.version !== msg.version)
      return this.giveUp(`evaluate for params v${msg.version}, holding v${trainer.version}`);
    const r = await trainer.evaluate(msg.from, msg.to);
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

  private onBye(reason: string): void {
    this.finished = true;
    this.o.log.info({ reason }, 'coordinator said goodbye');
    this.o.link.close('bye', 'normal');
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
