import { describe, expect, it } from 'vitest';
import { clipByGlobalNorm, globalNorm } from '../../coordinator/optimizers/clip.js';

describe('globalNorm', () => {
  it('is the Euclidean norm over all entries', () => {
    expect(globalNorm(new Float32Array([3, 4]))).toBe(5);
    expect(globalNorm(new Float32Array([1, 2, 2]))).toBe(3); // √(1+4+4)
    expect(globalNorm(new Float32Array(0))).toBe(0);
  });
});

describe('clipByGlobalNorm', () => {
  it('scales [3,4] down to [0.6,0.8] with maxNorm 1 and returns the pre-clip norm', () => {
    const g = new Float32Array([3, 4]);
    const norm = clipByGlobalNorm(g, 1);
    expect(norm).toBe(5);
    // scale = 1/5: 3/5 = 0.6, 4/5 = 0.8 (as float32)
    expect(g[0]).toBeCloseTo(0.6, 6);
    expect(g[1]).toBeCloseTo(0.8, 6);
    expect(globalNorm(g)).toBeCloseTo(1, 6);
  });

  it('maxNorm 0 means off: the vector is untouched, the norm still reported', () => {
    const g = new Float32Array([3, 4]);
    expect(clipByGlobalNorm(g, 0)).toBe(5);
    expect(Array.from(g)).toEqual([3, 4]);
  });

  it('a vector under the threshold is untouched', () => {
    const g = new Float32Array([0.3, -0.4]);
    const before = Array.from(g);
    expect(clipByGlobalNorm(g, 1)).toBeCloseTo(0.5, 6);
    expect(Array.from(g)).toEqual(before);
  });

  it('keeps the direction when clipping', () => {
    const g = new Float32Array([-6, 0, 8]);
    expect(clipByGlobalNorm(g, 2)).toBe(10);
    // scale 0.2: [-1.2, 0, 1.6]
    expect(g[0]).toBeCloseTo(-1.2, 6);
    expect(g[1]).toBe(0);
    expect(g[2]).toBeCloseTo(1.6, 6);
  });
});
