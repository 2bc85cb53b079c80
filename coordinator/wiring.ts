/**
 * What a Coordinator is given, and how its parts are built from it: the membership that admits
 * workers, the dispatcher that hands them shards and collects their results, and the meter
 * that accounts their work against the budget.
 */
import { budgetFlops, jobOf, type Config } from '../shared/job/config.js';
import { jobLeaves } from '../shared/job/job-layout.js';
import { modelKind, type AnyLayout } from '../shared/models/index.js';
import type { Listener } from '../shared/transport/transport.js';
import type { PayloadChannel } from '../shared/transport/payload-channel.js';
import type { Logger } from '../shared/util/log.js';
import { ComputeMeter } from './accounting.js';
import { configHash, type CheckpointState } from './checkpoint.js';
import type { ResultDecoder } from './compression.js';
import { Dispatcher } from './dispatcher.js';
import { jobIdOf, Membership } from './membership.js';
import type { ReduceOps } from './reducer.js';
import type { RunDir } from './run-dir.js';
import type { RemoteSlices } from './slices/remote-slices.js';
import type { EvalRecord, StepRecord } from './summary.js';
import type { Tracer } from './trace.js';

export interface CoordinatorOptions {
  config: Config;
  listener: Listener;
  log: Logger;
  runDir: RunDir | null;
  /** Continue from this checkpoint instead of the initialization. */
  resume?: CheckpointState;
  /** Workers to wait for before the first step (default config.minWorkers). */
  startWorkers?: number;
  /** How long to wait for them (default 120 s). */
  joinTimeoutMs?: number;
  /** The names of the workers a launcher started: a join timeout says which never became ready. */
  expectedWorkers?: string[];
  /**
   * The workers joined on their own and outlive this process (`dptrain coordinator`): stopped
   * by a signal, it tells them it is going away, and they keep trying to rejoin a resumed run.
   * Otherwise (its own or a launcher's workers) it dismisses them with a bye.
   */
  workersStay?: boolean;
  onStep?: (r: StepRecord) => void;
  onEval?: (r: EvalRecord) => void;
  /** Called once the first shards of a step are sent (fault injection hooks in here). */
  onStepStart?: (step: number) => void;
  /** Record a Chrome trace of a window of steps; written to `traceFile` at the end. */
  tracer?: Tracer;
  traceFile?: string;
  /** The job token workers must prove they hold; null = none (loopback only). */
  token?: string | null;
  authTimeoutMs?: number;
  /**
   * Channels for tensor payloads, each granted to the workers that prove they hold it
   * (shared/transport/payload-channel.ts): shared-memory files for local worker processes,
   * memory for the worker inside the coordinator.
   */
  channels?: readonly PayloadChannel[];
  /** The job's dataset fingerprint, when this host could load the data (see Membership). */
  datasetFingerprint?: string | null;
  /** Slice shards that hold the parameters and optimizer state, and run the update (coordinator/slices/). */
  slices?: RemoteSlices | null;
}

export function membershipFor(
  o: CoordinatorOptions,
  layout: AnyLayout,
  landing?: Float32Array,
  decoder: ResultDecoder | null = null,
): Membership {
  const cfg = o.config;
  return new Membership(o.listener, {
    job: jobOf(cfg),
    jobId: jobIdOf(cfg, configHash(cfg)),
    totalParams: layout.totalParams,
    maxWorkers: cfg.maxWorkers,
    log: o.log,
    token: o.token ?? null,
    authTimeoutMs: o.authTimeoutMs,
    channels: o.channels ?? [],
    landing,
    fingerprint: o.datasetFingerprint ?? null,
    slicedResults: Boolean(o.slices),
    decoder,
  });
}

/** `stepsDone` tells which step an accepted result's trace span belongs to. */
export function dispatcherFor(
  o: CoordinatorOptions,
  layout: AnyLayout,
  membership: Membership,
  ops: ReduceOps,
  meter: ComputeMeter,
  stepsDone: () => number,
  /** The arena's spare slots, for results that wait (see Dispatcher). */
  arena: { spares?: readonly Float32Array[] } = {},
): Dispatcher {
  const cfg = o.config;
  return new Dispatcher({
    membership,
    log: o.log,
    totalParams: layout.totalParams,
    wireDtype: cfg.wireDtype,
    stepTimeoutMs: cfg.stepTimeoutSec * 1000,
    noWorkerTimeoutMs: Math.max(1, cfg.pauseTimeoutSec) * 1000,
    onWasted: (n) => meter.wasted(n),
    outlierFactor: cfg.outlierFactor,
    ops,
    spares: arena.spares,
    sliced: o.slices,
    leaves: jobLeaves(cfg, layout),
    onAccepted: (w, key, shard, ms, at) => {
      if (o.tracer?.records(stepsDone() + 1))
        o.tracer.span(
          `worker ${w.id} (${w.host})`,
          `${key.startsWith('eval') ? 'evaluate' : 'compute'} shard ${shard}`,
          at - ms,
          at,
          { key },
        );
    },
  });
}

/** The job's compute meter: its model's FLOPs per sample, against the job's budget. */
export function meterFor(o: CoordinatorOptions, layout: AnyLayout): ComputeMeter {
  const flops = modelKind(layout.spec).flops(layout);
  const { compute } = o.config;
  return new ComputeMeter({
    trainFlopsPerSample: flops.training,
    evalFlopsPerSample: flops.forward,
    budget: budgetFlops(compute),
    policy: compute.budgetPolicy,
    log: o.log,
  });
}
