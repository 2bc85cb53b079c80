/**
 * `dptrain worker --connect ws://HOST:PORT`: pick a backend, connect (retrying while the
 * coordinator is not up yet), and serve the job until the coordinator says bye.
 */
import { slicedToShards } from './slice-shard-cmd.js';
import { DptrainError, fail, isDptrainError } from '../shared/util/errors.js';
import { readFileSync } from 'node:fs';
import { preflight } from '../worker/preflight.js';
import type { CoordinatorFile } from './advertise.js';
import { readToken } from '../shared/wire/auth.js';
import { createLogger, type Logger } from '../shared/util/log.js';
import type { Link } from '../shared/transport/transport.js';
import type { BackendName } from '../shared/job/config.js';
import { selectBackend } from '../worker/backend.js';
import { runWorker } from '../worker/worker.js';
import { ShmChannel } from '../shared/transport/shm.js';
import { checkWsUrl, DialError, dialWs, readCa, type DialTls } from '../worker/ws-dialer.js';
import { hostname } from 'node:os';
import { checkJoinUrls, joinPeak, type JoinFlags } from './join-flags.js';
import { RejoinWindow } from './rejoin.js';

/** Frames from the coordinator: parameters of up to 256M float32 values. */
const WORKER_MAX_FRAME = 1 << 30;

export interface WorkerFlags extends JoinFlags {
  backend: BackendName;
  allowSoftwareGpu?: boolean;
}

/**
 * The address in a coordinator's RUN/coordinator.json, or null while there is none yet: the
 * file (or the run directory) not created yet, as when the coordinator is still starting.
 * The coordinator writes it atomically (cli/run-coordinator.ts: RunDir.writeJson, a rename), so
 * a file that is there is complete: one that cannot be read, is no JSON or has no ws:// address
 * will not mend by waiting, and is refused at once, naming --connect-file.
 */
export function readConnectFile(file: string): string | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    return fail(
      'CONFIG_INVALID',
      code === 'EISDIR'
        ? `--connect-file ${file} is a directory: give the coordinator's RUN/coordinator.json`
        : `--connect-file ${file}: cannot read it (${code ?? String(e)})`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return fail(
      'CONFIG_INVALID',
      `--connect-file ${file}: not valid JSON; give the coordinator.json a dptrain coordinator wrote in its run directory`,
    );
  }
  const address = (parsed as Partial<CoordinatorFile> | null)?.address;
  if (typeof address !== 'string' || !/^wss?:\/\//.test(address))
    fail(
      'CONFIG_INVALID',
      `--connect-file ${file}: no ws:// or wss:// "address" in it; give the coordinator.json a dptrain coordinator wrote in its run directory`,
    );
  return address;
}

/** Where to connect: --connect, or the address a coordinator wrote into its run directory (read again each try). */
function target(f: Pick<WorkerFlags, 'connect' | 'connectFile'>): string | null {
  return f.connect ? f.connect : readConnectFile(f.connectFile!);
}

/**
 * Connect, retrying with exponential backoff and jitter until `timeoutSec` has passed. Each try
 * first checks that the coordinator's address answers at all (worker/preflight.ts), so the line
 * a user sees names the address tried and why it failed.
 */
export async function connect(
  f: Pick<WorkerFlags, 'connect' | 'connectFile' | 'beforeTry'>,
  timeoutSec: number,
  log: Logger,
  tls: DialTls,
): Promise<{ link: Link; url: string }> {
  const deadline = Date.now() + timeoutSec * 1000;
  let delay = 200;
  let said = '';
  for (;;) {
    f.beforeTry?.();
    const url = target(f);
    let why: string;
    if (url === null) why = `--connect-file ${f.connectFile}: not written yet (is the coordinator starting?)`;
    else {
      checkWsUrl(url, f.connect ? '--connect' : `--connect-file ${f.connectFile}: address`);
      const pf = await preflight(url, Math.min(5000, Math.max(500, deadline - Date.now())));
      if (pf.ok) {
        try {
          return { link: await dialWs(url, WORKER_MAX_FRAME, { tls }), url };
        } catch (e) {
          if (!isDptrainError(e, 'CONNECT_FAILED')) throw e;
          // The certificate is the same on the next try: say now what to change.
          if (e instanceof DialError && e.permanent) throw e;
          why = e.message;
        }
      } else why = `cannot reach the coordinator at ${url}: tried ${pf.tried}: ${pf.why}`;
    }
    const wait = delay * (0.5 + Math.random()); // jitter: workers of a restarted coordinator do not all knock at once
    if (Date.now() + wait > deadline) throw new DptrainError('CONNECT_FAILED', `${why}; gave up after ${timeoutSec} s`);
    if (why !== said) log.warn({ retryForSec: Math.round((deadline - Date.now()) / 1000) }, `${why}; retrying`);
    said = why;
    await new Promise((r) => setTimeout(r, wait));
    delay = Math.min(5000, delay * 2);
  }
}

