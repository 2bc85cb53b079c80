/**
 * ComputeMeter's MFU: each step's model FLOP/s against the peak of the workers that computed
 * that step, a windowed median of those — so a worker leaving never divides the window's
 * faster steps by the smaller peak of the steps after it.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ComputeMeter, type WorkerWork } from '../../coordinator/accounting.js';

const PER_SAMPLE = 1e6;

function meter(): ComputeMeter {
  return new ComputeMeter({
    trainFlopsPerSample: PER_SAMPLE,
    evalFlopsPerSample: PER_SAMPLE / 3,
    budget: null,
    policy: 'stop',
    log: pino({ level: 'silent' }),
  });
}

const worker = (id: string, peakFlops: number): WorkerWork => ({ id, samples: 10, computeMs: 5, peakFlops });

describe('ComputeMeter MFU', () => {
  it('a worker leaving: the window of earlier, faster steps is not counted against the smaller peak', () => {
    const m = meter();
    // 2 workers of 1 GFLOP/s peak: 20 samples in 40 ms = 0.5 GFLOP/s → 25%.
    for (let i = 0; i < 15; i++) {
      const a = m.step(20, 40, [worker('w1', 1e9), worker('w2', 1e9)]);
      expect(a.mfu).toBeCloseTo(0.25, 12);
      expect(a.peakFlops).toBe(2e9);
    }
    // One left: the same 20 samples take 80 ms on the other alone = 0.25 GFLOP/s of its 1 → 25% still.
    for (let i = 0; i < 15; i++) {
      const a = m.step(20, 80, [worker('w1', 1e9)]);
      expect(a.peakFlops).toBe(1e9);
      expect(a.mfu).toBeCloseTo(0.25, 12); // the window's median rate over 1e9 would say up to 50%
    }
  });

  it('steady workers: MFU is the windowed model FLOP/s over their summed peak; a skipped step keeps both', () => {
    const m = meter();
    const ms = [40, 50, 45, 60, 42, 41, 80];
    let last = m.idle();
    for (const t of ms) {
      last = m.step(20, t, [worker('w1', 3e9), worker('w2', 1e9)]);
      expect(last.mfu).toBeCloseTo(last.modelFlopsPerSec / 4e9, 12);
    }
    const skipped = m.account(true, 20, 10, () => []);
    expect(skipped).toMatchObject({ mfu: last.mfu, peakFlops: 4e9, flops: 0 });
  });

  it('no peak known: no MFU and no peak in the record', () => {
    const a = meter().step(20, 40, [worker('w1', 0)]);
    expect(a.mfu).toBeNull();
    expect('peakFlops' in a).toBe(false);
  });
});
