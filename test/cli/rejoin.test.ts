/**
 * When a joining command's session ends: exit on a goodbye, the refusal's own error on a
 * refusal (by its code), else come back within --reconnect-timeout, a clock that only a
 * session that lasted a while restarts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RejoinWindow } from '../../cli/rejoin.js';
import { expectCode } from '../helpers/expect-code.js';

const URL = 'ws://127.0.0.1:7070';
const lost = { finished: false, fatal: null, reason: 'lost' } as const;

describe('RejoinWindow', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(1_000_000);
  });
  afterEach(() => vi.useRealTimers());

  it('a goodbye ends it; a refusal throws its own code whatever the reason says', () => {
    const w = new RejoinWindow(300);
    expect(w.after({ finished: true, fatal: null, reason: 'bye' }, URL, Date.now())).toBeNull();
    expectCode(() => w.after({ finished: false, fatal: 'WRONG_JOB', reason: 'lost' }, URL, Date.now()), 'WRONG_JOB');
  });

  it('short sessions share one window; a long one restarts it; a spent one is CONNECT_FAILED', () => {
    const w = new RejoinWindow(30);
    expect(w.after(lost, URL, Date.now())).toEqual({ leftSec: 30, restarted: true });
    vi.advanceTimersByTime(20_000);
    expect(w.after(lost, URL, Date.now() - 1_000)).toEqual({ leftSec: 10, restarted: false });
    vi.advanceTimersByTime(5_000);
    expect(w.after(lost, URL, Date.now() - 11_000)).toEqual({ leftSec: 30, restarted: true });
    vi.advanceTimersByTime(30_000);
    expect(expectCode(() => w.after(lost, URL, Date.now() - 1_000), 'CONNECT_FAILED')).toBe(
      `lost the coordinator at ${URL} (lost) and could not rejoin within 30 s`,
    );
  });
});
