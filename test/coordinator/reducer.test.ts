import { describe, expect, it } from 'vitest';
import { ShardReducer } from '../../coordinator/reducer.js';
import { Rng } from '../../shared/util/rng.js';

const SHARDS = 5;
const SIZE = 16;

/** Float32 vectors whose float64 sum depends on the order: 1e20 swallows 1 unless −1e20 came first. */
function makeShards(): Float32Array[] {
  const rng = new Rng(7);
  const mags = [1e20, 1, -1e20, 1e8, -1e8, 3.5, 1e-3];
  return Array.from({ length: SHARDS }, () =>
    Float32Array.from({ length: SIZE }, () => mags[rng.int(mags.length)] * (1 + rng.next())),
  );
}

function permutations(xs: number[]): number[][] {
  if (xs.length <= 1) return [xs];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}

function reduceInOrder(shards: Float32Array[], order: number[]): { sum: Float64Array; lossSum: number; count: number } {
  const sum = new Float64Array(SIZE);
  const r = new ShardReducer(SHARDS, sum);
  for (const s of order) expect(r.add(s, shards[s], 0.1 * (s + 1), 10 + s)).toBe(true);
  expect(r.complete).toBe(true);
  const { lossSum, count } = r.totals();
  return { sum, lossSum, count };
}

describe('ShardReducer', () => {
  const shards = makeShards();
  const orders = permutations([0, 1, 2, 3, 4]);

  it('the test data is order-sensitive under naive float addition', () => {
    const naive = (order: number[]) => {
      const acc = new Float64Array(SIZE);
      for (const s of order) for (let i = 0; i < SIZE; i++) acc[i] += shards[s][i];
      return Array.from(acc);
    };
    const distinct = new Set(orders.map((o) => naive(o).join(',')));
    expect(distinct.size).toBeGreaterThan(1);
  });

  it('gives a bit-identical sum for all 120 arrival orders', () => {
    expect(orders.length).toBe(120);
    const ref = reduceInOrder(shards, [0, 1, 2, 3, 4]);
    for (const order of orders) {
      const got = reduceInOrder(shards, order);
      for (let i = 0; i < SIZE; i++) {
        expect(Object.is(got.sum[i], ref.sum[i]), `order ${order.join('')} element ${i}`).toBe(true);
      }
      expect(Object.is(got.lossSum, ref.lossSum)).toBe(true);
      expect(got.count).toBe(10 + 11 + 12 + 13 + 14);
    }
  });

  it('sums in shard order', () => {
    const ref = reduceInOrder(shards, [4, 2, 0, 3, 1]);
    const want = new Float64Array(SIZE);
    for (const g of shards) for (let i = 0; i < SIZE; i++) want[i] += g[i];
    expect(Array.from(ref.sum)).toEqual(Array.from(want));
  });

  it('refuses a duplicate shard, folded or still waiting, without changing the sum', () => {
    const got = new Float64Array(SIZE);
    const r = new ShardReducer(SHARDS, got);
    expect(r.add(0, shards[0], 1, 1)).toBe(true); // folded at once
    expect(r.add(3, shards[3], 1, 1)).toBe(true); // waits for 1 and 2
    expect(r.add(0, shards[1], 5, 5)).toBe(false);
    expect(r.add(3, shards[2], 5, 5)).toBe(false);
    for (const s of [1, 2, 4]) expect(r.add(s, shards[s], 1, 1)).toBe(true);
    expect(r.add(4, shards[4], 1, 1)).toBe(false);
    expect(r.totals()).toEqual({ lossSum: 5, count: 5 });
    expect(Array.from(got)).toEqual(Array.from(reduceInOrder(shards, [0, 1, 2, 3, 4]).sum));
  });

  it('refuses shard indices out of range', () => {
    const r = new ShardReducer(SHARDS, new Float64Array(SIZE));
    expect(r.add(SHARDS, shards[0], 1, 1)).toBe(false);
    expect(r.add(SHARDS + 3, shards[0], 1, 1)).toBe(false);
    expect(r.add(-1, shards[0], 1, 1)).toBe(false);
    for (let s = 0; s < SHARDS; s++) r.add(s, new Float32Array(SIZE), 0, 1);
    expect(r.totals().count).toBe(SHARDS);
  });

  it('is complete only after every shard arrived; totals before that throws', () => {
    const r = new ShardReducer(SHARDS, new Float64Array(SIZE));
    for (const s of [4, 3, 2, 1]) {
      r.add(s, shards[s], 0, 1);
      expect(r.complete).toBe(false);
      expect(() => r.totals()).toThrow();
    }
    r.add(0, shards[0], 0, 1);
    expect(r.complete).toBe(true);
  });

  it('copies the payload, so a reused buffer does not change the sum', () => {
    const acc = new Float64Array(2);
    const r = new ShardReducer(2, acc);
    const buf = new Float32Array([1, 2]);
    r.add(1, buf, 0, 1); // waits for shard 0
    buf.set([100, 200]);
    r.add(0, new Float32Array([10, 20]), 0, 1);
    expect(Array.from(acc)).toEqual([11, 22]);
  });

  it('adds to what the accumulator already holds (earlier micro-steps)', () => {
    const acc = new Float64Array([10, 10]);
    const r = new ShardReducer(1, acc);
    r.add(0, new Float32Array([1.5, -2]), 3, 4);
    expect(r.totals()).toEqual({ lossSum: 3, count: 4 });
    expect(Array.from(acc)).toEqual([11.5, 8]);
  });
});
