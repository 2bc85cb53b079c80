/**
 * A stop asked from outside (SIGINT/SIGTERM): the run ends after the step in flight with a
 * checkpoint. A step that cannot finish (no worker left) or takes longer than STOP_GRACE_MS is
 * abandoned instead, so the checkpoint holds the last completed step and a scheduler's grace
 * period is not spent waiting. Not with slice shards, where a shard may already have applied
 * its part of the step in flight.
 */
import { DptrainError } from '../shared/util/errors.js';

/** How long a stop waits for the step in flight before abandoning it. */
export const STOP_GRACE_MS = 10_000;

export class StopRequest {
  /** Why the run stops; null until asked. */
  why: string | null = null;

  /**
   * `target.abort` fails the phase in flight (and any later one); `idle`: no worker could finish
   * it; `sliced`: slice shards hold part of the update, so a step in flight is never abandoned.
   */
  constructor(
    private readonly target: { abort(e: Error): void },
    private readonly idle: () => boolean,
    private readonly sliced: boolean,
  ) {}

  request(why: string): void {
    if (this.why !== null) return;
    this.why = why;
    if (this.sliced) return;
    const abandon = () =>
      this.target.abort(new DptrainError('INTERRUPTED', `${why}: the step in flight was abandoned`));
    if (this.idle()) abandon();
    else setTimeout(abandon, STOP_GRACE_MS).unref();
  }

  /** An error that is the work in flight abandoned for this stop. */
  abandoned(e: unknown): boolean {
    return this.why !== null && e instanceof DptrainError && e.code === 'INTERRUPTED';
  }
}
