/**
 * `dptrain host-agent --connect ws://HOST:PORT --workers N`: the one link from this host to the
 * coordinator (worker/host-agent/). It starts N local workers behind it, on a loopback
 * listener and a shared-memory directory of its own, and serves the coordinator for them until
 * it says bye; it reconnects as a worker does when the coordinator goes away.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { listenWs } from '../coordinator/ws-listener.js';
import { isLoopback, newToken, readToken } from '../shared/wire/auth.js';
import { createLogger } from '../shared/util/log.js';
import { DptrainError, fail } from '../shared/util/errors.js';
import { ShmChannel } from '../shared/transport/shm.js';
import { runHostAgent } from '../worker/host-agent/host-agent.js';
import { readCa } from '../worker/ws-dialer.js';
import { describeExit } from './launch/contract.js';
import { localLauncher } from './launch/local.js';
import { checkJoinUrls, joinPeak, type JoinFlags } from './join-flags.js';
import { RejoinWindow } from './rejoin.js';
import { connect, readConnectFile } from './worker-cmd.js';
import { slicedToShards } from './slice-shard-cmd.js';

export interface HostAgentFlags extends JoinFlags {
  workers: number;
  backend: string;
  allowSoftwareGpu?: boolean;
  /** Where the host's workers connect (default 127.0.0.1, any free port). */
  listen: { host: string; port: number };
  sharedMemory: boolean;
  logDir?: string;
  /** Run by a coordinator's own launcher, which ends it through the coordinator (default: an IPC parent). */
  launched?: boolean;
}

/** Frames from the host's workers: results of up to 256M float32 values (they authenticate first). */
const LOCAL_MAX_FRAME = 1 << 30;

export async function hostAgentCommand(f: HostAgentFlags): Promise<number> {
  if (Boolean(f.connect) === Boolean(f.connectFile))
    fail('CONFIG_INVALID', 'give one of --connect ws://HOST:PORT or --connect-file RUN/coordinator.json');
  if (!(f.workers >= 1)) fail('CONFIG_INVALID', `--workers must be at least 1, got ${f.workers}`);
  checkJoinUrls(f);
  joinPeak(f); // refused here, once, not by each of the host's workers after they start
  if (f.connectFile) readConnectFile(f.connectFile); // a bad file is refused before the workers start
  if (!isLoopback(f.listen.host))
    fail('CONFIG_INVALID', `--listen ${f.listen.host}: the host's workers connect over loopback; use 127.0.0.1`);
  const name = f.name ?? `host-agent@${hostname()}`;
  const log = createLogger({ name });
  const token = readToken(f.tokenFile);
  const tls = readCa(f.ca);
  // The host's own workers prove a token of the agent's making: nobody else on the host joins.
  const localToken = newToken();
  const listener = await listenWs({ ...f.listen, maxPayload: LOCAL_MAX_FRAME });
  let shm: ShmChannel | null = null;
  if (f.sharedMemory) {
    const made = ShmChannel.create(0); // sized by the job, known only at the welcome: a full tmpfs falls back to the socket
    if (typeof made === 'string') log.info(`shared memory off: ${made}; the host's workers use their sockets`);
    else shm = made;
  }
  let finished = false;
  const logDir = f.logDir ?? join(tmpdir(), `dptrain-host-agent-${process.pid}`);
  mkdirSync(logDir, { recursive: true });
  let allExited: (why: string) => void = () => {};
  const lost = new Promise<never>((_, reject) => {
    allExited = (why) => reject(new DptrainError('WORKER_LOST', why));
  });
  lost.catch(() => {});
  let exited = 0;
  const workers = localLauncher(f.workers).start({
    address: listener.address,
    token: localToken,
    backend: { name: f.backend, allowSoftwareGpu: Boolean(f.allowSoftwareGpu) },
    logDir: (n) => join(logDir, `${n}.log`),
    log,
    env: shm ? { DPTRAIN_SHM_DIR: shm.dir } : {},
    // A peak declared per worker: the host's is their sum (a job-wide peak would count the host as one device).
    workerFlags: [
      '--reconnect-timeout',
      String(f.reconnectTimeout),
      ...(f.peakFlops ? ['--peak-flops', String(f.peakFlops)] : []),
      ...(f.device ? ['--device', f.device, '--precision', f.precision] : []),
    ],
    onExit: (e) => {
      exited++;
      if (e.stopped) return;
      log.warn({ worker: e.name, log: join(logDir, `${e.name}.log`) }, `host worker exited (${describeExit(e)})`);
      if (exited === f.workers)
        allExited(
          `${f.workers === 1 ? 'the 1 worker' : `all ${f.workers} workers`} of this host exited; their logs are in ${logDir}`,
        );
    },
  });
  log.info({ listen: listener.address, workers: f.workers, logs: logDir }, 'host agent started its workers');
  const cleanup = async () => {
    await workers.stop();
    await listener.close();
    shm?.remove();
  };
  if (f.launched ?? Boolean(process.send)) {
    // Started by a launcher beside its coordinator (dptrain launch, dptrain slurm): as a worker
    // there, stay on a signal until the coordinator has finished its step and checkpoint and
    // says bye (Slurm signals every task at once); the parent gone, leave.
    for (const sig of ['SIGINT', 'SIGTERM'] as const)
      process.on(sig, () => log.info(`${sig}: the coordinator will end this host agent`));
    process.on('disconnect', () => void cleanup().then(() => process.exit(1)));
  } else
    for (const sig of ['SIGINT', 'SIGTERM'] as const)
      process.once(sig, () => {
        // A launcher (ssh) ends its agents once the coordinator has said goodbye: the job is
        // done and the agent is already leaving, so that signal is no news.
        if (finished) {
          log.info(`${sig} after the job finished: leaving`);
          return;
        }
        log.warn(`${sig}: stopping the host's workers`);
        void cleanup().then(() => process.exit(130));
      });
  try {
    let timeoutSec = f.connectTimeout;
    const rejoin = new RejoinWindow(f.reconnectTimeout);
    // Until the host has once been ready, a session waits for every worker; after that (the host
    // rejoining) for the first back. A session turned away before it was ready (e.g. a coordinator
    // still dialing its slice shards) leaves the count as it was.
    let gather = f.workers;
    for (;;) {
      const { link: direct, url } = await Promise.race([connect(f, timeoutSec, log, tls), lost]);
      // With slice shards, parameters come from them and the host's summed gradients go to
      // them: the sliced link assembles and splits (worker/sliced-link.ts), as for a worker.
      const up = slicedToShards(direct, f.sliceShard, token) ?? direct;
      const began = Date.now();
      log.info({ coordinator: url }, 'connected');
      const session = runHostAgent({
        up,
        listener,
        name,
        log,
        token,
        localToken,
        jobId: f.job,
        shm,
        workers: gather,
      });
      const out = await Promise.race([
        session,
        lost.catch((e: Error) => {
          up.close(e.message, 'normal');
          return Promise.reject(e);
        }),
      ]);
      if (out.wasReady) gather = 1;
      const next = rejoin.after(out, url, began);
      if (!next) {
        finished = true;
        return 0;
      }
      log.warn({ reason: out.reason }, 'host agent left the coordinator; joining again');
      await new Promise((r) => setTimeout(r, 500));
      timeoutSec = next.leftSec;
    }
  } finally {
    await cleanup();
    // The workers' logs in a directory of our own making: kept when something failed, to read.
    if (finished && !f.logDir) rmSync(logDir, { recursive: true, force: true });
  }
}