export async function workerCommand(f: WorkerFlags): Promise<number> {
  if (Boolean(f.connect) === Boolean(f.connectFile))
    fail('CONFIG_INVALID', 'give one of --connect ws://HOST:PORT or --connect-file RUN/coordinator.json');
  checkJoinUrls(f);
  const peakFlops = joinPeak(f);
  if (f.connectFile) readConnectFile(f.connectFile); // a bad file is refused now, not after loading a backend
  // In a Kubernetes Indexed Job, the pod's index is its rank.
  const index = process.env.JOB_COMPLETION_INDEX;
  const name =
    f.name ?? (index !== undefined && index !== '' ? `rank${index}@${hostname()}` : `${hostname()}-${process.pid}`);
  const log = createLogger({ name });
  const token = readToken(f.tokenFile);
  const tls = readCa(f.ca);
  const backend = await selectBackend(f.backend, { allowSoftwareGpu: f.allowSoftwareGpu });
  log.info(
    { backend: backend.name, provider: backend.provider, why: backend.reason, adapter: backend.adapter },
    'backend selected',
  );
  if (backend.probeOutput) log.debug({ dawn: backend.probeOutput }, 'what Dawn printed while looking for a GPU');
  let inSession = false;
  if (process.send) {
    // Spawned by `dptrain train`: the parent decides when we stop. A Ctrl-C in the terminal
    // reaches the whole process group; the parent finishes its step and says bye. If the
    // parent itself is gone, the IPC channel closes and we leave.
    // SIGTERM too: Slurm signals every task of a step at once, and the coordinator needs its
    // workers to finish the step it checkpoints.
    // Outside a session (not yet connected, or reconnecting) there is no goodbye to wait for: a
    // launcher's TERM then ends this worker at once, not after its grace period.
    for (const sig of ['SIGINT', 'SIGTERM'] as const)
      process.on(sig, () => {
        if (sig === 'SIGTERM' && !inSession) {
          log.info('SIGTERM outside a session with the coordinator: leaving');
          process.exit(143);
        }
        log.info(`${sig}: the coordinator will end this worker`);
      });
    process.on('disconnect', () => process.exit(1));
  }
  // Set by `dptrain train` for its own workers: the coordinator's shared-memory directory.
  let shmDir = process.env.DPTRAIN_SHM_DIR || undefined;
  let timeoutSec = f.connectTimeout;
  const rejoin = new RejoinWindow(f.reconnectTimeout);
  let pauseMs = 200;
  for (;;) {
    const { link: direct, url } = await connect(f, timeoutSec, log, tls);
    const sliced = slicedToShards(direct, f.sliceShard, token);
    const link = sliced ?? direct;
    const began = Date.now();
    log.info({ coordinator: url }, 'connected');
    const sendResult = sliced?.sendResult;
    const payloads = shmDir ? ShmChannel.offer(shmDir) : undefined;
    inSession = true;
    const out = await runWorker({ link, backend, name, log, peakFlops, token, jobId: f.job, payloads, sendResult });
    inSession = false;
    if (out.shmFailed) shmDir = undefined; // later sessions use the socket
    // Finished, refused, or the coordinator went away without a goodbye (crash, restart) or
    // turned us away for now: then find it again, backing off.
    const next = rejoin.after(out, url, began);
    if (!next) return 0;
    if (next.restarted) pauseMs = 200;
    log.warn(
      { reason: out.reason, retryInMs: Math.round(pauseMs) },
      'connection to the coordinator lost; reconnecting',
    );
    await new Promise((r) => setTimeout(r, pauseMs * (0.5 + Math.random())));
    pauseMs = Math.min(10_000, pauseMs * 2);
    timeoutSec = next.leftSec;
  }
}
