/**
 * `--coordinator-worker` (`dptrain train`, `dptrain coordinator`): one of the job's workers runs
 * inside the coordinator's process, as rank 0 of a DDP job computes beside its rendezvous. It
 * joins through an in-process link like any other worker (the same handshake, shards and
 * results), so a step wakes one process fewer and hands work between CPUs once less. Its payloads
 * go through slots in this process's memory (shared/transport/memory-channel.ts), not through
 * files: the coordinator's thread, which computes this worker's shard, is the step's critical
 * path, and a copy in memory is the cheapest hand-over there is.
 * Its compute runs on the coordinator's event loop: a result that arrives meanwhile waits in its
 * socket, which costs nothing, since the step needs every shard before it can go on. Nor do pings
 * go out meanwhile: before work that may hold the thread past a joining worker's silence limit,
 * the listener tells the joining workers to wait (Listener.holdingThread).
 */
import { createLocalNetwork } from '../shared/transport/local.js';
import type { Link, Listener } from '../shared/transport/transport.js';
import { createLogger } from '../shared/util/log.js';
import { describeError, fail } from '../shared/util/errors.js';
import type { Config } from '../shared/job/config.js';
import { selectBackend } from '../worker/backend.js';
import { runWorker, type ThreadHold } from '../worker/worker.js';
import { RejoinWindow } from './rejoin.js';
import { MemoryChannel } from '../shared/transport/memory-channel.js';
import { slicedToShards } from './slice-shard-cmd.js';
import type { RunDir } from '../coordinator/run-dir.js';

/**
 * Work of a kind whose last run took less than this goes without a notice: a ping to every peer
 * on each short step would cost more than it protects (the peers' limit is SILENCE_MS, 90 s).
 * The first of each kind (kernels compile, data loads) always gets one.
 */
const HOLD_NOTICE_AFTER_MS = 1000;

/** Its name (with `train`, the local processes are worker-1 onwards). */
export const COORDINATOR_WORKER = 'worker-0';

/** Before joining again: the coordinator's close has been handled on its side by then. */
const REJOIN_PAUSE_MS = 50;

/** How long it keeps joining again after losing its session (a worker's --reconnect-timeout). */
const REJOIN_WINDOW_SEC = 60;

/** The address and the links of `outer`, plus the links of an in-process network. */
function withLocalLinks(outer: Listener): { listener: Listener; dial: () => Promise<Link> } {
  const net = createLocalNetwork();
  const listener: Listener = {
    address: outer.address,
    onLink: (h) => {
      outer.onLink(h);
      net.listener.onLink(h);
    },
    close: async () => {
      await net.listener.close();
      await outer.close();
    },
  };
  return { listener, dial: net.dial };
}

export interface CoordinatorWorker {
  /** What the coordinator listens on: the session's listener, and the in-process worker's link. */
  listener: Listener;
  /** The channel its payloads go through, to grant it (null with `sharedMemory: false`: in frames; with slice shards: theirs). */
  channel: MemoryChannel | null;
  /** Select the backend, join, and serve until the coordinator says bye; `onFailed` if it stops before. */
  start(onFailed: (why: string) => void): Promise<void>;
}

export function coordinatorWorker(
  config: Config,
  outer: Listener,
  runDir: RunDir,
  token: string | null,
  /** `dptrain coordinator --slice-shard`: it takes parameters from the shards and sends them its gradients, as any worker. */
  sliceShards: readonly string[] = [],
): CoordinatorWorker {
  const { listener, dial } = withLocalLinks(outer);
  const channel = config.sharedMemory && !sliceShards.length ? new MemoryChannel() : null;
  return {
    listener,
    channel,
    async start(onFailed) {
      const name = COORDINATOR_WORKER;
      const log = createLogger({ name, terminal: { file: runDir.workerLog(name) } });
      const backend = await selectBackend(config.backend, { allowSoftwareGpu: config.allowSoftwareGpu });
      log.info({ backend: backend.name, provider: backend.provider, why: backend.reason }, 'backend selected');
      let payloads = channel?.offer();
      const stopped = (why: string) => onFailed(`the coordinator's own worker (${name}) stopped: ${why}`);
      // Serve; after a close worth another session (e.g. "reconnect without shared memory") join
      // again, within the window a worker process would have.
      const rejoin = new RejoinWindow(REJOIN_WINDOW_SEC);
      const holdsThread = holdNotices(outer);
      for (;;) {
        const began = Date.now();
        const direct = await dial();
        const sliced = slicedToShards(direct, sliceShards, token);
        const link = sliced ?? direct;
        const sendResult = sliced?.sendResult;
        const out = await runWorker({ link, backend, name, log, token, payloads, sendResult, holdsThread }).catch(
          (e: unknown) => ({
            finished: false,
            fatal: 'RUN_FAILED' as const,
            reason: describeError(e),
            shmFailed: false,
          }),
        );
        if (out.shmFailed) payloads = undefined;
        try {
          if (!rejoin.after(out, 'this process', began)) return;
        } catch (e) {
          return stopped(describeError(e));
        }
        log.warn({ reason: out.reason }, 'session with the coordinator ended; joining again');
        await new Promise((r) => setTimeout(r, REJOIN_PAUSE_MS));
      }
    },
  };
}

/** Runs work on this thread, first telling `outer`'s peers when it may last (the last of its kind took long, or it is the first). */
export function holdNotices(
  outer: Pick<Listener, 'holdingThread'>,
  afterMs = HOLD_NOTICE_AFTER_MS,
): <T>(kind: ThreadHold, work: () => Promise<T>) => Promise<T> {
  const lastMs = new Map<ThreadHold, number>();
  return async (kind, work) => {
    if ((lastMs.get(kind) ?? Number.POSITIVE_INFINITY) >= afterMs) outer.holdingThread?.();
    const t0 = performance.now();
    try {
      return await work();
    } finally {
      lastMs.set(kind, performance.now() - t0);
    }
  };
}

/** `launch` and `slurm` start every worker as a process of its own: a config asking otherwise is refused, not ignored. */
export function refuseCoordinatorWorker(c: Config, command: string): void {
  if (c.coordinatorWorker)
    fail(
      'CONFIG_INVALID',
      `coordinatorWorker: ${command} starts every worker as a process of its own; a worker inside the coordinator is for dptrain train and dptrain coordinator (set it to false)`,
    );
}
