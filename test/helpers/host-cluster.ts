/**
 * A coordinator, host agents and workers in one process over the in-process transport: the
 * workers of each host behind its agent (worker/host-agent/), or every worker on the
 * coordinator directly. Counts what crosses each host's link to the coordinator, by message type.
 */
import * as tf from '@tensorflow/tfjs';
import { pino } from 'pino';
import { Coordinator } from '../../coordinator/coordinator.js';
import type { RunSummary, StepRecord } from '../../coordinator/summary.js';
import type { Config } from '../../shared/job/config.js';
import { createLocalNetwork } from '../../shared/transport/local.js';
import { ShmChannel } from '../../shared/transport/shm.js';
import type { Dial, Link } from '../../shared/transport/transport.js';
import { decodeFrame } from '../../shared/wire/codec.js';
import type { WorkerOutcome } from '../../worker/coordinator-session.js';
import { runWorker } from '../../worker/worker.js';
import { runHostAgent } from '../../worker/host-agent/host-agent.js';

const log = pino({ level: 'silent' });
const CPU = { name: 'cpu', provider: 'test', reason: 'test' } as const;

/** Frames and bytes by message type, each way, on one link. */
export interface LinkTally {
  up: Record<string, { frames: number; bytes: number }>;
  down: Record<string, { frames: number; bytes: number }>;
}

function tallied(link: Link, t: LinkTally): Link {
  const note = (side: LinkTally['up'], f: Uint8Array) => {
    const type = (decodeFrame(f).header as { t: string }).t;
    side[type] ??= { frames: 0, bytes: 0 };
    const e = side[type];
    e.frames++;
    e.bytes += f.byteLength;
  };
  return {
    remote: link.remote,
    send: (f) => {
      note(t.up, f);
      link.send(f);
    },
    close: (r, k) => link.close(r, k),
    onFrame: (h) =>
      link.onFrame((f) => {
        note(t.down, f);
        h(f);
      }),
    onClose: (h) => link.onClose(h),
  };
}

/** Dial until the other end listens (an agent opens its listener once the coordinator welcomed it). */
async function dialWhenUp(dial: Dial): Promise<Link> {
  for (;;) {
    try {
      return await dial();
    } catch {
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

export interface HostRun {
  summary: RunSummary;
  params: Float32Array;
  records: StepRecord[];
  /** Per host with an agent: its link to the coordinator, and its workers' links to it. */
  hostLinks: LinkTally[];
  localLinks: LinkTally[][];
  /** The links of the workers behind agents (host, worker), and of direct workers, to close in tests. */
  workerLinks: Link[][];
  directLinks: Link[];
  agentLinks: Link[];
  outcomes: Promise<WorkerOutcome[]>;
  /** Start one more worker behind host h's agent (mid-run: a worker back, or one more). */
  joinHost(h: number): void;
}

export interface HostLayout {
  /** Workers behind each host's agent. */
  hosts: number[];
  /** Workers on the coordinator directly. */
  direct: number;
  /** Give each agent a shared-memory directory under this root for its workers' payloads. */
  shmRoot?: string;
  /** Called after each step with the run so far (to close links mid-run). */
  onStep?: (r: StepRecord, run: HostRun) => void;
}

export async function hostRun(cfg: Config, layout: HostLayout): Promise<HostRun> {
  await tf.setBackend('cpu');
  const net = createLocalNetwork();
  const members = layout.hosts.length + layout.direct;
  const run: HostRun = {
    summary: null as unknown as RunSummary,
    params: new Float32Array(0),
    records: [],
    hostLinks: [],
    localLinks: [],
    workerLinks: [],
    directLinks: [],
    agentLinks: [],
    outcomes: Promise.resolve([]),
    joinHost: (h) => {
      const { dial, shmDir } = hostDials[h];
      const n = run.workerLinks[h].length;
      void dial().then((link) => {
        run.workerLinks[h].push(link);
        worker(link, `h${h}w${n}`, shmDir);
      });
    },
  };
  const hostDials: Array<{ dial: () => Promise<Link>; shmDir?: string }> = [];
  const coord = new Coordinator({
    config: cfg,
    listener: net.listener,
    log,
    runDir: null,
    startWorkers: members,
    onStep: (r) => {
      run.records.push(r);
      layout.onStep?.(r, run);
    },
  });
  const outcomes: Array<Promise<WorkerOutcome>> = [];
  const shms: Array<ShmChannel | null> = [];
  const worker = (link: Link, name: string, shmDir?: string) =>
    outcomes.push(
      runWorker({
        link,
        backend: CPU,
        name,
        log,
        token: null,
        payloads: shmDir ? ShmChannel.offer(shmDir) : undefined,
      }),
    );
  for (const [h, n] of layout.hosts.entries()) {
    const local = createLocalNetwork();
    const tally: LinkTally = { up: {}, down: {} };
    run.hostLinks.push(tally);
    const up = tallied(await net.dial(), tally);
    run.agentLinks.push(up);
    const made = layout.shmRoot ? ShmChannel.create(0, layout.shmRoot) : null;
    if (typeof made === 'string') throw new Error(made);
    const shm = made;
    shms.push(shm);
    hostDials.push({ dial: local.dial, shmDir: shm?.dir });
    outcomes.push(runHostAgent({ up, listener: local.listener, name: `agent${h}`, log, token: null, shm, workers: n }));
    const links: Link[] = [];
    const tallies: LinkTally[] = [];
    for (let i = 0; i < n; i++) {
      const t: LinkTally = { up: {}, down: {} };
      const link = tallied(await dialWhenUp(local.dial), t);
      links.push(link);
      tallies.push(t);
      worker(link, `h${h}w${i}`, shm?.dir);
    }
    run.workerLinks.push(links);
    run.localLinks.push(tallies);
  }
  for (let i = 0; i < layout.direct; i++) {
    const link = await net.dial();
    run.directLinks.push(link);
    worker(link, `d${i}`);
  }
  try {
    run.summary = await coord.run();
  } finally {
    for (const c of shms) c?.remove();
  }
  run.params = coord.params.slice();
  run.outcomes = Promise.all(outcomes);
  return run;
}
