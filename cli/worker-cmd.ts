/**
 * `dptrain worker --connect ws://HOST:PORT`: pick a backend, connect (retrying while the
 * coordinator is not up yet), and serve the job until the coordinator says bye.
 */
import { describeError, isDptrainError } from '../shared/errors.js';
import { createLogger } from '../shared/log.js';
import type { BackendName } from '../shared/config.js';
import { selectBackend } from '../worker/backend.js';
import { runWorker } from '../worker/worker.js';
import { dialWs } from '../worker/ws-dialer.js';
import { hostname } from 'node:os';
import { devicePeak, type Precision } from '../shared/accounting/devices.js';

/** Frames from the coordinator: parameters of up to 256M float32 values. */
const WORKER_MAX_FRAME = 1 << 30;

export interface WorkerFlags {
  connect: string;
  backend: BackendName;
  name?: string;
  connectTimeout: number;
  peakFlops?: number;
  device?: string;
  precision: Precision;
}

export async function workerCommand(f: WorkerFlags): Promise<number> {
  const name = f.name ?? `${hostname()}-${process.pid}`;
  const log = createLogger({ name });
  const peakFlops = f.peakFlops ?? (f.device ? devicePeak(f.device, f.precision) : undefined);
  const backend = await selectBackend(f.backend);
  log.info({ backend: backend.name, provider: backend.provider, why: backend.reason }, 'backend selected');
  const deadline = Date.now() + f.connectTimeout * 1000;
  let delay = 200;
  for (;;) {
    try {
      const link = await dialWs(f.connect, WORKER_MAX_FRAME);
      log.info({ coordinator: f.connect }, 'connected');
      const out = await runWorker({ link, backend, name, log, peakFlops });
      if (out.finished) return 0;
      log.error({ reason: out.reason }, 'connection to the coordinator ended');
      return 1;
    } catch (e) {
      if (!isDptrainError(e, 'CONNECT_FAILED') || Date.now() + delay > deadline) throw e;
      log.debug({ error: describeError(e), retryMs: delay }, 'coordinator not reachable yet; retrying');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(5000, delay * 2);
    }
  }
}
