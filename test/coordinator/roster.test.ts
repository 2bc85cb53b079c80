import { describe, expect, it } from 'vitest';
import { DepartedPeaks } from '../../coordinator/roster.js';

describe('DepartedPeaks', () => {
  it('keeps a peak only while the steps in flight when the worker left can still report', () => {
    const d = new DepartedPeaks(4);
    d.left('a', 1e9, 10);
    expect(d.peak('a')).toBe(1e9);
    d.left('b', 2e9, 11); // a left at step 10: still in flight at step 11
    expect(d.peak('a')).toBe(1e9);
    d.left('c', 3e9, 12); // step 10 is now two behind: a is forgotten
    expect(d.peak('a')).toBeUndefined();
    expect(d.peak('b')).toBe(2e9);
    expect(d.steps()).toEqual([11, 12]);
  });

  it("keeps a host agent's worker count beside its peak, and forgets both together", () => {
    const d = new DepartedPeaks(4);
    d.left('host', 4e9, 10, 3);
    d.left('plain', 1e9, 10);
    expect([d.workers('host'), d.workers('plain')]).toEqual([3, 1]);
    d.left('later', 1e9, 12);
    expect([d.peak('host'), d.workers('host')]).toEqual([undefined, undefined]);
  });

  it('never holds more than maxWorkers, the oldest going first', () => {
    const d = new DepartedPeaks(2);
    for (let i = 0; i < 100; i++) d.left(`w${i}`, i, 5);
    expect(d.size).toBe(2);
    expect(d.peak('w99')).toBe(99);
    expect(d.peak('w98')).toBe(98);
  });
});
