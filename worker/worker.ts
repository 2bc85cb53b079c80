/**
 * A worker: connect, say hello, receive the job, load the dataset, check the model against
 * the backend, then answer params / work / evaluate messages until the coordinator says bye.
 * It holds nothing that the next message cannot rebuild.
 */
import { hostname } from 'node:os';
import { encodeFrame } from '../shared/codec.js';
import { parseConfig } from '../shared/config.js';
import { datasetShape, fingerprint, loadDataset } from '../shared/datasets/index.js';
import { coordinatorProof, newNonce, proofsEqual, workerProof } from '../shared/auth.js';
import { describeError, DptrainError, fail, type ErrorCode } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { layoutModel } from '../shared/model-spec.js';
import { PROTOCOL_VERSION, type ShardResult, type ToCoordinator, type Welcome } from '../shared/protocol.js';
import { ShmChannel } from '../shared/transport/shm.js';
import type { CloseKind, Link } from '../shared/transport/transport.js';
import type { WireDtype } from '../shared/wire-dtype.js';
import { readFromCoordinator } from '../shared/validate.js';
import type { BackendChoice } from './backend.js';
import { calibrate } from './calibrate.js';
import { assertKernels } from './kernel-check.js';
import { Trainer } from './trainer.js';

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
const REFUSALS: Partial<Record<CloseKind, ErrorCode>> = {
  authFailed: 'AUTH_FAILED',
  protocolMismatch: 'PROTOCOL_MISMATCH',
  wrongJob: 'WRONG_JOB',
  invalid: 'RUN_FAILED',
  datasetDiffers: 'RUN_FAILED',
  workerFault: 'RUN_FAILED',
};

/** How a worker's own failure closes its link (the coordinator logs the kind). */
const CLOSE_OF: Partial<Record<ErrorCode, CloseKind>> = {
  AUTH_FAILED: 'authFailed',
  PROTOCOL_MISMATCH: 'protocolMismatch',
  WRONG_JOB: 'wrongJob',
};

