/**
 * Who the loop can count on: waiting for enough eligible workers (at the start, or while paused),
 * naming the ones a launcher started that never became ready, and remembering the peak FLOP/s
 * of workers that left so the steps they contributed to can still be accounted.
 */
import { fail } from '../shared/util/errors.js';
import type { Logger } from '../shared/util/log.js';
import type { Membership } from './membership.js';
import type { WorkerSession } from './worker-session.js';
import { eligible } from './phase.js';

export interface WaitContext {
  membership: Membership;
  log: Logger;
  listen: string;
  step: number;
  /** The names of the workers a launcher started (a timeout says which never became ready). */
  expected?: string[];
  /** Throws when a stop was requested (called before every wait). */
  checkStop(): void;
  /** Wraps a wait so that an abort of the run ends it. */
  abortable<T>(p: Promise<T>): Promise<T>;
  /** Written when a pause times out: a path to resume from, or null. */
  checkpoint(): string | null;
  resumeDir: string | null;
}

/** Wait until `need` workers are eligible, logging every 5 s; fail after `timeoutMs`. */
export async function waitForWorkers(c: WaitContext, need: number, timeoutMs: number, what: string): Promise<void> {
  const start = Date.now();
  while (eligible(c.membership).length < need) {
    c.checkStop();
    const have = eligible(c.membership).length;
    if (Date.now() - start >= timeoutMs) {
      const written = what === 'paused' ? c.checkpoint() : null;
      fail(
        'WORKER_LOST',
        `${what}: only ${have} of ${need} workers ready for ${Math.round(timeoutMs / 1000)} ` +
          `s${notReady(c.membership, c.expected)}` +
          (written ? `; checkpoint at step ${c.step} written, continue with --resume ${c.resumeDir}` : ''),
      );
    }
    const fields = { ready: have, need, step: c.step, listen: c.listen };
    if (what === 'paused') c.log.warn(fields, `training paused: ${have} of ${need} workers ready`);
    else c.log.info(fields, 'waiting for workers');
    await c
      .abortable(nextReady(c.membership, Math.min(5000, Math.max(1, timeoutMs - (Date.now() - start)))))
      .catch((e: unknown) => {
        c.checkStop(); // a stop that ended the wait checkpoints and ends the run as a stop
        throw e;
      });
  }
}

/** Resolves when a worker becomes ready, or after `ms`. */
function nextReady(m: Membership, ms: number): Promise<void> {
  return new Promise<void>((res) => {
    const done = () => {
      clearTimeout(t);
      m.off('ready', done);
      res();
    };
    const t = setTimeout(done, ms);
    m.on('ready', done);
  });
}

/**
 * Of the workers a launcher started: "; not ready: rank2@host2 (connected, loading), rank3@host2
 * (never connected)". Without such a list (workers joining on their own), who came:
 * "; ready: w-a (host1); loading: w-b (host2)", or "; no worker connected".
 */
export function notReady(m: Membership, expected: readonly string[] | undefined): string {
  if (!expected?.length) return whoCame(m);
  const ready = new Set(eligible(m).map((w) => w.name));
  const seen = new Map(m.all().map((w) => [w.name, w.state]));
  const out = expected
    .filter((n) => !ready.has(n))
    .map((n) => `${n} (${seen.has(n) ? `connected, ${seen.get(n)}` : 'never connected'})`);
  return out.length ? `; not ready: ${out.join(', ')}` : '';
}

function whoCame(m: Membership): string {
  const named = (state: string) =>
    m
      .all()
      .filter((w) => w.state === state)
      .map((w) => `${w.name} (${w.host})`);
  const ready = eligible(m).map((w) => `${w.name} (${w.host})`);
  const parts = [
    ready.length ? `ready: ${ready.join(', ')}` : '',
    named('loading').length ? `loading: ${named('loading').join(', ')}` : '',
    named('hello').length ? `${named('hello').length} connection(s) not yet authenticated` : '',
  ].filter((p) => p);
  return parts.length ? `; ${parts.join('; ')}` : '; no worker connected';
}

/**
 * The peak FLOP/s and process count (a host agent's workers) of members that left, so that a
 * step they contributed to can still be accounted: only what that needs, and only for the steps
 * in flight when they left.
 */
export class DepartedPeaks {
  private readonly byId = new Map<string, { peak: number; atStep: number; workers: number }>();

  constructor(private readonly maxWorkers: number) {}

  left(id: string, peak: number, step: number, workers = 1): void {
    this.byId.set(id, { peak, atStep: step, workers });
    // A worker can have results in the step in flight and a prefetched one, no earlier; and
    // however many come and go while paused, only the latest maxWorkers can matter.
    for (const [k, d] of this.byId) if (d.atStep < step - 1 || this.byId.size > this.maxWorkers) this.byId.delete(k);
  }

  peak(id: string): number | undefined {
    return this.byId.get(id)?.peak;
  }

  workers(id: string): number | undefined {
    return this.byId.get(id)?.workers;
  }

  get size(): number {
    return this.byId.size;
  }

  /** The step each remembered worker left at. */
  steps(): number[] {
    return [...this.byId.values()].map((d) => d.atStep);
  }
}

/**
 * The peak a member counts with, and its processes, whether it is still here or left while a
 * step it computed in was in flight: its own declaration, the job's (per device: a host agent's
 * workers each), or its measured figure.
 */
export class MemberPeaks {
  readonly departed: DepartedPeaks;

  constructor(
    private readonly membership: Membership,
    /** The job's declared peak per device (compute.peakFlops or .device); null: none. */
    private readonly perDevice: number | null,
    maxWorkers: number,
  ) {
    this.departed = new DepartedPeaks(maxWorkers);
  }

  of(w: WorkerSession | undefined): number {
    return (w?.peakFlops || this.declared(w)) ?? w?.attainableFlops ?? 0;
  }

  /** The job's declared peak for this member, its workers each a device; null without one. */
  declared(w: WorkerSession | undefined): number | null {
    return this.perDevice && this.perDevice * (w?.workers ?? 1);
  }

  /** Remembered for the steps in flight when it left. */
  left(w: WorkerSession, step: number): void {
    this.departed.left(w.id, this.of(w), step, w.workers);
  }

  /** A member that computed in a step, present or departed since: its processes and its peak. */
  contributor(id: string): { workers: number; peak: number } {
    const w = this.membership.workers.get(id);
    return { workers: w?.workers ?? this.departed.workers(id) ?? 1, peak: this.departed.peak(id) ?? this.of(w) };
  }
}
