/**
 * Splitting work into shards and keeping track of who owes which shard. Pure bookkeeping: the
 * coordinator sends the messages; this decides what goes to whom and what is still missing.
 */

export interface ShardRange {
  shard: number;
  from: number;
  to: number;
}

/**
 * Split [from, to) into at most `parts` contiguous, near-equal ranges (the first `n % parts`
 * ranges get one extra row). No range is empty unless [from, to) is (callers skip those).
 */
export function splitRange(from: number, to: number, parts: number): ShardRange[] {
  const n = to - from;
  const k = Math.max(1, Math.min(parts, n));
  const base = Math.floor(n / k);
  const extra = n % k;
  const out: ShardRange[] = [];
  let start = from;
  for (let s = 0; s < k; s++) {
    const size = base + (s < extra ? 1 : 0);
    out.push({ shard: s, from: start, to: start + size });
    start += size;
  }
  return out;
}

/**
 * Who holds which shard of the phase in flight. A shard is settled once its first valid
 * result arrives; a result for a settled shard, or from a worker the shard is not assigned
 * to, is refused so the caller can count it.
 */
export class Assignments<W> {
  private owner = new Map<number, W>();
  private unsettled = new Set<number>();

  constructor(readonly shards: readonly ShardRange[]) {
    for (const s of shards) this.unsettled.add(s.shard);
  }

  assign(shard: number, worker: W): void {
    this.owner.set(shard, worker);
  }

  ownerOf(shard: number): W | undefined {
    return this.owner.get(shard);
  }

  /** Is the shard open and assigned to this worker? */
  holds(shard: number, worker: W): boolean {
    return this.unsettled.has(shard) && this.owner.get(shard) === worker;
  }

  /** True if the result is accepted (shard open and owned by this worker). */
  settle(shard: number, worker: W): boolean {
    if (!this.unsettled.has(shard) || this.owner.get(shard) !== worker) return false;
    this.unsettled.delete(shard);
    return true;
  }

  /** Open shards held by `worker` (to hand to someone else when it leaves). */
  heldBy(worker: W): ShardRange[] {
    return this.shards.filter((s) => this.unsettled.has(s.shard) && this.owner.get(s.shard) === worker);
  }

  openCount(worker: W): number {
    return this.heldBy(worker).length;
  }

  get done(): boolean {
    return this.unsettled.size === 0;
  }
}
