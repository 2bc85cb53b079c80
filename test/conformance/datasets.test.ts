/**
 * Every registered dataset against the dataset contract (shared/datasets/dataset.ts): the
 * shape stated from the config is the shape loaded; splits are consistent with it; targets are
 * of the declared kind; the fingerprint is stable; config mistakes name the field.
 */
import { describe, expect, it } from 'vitest';
import {
  DATASET_NAMES,
  datasetShape,
  fingerprint,
  gatherRows,
  loadDataset,
  parseDataSpec,
  prepareDataset,
  sameShape,
  sizeOf,
  type Dataset,
  type Split,
} from '../../shared/datasets/index.js';
import { expectCode } from '../helpers/expect-code.js';
import { DATASET_FIXTURES } from '../helpers/fixtures.js';

/** The first problem with a split, or null: plain loops (expect per element is too slow for MNIST). */
function splitProblem(ds: Dataset, s: Split): string | null {
  if (s.x.length !== s.n * ds.inputSize) return `x holds ${s.x.length} values for ${s.n} rows of ${ds.inputSize}`;
  if (s.y.length !== s.n * ds.outputSize) return `y holds ${s.y.length} values for ${s.n} rows of ${ds.outputSize}`;
  for (let i = 0; i < s.x.length; i++) if (!Number.isFinite(s.x[i])) return `x[${i}] is ${s.x[i]}`;
  for (let i = 0; i < s.n; i++) {
    const row = s.y.subarray(i * ds.outputSize, (i + 1) * ds.outputSize);
    let ones = 0;
    for (const v of row) {
      if (ds.targets === 'onehot' || ds.targets === 'binary') {
        if (v !== 0 && v !== 1) return `row ${i}: target ${v} is not 0 or 1`;
        ones += v;
      } else if (ds.targets === 'tokens') {
        if (!Number.isInteger(v) || v < 0 || v >= ds.vocab!) return `row ${i}: token ${v} outside 0..${ds.vocab! - 1}`;
      } else if (!Number.isFinite(v)) return `row ${i}: target ${v}`;
    }
    if (ds.targets === 'onehot' && ones !== 1) return `row ${i}: ${ones} ones in a one-hot row`;
  }
  return null;
}

/** What a sequence model would ask (ignored by table datasets). */
const WANT = { seq: 16 };

// What a dataset imports (a user's module) is imported before the suites below read it.
for (const name of DATASET_NAMES) {
  const fixture = DATASET_FIXTURES[name];
  if (fixture) await prepareDataset(parseDataSpec(fixture()));
}

describe.each(DATASET_NAMES.map((n) => [n]))('dataset %s', (name) => {
  const fixture = DATASET_FIXTURES[name];

  it('has a conformance fixture', () => {
    expect(fixture, `add ${name} to DATASET_FIXTURES in test/helpers/fixtures.ts`).toBeDefined();
  });
  if (!fixture) return;
  const spec = parseDataSpec(fixture());
  const ds = loadDataset(spec, 5, WANT);

  it('parses its own parsed spec to the same spec', () => {
    expect(parseDataSpec(JSON.parse(JSON.stringify(spec)))).toEqual(spec);
  });

  it('refuses an unknown field, naming it', () => {
    expect(expectCode(() => parseDataSpec({ ...fixture(), colour: 1 }), 'CONFIG_INVALID')).toContain('data.colour');
  });

  it('states before loading the shape it loads', () => {
    const shape = datasetShape(spec, WANT);
    expect(sameShape(ds, shape)).toBe(true);
    expect(ds.inputSize).toBe(sizeOf(shape.inputShape));
    expect(ds.name).toBe(name);
    if (shape.targets === 'tokens') expect(shape.vocab).toBeGreaterThan(0);
  });

  it('has splits consistent with its shape and target kind', () => {
    expect(ds.train.n).toBeGreaterThan(0);
    expect(splitProblem(ds, ds.train)).toBeNull();
    expect(splitProblem(ds, ds.test)).toBeNull();
  });

  it('gathers rows in the order asked', () => {
    const rows = [ds.train.n - 1, 0];
    const b = gatherRows(ds.train, ds.inputSize, ds.outputSize, rows);
    expect(Array.from(b.x.subarray(0, ds.inputSize))).toEqual(
      Array.from(ds.train.x.subarray((ds.train.n - 1) * ds.inputSize, ds.train.n * ds.inputSize)),
    );
    expect(Array.from(b.y.subarray(ds.outputSize))).toEqual(Array.from(ds.train.y.subarray(0, ds.outputSize)));
  });

  it('has a fingerprint that two loads agree on', () => {
    expect(fingerprint(loadDataset(spec, 5, WANT))).toBe(fingerprint(ds));
  });
});

it('an unknown data.name lists the known ones', () => {
  const msg = expectCode(() => parseDataSpec({ name: 'nope' }), 'CONFIG_INVALID');
  for (const n of DATASET_NAMES) expect(msg).toContain(n);
});
