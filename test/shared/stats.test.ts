import { describe, expect, it } from 'vitest';
import { median, percentile } from '../../shared/util/stats.js';

describe('order statistics', () => {
  it('median: the middle value, or the mean of the two middle ones; null when empty', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNull();
  });

  it('percentile: nearest rank', () => {
    const xs = [15, 20, 35, 40, 50];
    expect(percentile(xs, 0.05)).toBe(15);
    expect(percentile(xs, 0.3)).toBe(20);
    expect(percentile(xs, 0.4)).toBe(20);
    expect(percentile(xs, 0.5)).toBe(35);
    expect(percentile(xs, 1)).toBe(50);
    expect(percentile([], 0.5)).toBeNull();
  });

  it('leaves its input unsorted', () => {
    const xs = [3, 1, 2];
    median(xs);
    percentile(xs, 0.9);
    expect(xs).toEqual([3, 1, 2]);
  });
});
