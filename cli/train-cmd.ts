/**
 * `dptrain train` (coordinator + local worker processes) and `dptrain coordinator` (remote
 * workers): resolve the config (or the checkpoint to resume), open the run directory and the
 * listener, run, and turn SIGINT/SIGTERM into "finish the step, checkpoint, exit".
 */
import { readTlsPair } from './tls-files.js';
import { checkSliceable, coordinatorSlices } from './slice-shard-cmd.js';
import { readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { readRunView } from '../coordinator/dashboard/run-dir-view.js';
import { checkTrace, Tracer } from '../coordinator/trace.js';
import { isLoopback, newToken, readToken } from '../shared/wire/auth.js';
import { describeError, DptrainError, fail } from '../shared/util/errors.js';
import { STOP_GRACE_MS } from '../coordinator/stop-request.js';
import type { Coordinator } from '../coordinator/coordinator.js';
import { budgetFlops, checkStartedWithin, type Config } from '../shared/job/config.js';
import { ComputeMeter } from '../coordinator/accounting.js';
import { modelKind } from '../shared/models/index.js';
import { silentLogger } from '../shared/util/log.js';
import { checkFaultNames, faultInjector, localWorkerNames, parseFault, type Fault } from './faults.js';
import { resolveRun, type JobFlags, type TrainingCommand } from './flags.js';
import { localLauncher } from './launch/local.js';
import { describeExit, type LaunchedWorkers } from './launch/contract.js';
import { ShmChannel } from '../shared/transport/shm.js';
import { jobLayout, jobResultNodes, loadJobData, prepareJob } from '../shared/job/job-layout.js';
import { fingerprint } from '../shared/datasets/index.js';

/** Bytes of the job's shared-memory files for `workers` local workers (known before any joins). */
function shmFootprint(c: Config): number {
  const layout = jobLayout(c);
  return ShmChannel.footprint(layout.totalParams, c.workers, c.wireDtype, jobResultNodes(c, layout));
}
import { Progress } from './progress.js';
import { coordinatorWorker } from './coordinator-worker.js';
import { resolveAdvertise } from './advertise.js';
import { createCoordinator, openSession, trainWith, type ListenOptions, type Session } from './run-coordinator.js';

export interface TrainFlags extends JobFlags {
  fault?: string[];
  advertise?: string;
  joinTimeout?: number;
  listen?: { host: string; port: number };
  tokenFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  trace?: string;
  traceSteps?: [number, number];
  /** Slice shards (dptrain slice-shard), in slice order. */
  sliceShard?: string[];
}

/** --trace FILE [--trace-steps A:B] → what the coordinator needs to record it. */
export function traceOptions(f: TrainFlags): { tracer?: Tracer; traceFile?: string } {
  if (!f.trace) return {};
  const [from, to] = f.traceSteps ?? [1, 20];
  return { tracer: new Tracer(from, to), traceFile: resolve(f.trace) };
}

/** Where and how the coordinator listens; refuses a non-loopback address without a token. */
function listenOptions(f: TrainFlags, token: string | null): ListenOptions {
  const advertise = f.advertise ? resolveAdvertise(f.advertise) : undefined;
  const listen = f.listen ?? { host: advertise ?? '127.0.0.1', port: 7070 };
  if (!isLoopback(listen.host) && token === null) {
    fail(
      'CONFIG_INVALID',
      `--listen ${listen.host}: listening beyond this machine needs a job token; set DPTRAIN_TOKEN or --token-file (dptrain token makes one)`,
    );
  }
  if (Boolean(f.tlsCert) !== Boolean(f.tlsKey)) fail('CONFIG_INVALID', '--tls-cert and --tls-key go together');
  const tls = f.tlsCert && f.tlsKey ? readTlsPair(f.tlsCert, f.tlsKey) : undefined;
  return { ...listen, tls, token, advertise };
}

/** First signal: stop after the step in flight and checkpoint. Second: leave at once. */
export function handleSignals(c: Coordinator, s: Session, onHardExit: () => void): void {
  let count = 0;
  const on = (sig: NodeJS.Signals) => {
    count++;
    if (count === 1) {
      s.log.warn(
        { signal: sig },
        `${sig}: finishing the current step (abandoned after ${STOP_GRACE_MS / 1000} s, or at once with no worker left), then writing a checkpoint (again to quit at once)`,
      );
      c.requestStop(sig);
    } else {
      onHardExit();
      process.exit(130);
    }
  };
  process.on('SIGINT', on);
  process.on('SIGTERM', on);
}

/**
 * A new run whose budget cannot pay for one step is refused with the rest of the config, before
 * a run directory or a listener exists (the coordinator would refuse it only once started).
 */
export function refuseBudgetBelowOneStep(c: Config): void {
  const layout = jobLayout(c);
  const flops = modelKind(layout.spec).flops(layout);
  const meter = new ComputeMeter({
    trainFlopsPerSample: flops.training,
    evalFlopsPerSample: flops.forward,
    budget: budgetFlops(c.compute),
    policy: c.compute.budgetPolicy,
    log: silentLogger(),
  });
  if (c.steps > 0 && meter.stopsBefore(c.batchSize * c.accumulate)) fail('CONFIG_INVALID', meter.noStepLeft(false));
}

/** What a config asks that it cannot get, said once at the start (the run still goes on). */
function startWarnings(c: Config): string[] {
  const { warmupSteps, lr } = c.optimizer;
  return warmupSteps > c.steps
    ? [
        `optimizer.warmupSteps (${warmupSteps}) is more than steps (${c.steps}): the learning rate never reaches its peak ${lr}`,
      ]
    : [];
}

export async function openRun(
  command: TrainingCommand,
  f: TrainFlags,
  listen: ListenOptions | ((c: Config) => ListenOptions),
  check: (c: Config) => void = () => {},
) {
  const { config, resume, unused } = resolveRun(f, command);
  await prepareJob(config);
  check(config); // before anything is created
  if (!resume) refuseBudgetBelowOneStep(config); // a resumed one is judged by the coordinator, with what it used
  checkTrace(f, config.steps, resume?.state.step ?? 0); // the trace is written at the end: a bad path or window fails now
  // A requeued Slurm job without a checkpoint starts again in its own directory (runs/slurm-JOBID).
  const use = resume ? 'resume' : command === 'slurm' ? 'restart' : 'new';
  // config.json (and the dashboard) record --fault's faults with the file's; the coordinator, and
  // so the checkpoints a resume reads, keep the file's alone, as before.
  const recorded = f.fault?.length ? { ...config, faults: [...config.faults, ...f.fault] } : config;
  const s = await openSession(recorded, typeof listen === 'function' ? listen(config) : listen, use);
  for (const line of unused) s.log.warn(line);
  if (!resume) for (const line of startWarnings(config)) s.log.warn(line);
  if (resume) {
    for (const r of resume.rejected)
      s.log.warn({ path: r.path, reason: r.reason }, 'checkpoint unusable; trying the previous one');
    s.log.info({ path: resume.path, step: resume.state.step }, 'resuming from checkpoint');
    s.runDir.truncateMetrics(resume.state.step);
    s.dashboard.run.preload(readRunView(s.runDir.path, basename(s.runDir.path))); // the page shows the steps before the resume too
  }
  return { config, resume, s };
}

/** The local workers of `dptrain train`; when every one of them has exited on its own, the run cannot go on. */
function startLocal(
  config: Config,
  s: Session,
  token: string,
  shm: ShmChannel | null,
  onAllExited: (why: string) => void,
): LaunchedWorkers {
  const logs = (name: string) => s.runDir.workerLog(name);
  let exited = 0;
  // With a worker inside the coordinator, the processes are the others: they can all exit and
  // that one go on alone.
  const processes = config.coordinatorWorker ? config.workers - 1 : config.workers;
  return localLauncher(processes, undefined, config.workers - processes).start({
    address: s.listener.address,
    token,
    backend: { name: config.backend, allowSoftwareGpu: config.allowSoftwareGpu },
    logDir: logs,
    log: s.log,
    env: shm ? { DPTRAIN_SHM_DIR: shm.dir } : {},
    onExit: (e) => {
      exited++;
      if (e.stopped) return;
      const last = lastLine(logs(e.name));
      if (e.code !== 0)
        s.log.warn(
          { worker: e.name, code: e.code, signal: e.signal, log: logs(e.name), last },
          `worker process exited (${describeExit(e)})`,
        );
      if (exited === processes && !config.coordinatorWorker)
        onAllExited(
          `all ${config.workers} local workers exited; the last said: ${last || '(nothing)'} (logs in ${s.runDir.path}/workers)`,
        );
    },
  });
}

function lastLine(file: string): string {
  try {
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    return lines[lines.length - 1] ?? '';
  } catch {
    return '';
  }
}

/** A worker the run cannot go on without has stopped: the run ends, naming it. */
const lost = (coord: Coordinator) => (why: string) => coord.abort(new DptrainError('WORKER_LOST', why));
const couldNotStart = (coord: Coordinator) => (e: unknown) =>
  lost(coord)(`the coordinator's own worker could not start: ${describeError(e)}`);

export async function trainCommand(f: TrainFlags): Promise<number> {
  let faults: Fault[] = [];
  let dataFingerprint: string | null = null;
  // Local workers get a fresh token through their environment even when the user set none:
  // nobody else on this machine can join the job.
  const token = readToken(f.tokenFile) ?? newToken();
  const { config, resume, s } = await openRun('train', f, { host: '127.0.0.1', port: 0 }, (c) => {
    if (c.minWorkers > c.workers)
      fail(
        'CONFIG_INVALID',
        `minWorkers (${c.minWorkers}) is above workers (${c.workers}): training would pause at once`,
      );
    checkStartedWithin(c, c.workers, 'workers');
    // The workers read the files this process can: data they cannot use fails here, in one line,
    // not in every worker after the run has started.
    dataFingerprint = fingerprint(loadJobData(c));
    faults = [...c.faults, ...(f.fault ?? [])].map(parseFault);
    checkFaultNames(faults, localWorkerNames(c.workers, c.coordinatorWorker), c.steps);
    if (c.compression.kind !== 'none' && c.sharedMemory)
      fail(
        'CONFIG_INVALID',
        `compression ${c.compression.kind} saves bytes on a link, and local workers share memory: add --no-shared-memory, or leave compression off`,
      );
  });
  const progress = new Progress(config.steps);
  let inject: ((step: number) => void) | null = null;
  let shm: ShmChannel | null = null;
  if (config.sharedMemory) {
    // Twice the files' size, so a worker joining later still fits.
    const made = ShmChannel.create(2 * shmFootprint(config));
    if (typeof made === 'string')
      s.log.info(`shared memory off: ${made}; tensors go to the local workers through the socket`);
    else {
      shm = made;
      s.log.debug({ dir: shm.dir }, 'shared memory for local workers');
    }
  }
  const inside = config.coordinatorWorker ? coordinatorWorker(config, s.listener, s.runDir, token) : null;
  if (inside) s.listener = inside.listener;
  const coord = createCoordinator(config, s, progress, {
    datasetFingerprint: dataFingerprint,
    channels: [shm, inside?.channel ?? null].filter((c) => c !== null),
    ...traceOptions(f),
    token,
    resume: resume?.state,
    startWorkers: config.workers, // locally we know how many are coming: wait for all of them
    onStepStart: (step) => inject?.(step),
  });
  s.log.info({ workers: config.workers, runDir: s.runDir.path }, 'starting local workers');
  const workers = startLocal(config, s, token, shm, lost(coord));
  inside?.start(lost(coord)).catch(couldNotStart(coord));
  if (faults.length) inject = faultInjector(faults, workers, s.log);
  handleSignals(coord, s, () => {
    for (const w of workers.slots) workers.signal(w.name, 'SIGKILL');
    shm?.remove();
  });
  try {
    await trainWith(coord, s, progress);
    return 0;
  } finally {
    await workers.stop();
    shm?.remove();
  }
}

/**
 * `--backend`, `--allow-software-gpu` and `--no-shared-memory` say how the coordinator's own
 * worker computes: without one, they would be ignored (a joining worker picks its own backend).
 */
function refuseWithoutOwnWorker(f: TrainFlags, c: Config): void {
  if (c.coordinatorWorker) return;
  const given = [
    f.backend !== undefined && '--backend',
    f.allowSoftwareGpu && '--allow-software-gpu',
    f.sharedMemory === false && '--no-shared-memory',
  ].filter((x) => x);
  if (given.length)
    fail(
      'CONFIG_INVALID',
      `${given.join(', ')}: dptrain coordinator computes nothing itself without --coordinator-worker; workers that join choose their own (dptrain worker --backend)`,
    );
}

export async function coordinatorCommand(f: TrainFlags): Promise<number> {
  const token = readToken(f.tokenFile);
  const { config, resume, s } = await openRun('coordinator', f, listenOptions(f, token), (c) => {
    if (f.sliceShard?.length) checkSliceable(c);
    refuseWithoutOwnWorker(f, c);
  });
  s.log.info(
    { listen: s.listener.address, minWorkers: config.minWorkers, authenticated: token !== null },
    `workers join with: dptrain worker --connect ${s.workerAddress}${token ? ' (with the same DPTRAIN_TOKEN or --token-file)' : ''} ` +
      `(or --connect-file ${s.runDir.path}/coordinator.json)`,
  );
  const progress = new Progress(config.steps);
  const slices = await coordinatorSlices(f.sliceShard, config, token);
  const joinTimeoutMs = f.joinTimeout !== undefined ? f.joinTimeout * 1000 : undefined;
  const inside = config.coordinatorWorker ? coordinatorWorker(config, s.listener, s.runDir, token, f.sliceShard) : null;
  if (inside) s.listener = inside.listener;
  const coord = createCoordinator(config, s, progress, {
    channels: inside?.channel ? [inside.channel] : [],
    ...traceOptions(f),
    token,
    resume: resume?.state,
    joinTimeoutMs,
    slices,
    workersStay: true, // they joined on their own: interrupted, it leaves them waiting for the resume
  });
  inside?.start(lost(coord)).catch(couldNotStart(coord));
  handleSignals(coord, s, () => {});
  await trainWith(coord, s, progress);
  return 0;
}
