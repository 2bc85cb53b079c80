/**
 * Run a coordinator to completion with the terminal and run-directory wiring around it; used by
 * both `dptrain train` (with local workers) and `dptrain coordinator` (with remote ones).
 */
import type { RemoteSlices } from '../coordinator/slices/remote-slices.js';
import type { PayloadChannel } from '../shared/transport/payload-channel.js';
import { Coordinator } from '../coordinator/coordinator.js';
import { RunDir, type RunDirUse } from '../coordinator/run-dir.js';
import type { RunSummary } from '../coordinator/summary.js';
import { listenWs } from '../coordinator/ws-listener.js';
import type { Config } from '../shared/job/config.js';
import { fingerprint } from '../shared/datasets/index.js';
import { describeError, DptrainError, fail } from '../shared/util/errors.js';
import { createLogger, type Logger } from '../shared/util/log.js';
import { jobLayout, jobResultNodes, loadJobData } from '../shared/job/job-layout.js';
import type { Listener } from '../shared/transport/transport.js';
import { formatSummary, type Progress } from './progress.js';
import { PromMetrics } from '../coordinator/prometheus.js';
import type { CheckpointState } from '../coordinator/checkpoint.js';
import type { Tracer } from '../coordinator/trace.js';
import { basename } from 'node:path';
import { appendFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { workerAddress, type CoordinatorFile } from './advertise.js';
import { Dashboard } from '../coordinator/dashboard/server.js';
import { LiveRun } from '../coordinator/dashboard/live.js';
import { isLoopback } from '../shared/wire/auth.js';

/** Frames carry one float32 per parameter (per tree node, in a result) plus a header of well under 64 KiB. */
export function maxFrameBytes(config: Config): number {
  const layout = jobLayout(config);
  return jobResultNodes(config, layout) * layout.totalParams * 4 + (1 << 16);
}

export interface Session {
  runDir: RunDir;
  /** The address workers dial (the advertised one; see cli/advertise.ts). */
  workerAddress: string;
  log: Logger;
  listener: Listener;
  metrics: PromMetrics;
  dashboard: Dashboard;
}

export interface ListenOptions {
  host: string;
  port: number;
  tls?: { cert: Buffer; key: Buffer };
  /** The job token: beyond loopback the dashboard asks for it. */
  token?: string | null;
  /** The host workers are told, when not the one bound (--advertise). */
  advertise?: string;
}

export async function openSession(config: Config, listen: ListenOptions, use: RunDirUse = 'new'): Promise<Session> {
  const runDir = RunDir.claim(config.out ?? RunDir.defaultPath(), use, use === 'resume' ? '--resume' : '--out');
  const live = new LiveRun(basename(runDir.path), config as unknown as Record<string, unknown>, config.steps);
  const log = createLogger({ name: 'coordinator', file: runDir.logFile, tap: (line) => live.onLogLine(line) });
  const metrics = new PromMetrics();
  const dashboard = new Dashboard(
    live,
    { requireLogin: !isLoopback(listen.host), token: listen.token ?? null, secure: Boolean(listen.tls) },
    basename(runDir.path),
  );
  const { token: _token, advertise, ...where } = listen;
  const listener = await listenWs({
    ...where,
    maxPayload: maxFrameBytes(config),
    http: (req, res) => metrics.handler(req, res) || dashboard.handler(req, res),
  });
  runDir.writeJson('config.json', config);
  const workerAddress = advertisedAt(runDir, listener.address, advertise);
  const base = listener.address.replace(/^ws/, 'http');
  log.info({ url: `${base}/metrics` }, 'Prometheus metrics');
  log.info({ url: `${base}/`, login: dashboard.requiresLogin ? 'job token' : undefined }, 'dashboard');
  return { runDir, workerAddress, log, listener, metrics, dashboard };
}

/** RUN/coordinator.json: where workers find this coordinator (port 0 resolved). */
function advertisedAt(runDir: RunDir, bound: string, advertise?: string): string {
  const address = workerAddress(bound, advertise);
  const file: CoordinatorFile = {
    address,
    listen: bound,
    port: Number(new URL(bound).port),
    pid: process.pid,
    host: hostname(),
  };
  runDir.writeJson('coordinator.json', file);
  return address;
}

export interface CoordinatorExtras {
  channels?: readonly PayloadChannel[];
  tracer?: Tracer;
  traceFile?: string;
  token?: string | null;
  resume?: CheckpointState;
  startWorkers?: number;
  expectedWorkers?: string[];
  joinTimeoutMs?: number;
  workersStay?: boolean;
  onStepStart?: (step: number) => void;
  slices?: RemoteSlices | null;
  /** The data as this host loaded it already (`dptrain train`, whose workers read the same files). */
  datasetFingerprint?: string | null;
}

/**
 * The job's dataset fingerprint, from the data as this host has it: workers whose data differs
 * are refused, whoever joins first. A coordinator that cannot load the data (its files live on
 * the workers' hosts only) falls back to the first ready worker's, and says so.
 */
function jobFingerprint(config: Config, log: Logger): string | null {
  try {
    return fingerprint(loadJobData(config));
  } catch (e) {
    log.warn(
      { error: describeError(e) },
      "the coordinator cannot load the job's data; the first worker to be ready sets the dataset every other must match",
    );
    return null;
  }
}

export function createCoordinator(
  config: Config,
  s: Session,
  progress: Progress,
  extras: CoordinatorExtras = {},
): Coordinator {
  const c = new Coordinator({
    datasetFingerprint:
      extras.datasetFingerprint !== undefined ? extras.datasetFingerprint : jobFingerprint(config, s.log),
    ...extras,
    config,
    listener: s.listener,
    log: s.log,
    runDir: s.runDir,
    onStep: (r) => {
      progress.step(r);
      s.metrics.onStep(r);
      s.dashboard.run.onStep(r);
    },
    onEval: (r) => {
      progress.eval(r);
      s.metrics.onEval(r);
      s.dashboard.run.onEval(r);
      s.log.info({ step: r.step, testLoss: +r.testLoss.toFixed(5), testAccuracy: r.testAccuracy }, 'evaluation');
    },
  });
  s.metrics.attach(c);
  s.dashboard.run.attach(c);
  return c;
}

export async function trainWith(coordinator: Coordinator, s: Session, progress: Progress): Promise<RunSummary> {
  let summary: RunSummary | null = null;
  try {
    summary = await coordinator.run();
    progress.done();
    const how =
      summary.stoppedBy === 'budget'
        ? `stopped at the compute budget after ${summary.steps} steps (model saved)`
        : 'training finished';
    process.stdout.write(`\ndptrain: ${how}\n${formatSummary(summary, s.runDir.path)}\n`);
    checkLearned(summary);
    return summary;
  } catch (e) {
    recordFailure(s, e);
    // A launcher's workers would otherwise take the closing listener for a crash and try to rejoin until killed.
    coordinator.dismissAfterFailure(`run ended: ${e instanceof Error ? e.message : String(e)}`);
    throw e;
  } finally {
    progress.done();
    s.dashboard.run.finish(summary);
    s.dashboard.run.close();
    await s.listener.close();
  }
}

/** A run whose every step was skipped learned nothing: it fails, so a script does not take it for a trained model. */
export function checkLearned(summary: Pick<RunSummary, 'steps' | 'skippedSteps'>): void {
  if (summary.steps > 0 && summary.skippedSteps === summary.steps)
    fail(
      'RUN_FAILED',
      `every step (${summary.steps}) was skipped for a non-finite loss or gradient: check the data for values a float32 cannot hold and the model's outputs, or lower optimizer.lr`,
    );
}

/**
 * How the run ended, in its log.jsonl and on the dashboard: the terminal gets it once, from the
 * command's own error line, so it goes to the file (and the page) only.
 */
function recordFailure(s: Session, e: unknown): void {
  const line = JSON.stringify({
    level: 50,
    time: Date.now(),
    name: 'coordinator',
    code: e instanceof DptrainError ? e.code : 'RUN_FAILED',
    msg: `run ended: ${e instanceof Error ? e.message : String(e)}`,
  });
  try {
    appendFileSync(s.runDir.logFile, `${line}\n`);
  } catch {
    // the directory is gone: the terminal still says it
  }
  s.dashboard.run.onLogLine(line);
}
