/**
 * A dptrain dataset module: small synthetic images of one bar each, on noise. The class is the
 * bar's direction: 0 horizontal, 1 vertical, 2 diagonal (↘), 3 anti-diagonal (↙).
 *
 * Every row is drawn from its own seeded stream (job seed, split, row index), so any rows can
 * be filled alone, in any order, on any host, and come out the same.
 *
 * options: { train = 2000, test = 500, size = 12, noise = 0.2 }
 */
export function describe(options) {
  const { train = 2000, test = 500, size = 12 } = options;
  return { train, test, inputShape: [size, size, 1], outputSize: 4, targets: 'onehot' };
}

/** mulberry32: a small seeded generator, uniform in [0, 1). */
function stream(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function fill(split, rows, { seed, options }) {
  const { size = 12, noise = 0.2 } = options;
  const pixels = size * size;
  const x = new Float32Array(rows.length * pixels);
  const y = new Float32Array(rows.length * 4);
  rows.forEach((row, r) => {
    const rand = stream(
      Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(row + 1, 0x85ebca6b) ^ (split === 'test' ? 0x5bd1e995 : 0),
    );
    const cls = Math.floor(rand() * 4);
    const at = 1 + Math.floor(rand() * (size - 2));
    const len = 4 + Math.floor(rand() * (size - 4));
    const from = Math.floor(rand() * (size - len + 1));
    const img = x.subarray(r * pixels, (r + 1) * pixels);
    for (let i = 0; i < pixels; i++) img[i] = noise * rand();
    for (let k = from; k < from + len; k++) {
      const [i, j] = cls === 0 ? [at, k] : cls === 1 ? [k, at] : cls === 2 ? [k, k] : [k, size - 1 - k];
      img[i * size + j] = 1;
    }
    y[r * 4 + cls] = 1;
  });
  return { x, y };
}
