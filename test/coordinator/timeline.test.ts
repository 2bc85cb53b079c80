/**
 * A step's timeline holds that step's parts only: a worker reports the encode time of its
 * previous result frame, and when that frame was a late result of an earlier step (the worker
 * stalled), its seconds are not booked to the step that happens to carry them.
 */
import { describe, expect, it } from 'vitest';
import { stepTimeline } from '../../coordinator/timeline.js';

const params = { encodeMs: 0.5, broadcastMs: 0.2 };

describe('stepTimeline', () => {
  it("leaves out an encode time that cannot be this step's; keeps one that fits", () => {
    const { timeline, workerTimeline } = stepTimeline(
      48.2,
      { w1: 15.2, w2: 14 },
      {
        decodeMs: { w1: 0.3, w2: 0.3 },
        encodeMs: { w1: 3078.4, w2: 1.5 }, // w1's is the stalled frame of step 200
        wireMs: { w1: 0, w2: 2 },
      },
      params,
      1,
      2,
    );
    expect(workerTimeline.w1.encodeMs).toBe(0);
    expect(workerTimeline.w2.encodeMs).toBe(1.5);
    expect(timeline.workerEncodeMs).toBe(1.5);
    for (const t of Object.values(workerTimeline))
      expect(t.decodeMs + t.computeMs + t.encodeMs + t.wireMs).toBeLessThanOrEqual(48.2);
  });
});
