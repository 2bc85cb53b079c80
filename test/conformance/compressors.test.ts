/**
 * Every registered gradient compressor against the contract (shared/compress/contract.ts):
 * error feedback loses nothing (sent + new residual == gradient + old residual, in float32),
 * what is sent decodes back exactly, however the worker's parts cut the nodes, and a payload
 * of the wrong size or with out-of-range content is refused with MESSAGE_INVALID.
 */
import { describe, expect, it } from 'vitest';
import { compressorOf, registeredCompressors } from '../../shared/compress/index.js';
import { Rng } from '../../shared/util/rng.js';
import { expectCode } from '../helpers/expect-code.js';

const N = 1000;

function randomGrad(seed: number, n = N): Float32Array {
  const rng = new Rng(seed);
  const rnd = () => rng.next();
  const g = new Float32Array(n);
  for (let i = 0; i < n; i++) g[i] = (rnd() - 0.5) * 2 ** Math.floor(rnd() * 12 - 6);
  return g;
}

describe.each(registeredCompressors())('compressor $kind', ({ cfg }) => {
  const make = () => compressorOf(cfg)!;

  it('keeps the error-feedback identity over several results, element by element', () => {
    const c = make();
    const residual = randomGrad(1);
    for (let step = 0; step < 5; step++) {
      const nodes = 1 + (step % 3);
      const grads = Array.from({ length: nodes }, (_, j) => randomGrad(10 * step + j));
      const words = new Float32Array(nodes * c.wordsPerNode(N));
      const before = residual.slice();
      c.encode(grads, nodes, residual, words);
      const sent = c.decode(words, nodes, N);
      // Node by node, the residual carries on: x = g_j + r_j; sent_j + r_{j+1} == x exactly.
      let r = before;
      for (let j = 0; j < nodes; j++) {
        const x = new Float32Array(N);
        for (let i = 0; i < N; i++) x[i] = grads[j][i] + r[i];
        const next = j === nodes - 1 ? residual : null;
        const s = sent.subarray(j * N, (j + 1) * N);
        const nr = new Float32Array(N);
        for (let i = 0; i < N; i++) nr[i] = x[i] - s[i];
        for (let i = 0; i < N; i++) expect(s[i] + nr[i]).toBe(x[i]);
        if (next) expect(Array.from(next)).toEqual(Array.from(nr));
        r = nr;
      }
      // Something is sent, and not everything: it is a compressor.
      expect(sent.some((v) => v !== 0)).toBe(true);
      expect(words.byteLength).toBeLessThan(nodes * N * 4);
    }
  });

  it('gives the same words however the parts cut the nodes', () => {
    const g = [randomGrad(5), randomGrad(6)];
    const whole = new Float32Array(2 * N);
    whole.set(g[0]);
    whole.set(g[1], N);
    const cuts = [[whole], g, [whole.subarray(0, 7), whole.subarray(7, N + 300), whole.subarray(N + 300)]];
    const out = cuts.map((parts) => {
      const c = make();
      const w = new Float32Array(2 * c.wordsPerNode(N));
      c.encode(parts, 2, new Float32Array(N), w);
      return Buffer.from(w.buffer);
    });
    expect(out[1].equals(out[0])).toBe(true);
    expect(out[2].equals(out[0])).toBe(true);
  });

  it('refuses parts that are not whole nodes', () => {
    const c = make();
    const w = new Float32Array(c.wordsPerNode(N));
    expect(() => c.encode([new Float32Array(N + 1)], 1, new Float32Array(N), w)).toThrow();
    expect(() => c.encode([new Float32Array(N - 1)], 1, new Float32Array(N), w)).toThrow();
  });

  it('checks what it encodes, and refuses a payload of the wrong size with MESSAGE_INVALID', () => {
    const c = make();
    const w = new Float32Array(2 * c.wordsPerNode(N));
    c.encode([randomGrad(7), randomGrad(8)], 2, new Float32Array(N), w);
    c.check(w, 2, N);
    expectCode(() => c.check(w, 1, N), 'MESSAGE_INVALID');
    expectCode(() => c.check(w.subarray(0, w.length - 1), 2, N), 'MESSAGE_INVALID');
    expectCode(() => c.check(new Float32Array(0), 1, N), 'MESSAGE_INVALID');
  });

  it('a diverged gradient reaches the coordinator as non-finite, and the residual stays finite', () => {
    const c = make();
    const g = randomGrad(9);
    g[17] = Number.NaN;
    g[400] = Number.POSITIVE_INFINITY;
    const residual = new Float32Array(N);
    const w = new Float32Array(c.wordsPerNode(N));
    c.encode([g], 1, residual, w);
    const sent = c.decode(w, 1, N);
    expect(Number.isNaN(sent[17])).toBe(true);
    expect(sent[400]).toBe(Number.POSITIVE_INFINITY);
    expect(residual.every(Number.isFinite)).toBe(true);
  });
});