export function runWorker(o: WorkerOptions): Promise<WorkerOutcome> {
  const { link, log } = o;
  const send = (msg: ToCoordinator, payload: Float32Array | null = null) => link.send(encodeFrame(msg, payload));
  let trainer: Trainer | null = null;
  let totalParams: number | null = null;
  let wireDtype: WireDtype | null = null;
  let finished = false;
  let failure: { code: ErrorCode; why: string } | null = null;
  const cnonce = newNonce();
  let nonce = '';
  /** Set when the coordinator agrees to pass payloads through its shared-memory directory. */
  let shm: ShmChannel | null = null;
  /** Results go through shared memory (until a write fails; parameters may still come that way). */
  let shmResults = false;
  let shmFailed = false;
  let closed = false;
  let workerId = '';
  let resultSeq = 0;
  const shmChannel = (): ShmChannel => shm ?? fail('MESSAGE_INVALID', 'a shared-memory payload, but shared memory was not agreed in welcome');
  /** This worker's own view of where its time goes, reported with each result. */
  const timing = { decodeMs: 0, lastEncodeMs: 0 };

  const start = async (w: Welcome) => {
    const cfg = parseConfig(w.job); // the job is validated here exactly as from a file
    const shape = datasetShape(cfg.data);
    const ds = loadDataset(cfg.data, cfg.seed);
    if (ds.inputSize !== shape.inputSize || ds.outputSize !== shape.outputSize) {
      throw new DptrainError('DATASET_UNAVAILABLE', `local ${ds.name} data has ${ds.inputSize} inputs / ${ds.outputSize} outputs, the job expects ${shape.inputSize} / ${shape.outputSize}`);
    }
    const layout = layoutModel(cfg.model, ds.inputSize, ds.outputSize);
    await assertKernels(layout, ds.targets, o.backend.name);
    const cal = await calibrate(o.backend.name);
    trainer = new Trainer(layout, ds, cfg.seed);
    totalParams = layout.totalParams;
    wireDtype = cfg.wireDtype;
    log.info(
      { worker: w.workerId, job: w.jobId, dataset: ds.name, train: ds.train.n, test: ds.test.n, params: totalParams, attainableGflops: +(cal.flopsPerSec / 1e9).toFixed(2) },
      'job loaded',
    );
    send({
      t: 'ready',
      fingerprint: fingerprint(ds),
      backend: o.backend.name,
      backendReason: o.backend.reason,
      peakFlops: o.peakFlops ?? 0,
      attainableFlops: cal.flopsPerSec,
    });
  };

  const giveUp = (why: string, code: ErrorCode = 'RUN_FAILED') => {
    failure = { code, why };
    log.error({ reason: why }, 'worker cannot continue');
    send({ t: 'fault', message: why });
    link.close(why, CLOSE_OF[code] ?? 'workerFault');
  };

  return new Promise<WorkerOutcome>((resolve) => {
    link.onClose((reason, kind) => {
      closed = true; // frames still queued are not computed: nobody would take their results
      trainer?.dispose();
      resolve({ finished, fatal: failure?.code ?? REFUSALS[kind] ?? null, reason: failure?.why ?? reason, shmFailed });
    });
    // Frames are handled one at a time, in arrival order: computing a shard is async (GPU reads
    // are), and a params frame must not replace the weights under a shard still being computed.
    let queue: Promise<void> = Promise.resolve();
    link.onFrame((bytes) => {
      const arrived = performance.now();
      queue = queue.then(() => handle(bytes, arrived));
    });
    const handle = async (bytes: Uint8Array, arrived: number): Promise<void> => {
      if (failure || closed) return;
      const t0 = performance.now();
      let frame;
      try {
        frame = readFromCoordinator(bytes, { totalParams, wireDtype });
      } catch (e) {
        giveUp(`invalid message from coordinator: ${describeError(e)}`);
        return;
      }
      const { msg, payload } = frame;
      try {
        switch (msg.t) {
          case 'challenge': {
            if (msg.protocol !== PROTOCOL_VERSION) {
              return giveUp(`protocol mismatch: the coordinator speaks v${msg.protocol}, this worker v${PROTOCOL_VERSION}; install the same dptrain version on both`, 'PROTOCOL_MISMATCH');
            }
            if (o.jobId && msg.jobId !== o.jobId) {
              return giveUp(`wrong job: the coordinator runs ${msg.jobId}, this worker was started for ${o.jobId}`, 'WRONG_JOB');
            }
            nonce = msg.nonce;
            const proof = o.token ? workerProof(o.token, msg.jobId, nonce, cnonce) : '';
            const shmProof = o.shmDir ? (ShmChannel.grantProof(o.shmDir, nonce) ?? '') : '';
            send({ t: 'hello', protocol: PROTOCOL_VERSION, name: o.name, host: hostname(), pid: process.pid, jobId: o.jobId ?? '', cnonce, proof, shm: shmProof });
            return;
          }
          case 'welcome':
            if (!nonce) return giveUp('invalid: welcome before challenge');
            if (o.token && !proofsEqual(msg.proof, coordinatorProof(o.token, msg.jobId, cnonce, nonce))) {
              return giveUp('authentication failed: the coordinator could not prove it holds the job token', 'AUTH_FAILED');
            }
            workerId = msg.workerId;
            shm = msg.shm && o.shmDir ? new ShmChannel(o.shmDir) : null;
            shmResults = shm !== null;
            await start(msg);
            return;
          case 'params':
            if (!trainer) return giveUp('params before the job was loaded');
            if (msg.shm) {
              let values: Float32Array;
              try {
                values = shmChannel().readParams(msg.shm - 1, msg.version, totalParams!, wireDtype!);
              } catch (e) {
                // Not fatal: leave, and come back without shared memory (the coordinator gives
                // our shard to another worker meanwhile).
                shmFailed = true;
                closed = true; // frames queued behind this one are not ours to answer any more
                log.warn({ error: describeError(e) }, 'shared memory unreadable; reconnecting without it');
                link.close('shared memory unreadable; reconnecting without it', 'reconnect');
                return;
              }
              trainer.setParams(msg.version, values);
            } else trainer.setParams(msg.version, payload as Float32Array);
            timing.decodeMs = performance.now() - t0; // frame decode and validation included
            return;
          case 'work': {
            if (!trainer || trainer.version !== msg.version) return giveUp(`work for params v${msg.version}, holding v${trainer?.version ?? 'none'}`);
            const r = await trainer.gradientParts(msg.from, msg.to);
            const tSend = performance.now();
            let frame: Uint8Array;
            try {
              const result: ShardResult = {
                t: 'result', step: msg.step, micro: msg.micro, shard: msg.shard, lossSum: r.lossSum, count: r.count,
                computeMs: tSend - t0, decodeMs: timing.decodeMs, encodeMs: timing.lastEncodeMs, busyMs: tSend - arrived, shm: 0,
              };
              timing.decodeMs = 0; // the next shard on these params decodes nothing
              if (shm && shmResults) {
                try {
                  shm.writeResult(workerId, resultSeq + 1, r.parts, wireDtype!);
                  result.shm = ++resultSeq;
                } catch (e) {
                  // A full tmpfs: this and every later result go through the socket.
                  log.warn({ dir: shm.dir, error: String(e) }, 'shared memory failed; sending gradients through the socket from now on');
                  shmResults = false;
                }
              }
              frame = result.shm ? encodeFrame(result) : encodeFrame(result, r.parts, wireDtype ?? 'float32');
            } finally {
              r.release(); // the parts may be views of tensor memory: written out above, now freed
            }
            timing.lastEncodeMs = performance.now() - tSend;
            link.send(frame);
            return;
          }
          case 'evaluate': {
            if (!trainer || trainer.version !== msg.version) return giveUp(`evaluate for params v${msg.version}, holding v${trainer?.version ?? 'none'}`);
            const r = await trainer.evaluate(msg.from, msg.to);
            send({ t: 'evalResult', round: msg.round, shard: msg.shard, lossSum: r.lossSum, correct: r.correct, count: r.count, computeMs: performance.now() - t0 });
            return;
          }
          case 'bye':
            finished = true;
            log.info({ reason: msg.reason }, 'coordinator said goodbye');
            link.close('bye', 'normal');
            return;
        }
      } catch (e) {
        giveUp(describeError(e));
      }
    };
  });
}
