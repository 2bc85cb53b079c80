/**
 * --wire-dtype: 16-bit parameters and gradients on the wire halve the bytes per step and train
 * to the same accuracy; the step timeline has the worker-side spans. Through the socket
 * (--no-shared-memory): the bytes on it are what these tests count.
 */
import { describe, expect, it } from 'vitest';
import type { StepRecord } from '../../coordinator/summary.js';
import { readMetrics, readSummary, trainSpirals } from '../helpers/cli.js';

async function train(dtype: string) {
  const out = await trainSpirals(`wire-${dtype}`, 400, ['--wire-dtype', dtype, '--no-shared-memory']);
  return { summary: readSummary(out), metrics: readMetrics(out) as unknown as StepRecord[] };
}

let float32Run: ReturnType<typeof train> | null = null;
/** The float32 run both tests read (trained once). */
const trainFloat32 = () => (float32Run ??= train('float32'));

describe('--wire-dtype', () => {
  it('float16 and bfloat16 halve the payload bytes and reach the float32 accuracy within 2 points', async () => {
    const f32 = await trainFloat32();
    expect(f32.summary.wireDtype).toBe('float32');
    for (const dtype of ['float16', 'bfloat16']) {
      const half = await train(dtype);
      expect(half.summary.wireDtype).toBe(dtype);
      // Headers are the same size in both, so the ratio sits just above one half.
      const ratio = half.summary.wireBytesPerStep! / f32.summary.wireBytesPerStep!;
      expect(ratio).toBeGreaterThan(0.5);
      expect(ratio).toBeLessThan(0.55);
      expect(half.summary.testAccuracy!).toBeGreaterThanOrEqual(0.9);
      expect(Math.abs(half.summary.testAccuracy! - f32.summary.testAccuracy!)).toBeLessThanOrEqual(0.02);
    }
  }, 180_000);

  it("every step records each worker's decode, compute, encode, wire and wait", async () => {
    const { metrics, summary } = await trainFloat32();
    const steady = metrics.slice(5);
    for (const rec of steady) {
      const ids = Object.keys(rec.workerTimeline);
      expect(ids.sort()).toEqual(Object.keys(rec.workerComputeMs).sort());
      for (const w of Object.values(rec.workerTimeline)) {
        expect(w.computeMs).toBeGreaterThan(0);
        for (const v of [w.decodeMs, w.encodeMs, w.wireMs, w.waitMs]) expect(v).toBeGreaterThanOrEqual(0);
        // A worker's spans fit in the step (the wait is what is left over).
        expect(w.decodeMs + w.computeMs + w.encodeMs + w.wireMs + w.waitMs).toBeCloseTo(
          Math.max(rec.stepMs, w.decodeMs + w.computeMs + w.encodeMs + w.wireMs),
          6,
        );
      }
      expect(rec.timeline.overheadMs).toBeCloseTo(rec.stepMs - rec.timeline.slowestComputeMs, 6);
      expect(rec.wireBytes).toBeGreaterThan(2 * 4 * summary.params); // parameters down and gradients up, at least
    }
    // Parameters reach the workers every step, so decoding them takes measurable time.
    expect(summary.timeline.decodeMs.median).toBeGreaterThan(0);
    expect(summary.timeline.wireMs.median).toBeGreaterThan(0);
  }, 120_000);
});
