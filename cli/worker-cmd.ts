/**
 * `dptrain worker --connect ws://HOST:PORT`: pick a backend, connect (retrying while the
 * coordinator is not up yet), and serve the job until the coordinator says bye.
 */
import { slicedLink } from '../worker/sliced-link.js';
import { dialShards } from './slice-shard-cmd.js';
import { describeError, DptrainError, isDptrainError } from '../shared/util/errors.js';
import { readToken } from '../shared/wire/auth.js';
import { createLogger, type Logger } from '../shared/util/log.js';
import type { Link } from '../shared/transport/transport.js';
import type { BackendName } from '../shared/job/config.js';
import { selectBackend } from '../worker/backend.js';
import { runWorker } from '../worker/worker.js';
import { dialWs, readCa, type DialTls } from '../worker/ws-dialer.js';
import { hostname } from 'node:os';
import { devicePeak, type Precision } from '../shared/accounting/devices.js';

/** Frames from the coordinator: parameters of up to 256M float32 values. */
const WORKER_MAX_FRAME = 1 << 30;

export interface WorkerFlags {
  connect: string;
  backend: BackendName;
  allowSoftwareGpu?: boolean;
  name?: string;
  connectTimeout: number;
  reconnectTimeout: number;
  tokenFile?: string;
  ca?: string;
  job?: string;
  peakFlops?: number;
  device?: string;
  precision: Precision;
  /** The coordinator's slice shards, in its order. */
  sliceShard?: string[];
}

/** Connect, retrying with exponential backoff and jitter until `timeoutSec` has passed. */
async function connect(url: string, timeoutSec: number, log: Logger, tls: DialTls): Promise<Link> {
  const deadline = Date.now() + timeoutSec * 1000;
  let delay = 200;
  for (;;) {
    try {
      return await dialWs(url, WORKER_MAX_FRAME, { tls });
    } catch (e) {
      const wait = delay * (0.5 + Math.random()); // jitter: workers of a restarted coordinator do not all knock at once
      if (!isDptrainError(e, 'CONNECT_FAILED') || Date.now() + wait > deadline) throw e;
      log.debug({ error: describeError(e), retryMs: Math.round(wait) }, 'coordinator not reachable yet; retrying');
      await new Promise((r) => setTimeout(r, wait));
      delay = Math.min(5000, delay * 2);
    }
  }
}

export async function workerCommand(f: WorkerFlags): Promise<number> {
  const name = f.name ?? `${hostname()}-${process.pid}`;
  const log = createLogger({ name });
  const peakFlops = f.peakFlops ?? (f.device ? devicePeak(f.device, f.precision) : undefined);
  const token = readToken(f.tokenFile);
  const tls = readCa(f.ca);
  const backend = await selectBackend(f.backend, { allowSoftwareGpu: f.allowSoftwareGpu });
  log.info({ backend: backend.name, provider: backend.provider, why: backend.reason, adapter: backend.adapter }, 'backend selected');
  if (backend.probeOutput) log.debug({ dawn: backend.probeOutput }, 'what Dawn printed while looking for a GPU');
  if (process.send) {
    // Spawned by `dptrain train`: the parent decides when we stop. A Ctrl-C in the terminal
    // reaches the whole process group; the parent finishes its step and says bye. If the
    // parent itself is gone, the IPC channel closes and we leave.
    process.on('SIGINT', () => log.info('SIGINT: the coordinator will end this worker'));
    process.on('disconnect', () => process.exit(1));
  }
  // Set by `dptrain train` for its own workers: the coordinator's shared-memory directory.
  let shmDir = process.env.DPTRAIN_SHM_DIR || undefined;
  let timeoutSec = f.connectTimeout;
  let lostSince = 0; // when the current run of failed sessions began
  let pauseMs = 200;
  for (;;) {
    const direct = await connect(f.connect, timeoutSec, log, tls);
    const shards = f.sliceShard;
    const link = shards?.length ? slicedLink(direct, (total) => dialShards(shards, total), token) : direct;
    const began = Date.now();
    log.info({ coordinator: f.connect }, 'connected');
    const out = await runWorker({ link, backend, name, log, peakFlops, token, jobId: f.job, shmDir });
    if (out.shmFailed) shmDir = undefined; // later sessions use the socket
    if (out.finished) return 0;
    if (out.fatal) throw new DptrainError(out.fatal, out.reason); // one line, and the exit code says which
    // The coordinator went away without a goodbye (crash, restart) or turned us away for now:
    // find it again, backing off. A session that lasted a while resets the clock; short ones
    // (refused at once) do not, so this ends after --reconnect-timeout.
    if (Date.now() - began > 10_000 || lostSince === 0) {
      lostSince = Date.now();
      pauseMs = 200;
    }
    const left = f.reconnectTimeout * 1000 - (Date.now() - lostSince);
    if (left <= 0) throw new DptrainError('CONNECT_FAILED', `lost the coordinator at ${f.connect} (${out.reason}) and could not rejoin within ${f.reconnectTimeout} s`);
    log.warn({ reason: out.reason, retryInMs: Math.round(pauseMs) }, 'connection to the coordinator lost; reconnecting');
    await new Promise((r) => setTimeout(r, pauseMs * (0.5 + Math.random())));
    pauseMs = Math.min(10_000, pauseMs * 2);
    timeoutSec = Math.max(1, left / 1000);
  }
}
