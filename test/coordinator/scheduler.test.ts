import { describe, expect, it } from 'vitest';
import { Assignments, splitRange } from '../../coordinator/scheduler.js';

describe('splitRange', () => {
  const cases: [number, number, number][] = [];
  for (const from of [0, 7, 1000])
    for (const n of [1, 2, 3, 5, 10, 64, 101])
      for (const parts of [1, 2, 3, 4, 7, 16, 200]) cases.push([from, from + n, parts]);

  it.each(cases)('[%i, %i) in %i parts: exact, contiguous, balanced, non-empty', (from, to, parts) => {
    const r = splitRange(from, to, parts);
    expect(r.length).toBeGreaterThanOrEqual(1);
    expect(r.length).toBeLessThanOrEqual(parts);
    expect(r.length).toBe(Math.min(parts, to - from));
    expect(r[0].from).toBe(from);
    expect(r[r.length - 1].to).toBe(to);
    r.forEach((s, i) => {
      expect(s.shard).toBe(i);
      expect(s.to).toBeGreaterThan(s.from);
      if (i > 0) expect(s.from).toBe(r[i - 1].to);
    });
    const sizes = r.map((s) => s.to - s.from);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(to - from);
  });

  it('gives the extra rows to the first shards: 10 rows in 3 parts is 4,3,3', () => {
    expect(splitRange(0, 10, 3)).toEqual([
      { shard: 0, from: 0, to: 4 },
      { shard: 1, from: 4, to: 7 },
      { shard: 2, from: 7, to: 10 },
    ]);
  });

  it('more parts than rows: one row each', () => {
    expect(splitRange(5, 8, 10)).toEqual([
      { shard: 0, from: 5, to: 6 },
      { shard: 1, from: 6, to: 7 },
      { shard: 2, from: 7, to: 8 },
    ]);
  });

  it('parts 0 is treated as 1', () => {
    expect(splitRange(0, 4, 0)).toEqual([{ shard: 0, from: 0, to: 4 }]);
  });
});

describe('Assignments', () => {
  const shards = splitRange(0, 9, 3);

  it('settles a shard only for its owner, and only once', () => {
    const a = new Assignments<string>(shards);
    a.assign(0, 'w1');
    expect(a.ownerOf(0)).toBe('w1');
    expect(a.settle(0, 'w2')).toBe(false);
    expect(a.settle(0, 'w1')).toBe(true);
    expect(a.settle(0, 'w1')).toBe(false);
  });

  it('refuses an unassigned shard and an unknown shard', () => {
    const a = new Assignments<string>(shards);
    expect(a.settle(1, 'w1')).toBe(false);
    a.assign(7, 'w1');
    expect(a.settle(7, 'w1')).toBe(false);
  });

  it('heldBy lists the open shards of a worker', () => {
    const a = new Assignments<string>(shards);
    a.assign(0, 'w1');
    a.assign(1, 'w2');
    a.assign(2, 'w1');
    expect(a.heldBy('w1').map((s) => s.shard)).toEqual([0, 2]);
    expect(a.heldBy('w2')).toEqual([shards[1]]);
    expect(a.openCount('w1')).toBe(2);
    a.settle(0, 'w1');
    expect(a.heldBy('w1').map((s) => s.shard)).toEqual([2]);
    expect(a.heldBy('w3')).toEqual([]);
  });

  it('after reassignment the old owner is refused and the new one accepted', () => {
    const a = new Assignments<string>(shards);
    a.assign(1, 'w1');
    a.assign(1, 'w2');
    expect(a.heldBy('w1')).toEqual([]);
    expect(a.heldBy('w2').map((s) => s.shard)).toEqual([1]);
    expect(a.settle(1, 'w1')).toBe(false);
    expect(a.settle(1, 'w2')).toBe(true);
  });

  it('is done after every shard settled', () => {
    const a = new Assignments<string>(shards);
    shards.forEach((s) => {
      a.assign(s.shard, `w${s.shard}`);
    });
    expect(a.done).toBe(false);
    a.settle(0, 'w0');
    a.settle(2, 'w2');
    expect(a.done).toBe(false);
    a.settle(1, 'w1');
    expect(a.done).toBe(true);
  });
});
