/**
 * What `worker`, `host-agent` and the worker inside a coordinator do when a session with the
 * coordinator ends: the job finished (exit 0), a refusal (its error: one line, and the exit code
 * says which; never matched from text, the session carries it as a code), or come back within
 * --reconnect-timeout. A session that lasted a while resets that clock; short ones (refused at
 * once) do not, so coming back ends.
 */
import { DptrainError } from '../shared/util/errors.js';
import type { WorkerOutcome } from '../worker/coordinator-session.js';

/** A session this long was a real one: losing it starts a new window to come back in. */
const LASTED_MS = 10_000;

export class RejoinWindow {
  private lostSince = 0;

  constructor(private readonly timeoutSec: number) {}

  /**
   * After a session that began at `began` (Date.now()) with the coordinator at `url`: null when
   * the job finished; else the seconds left to connect again, and whether the clock restarted.
   * Throws the refusal, or CONNECT_FAILED once the window is spent.
   */
  after(out: WorkerOutcome, url: string, began: number): { leftSec: number; restarted: boolean } | null {
    if (out.finished) return null;
    if (out.fatal) throw new DptrainError(out.fatal, out.reason);
    const restarted = Date.now() - began > LASTED_MS || this.lostSince === 0;
    if (restarted) this.lostSince = Date.now();
    const left = this.timeoutSec * 1000 - (Date.now() - this.lostSince);
    if (left <= 0)
      throw new DptrainError(
        'CONNECT_FAILED',
        `lost the coordinator at ${url} (${out.reason}) and could not rejoin within ${this.timeoutSec} s`,
      );
    return { leftSec: Math.max(1, left / 1000), restarted };
  }
}
