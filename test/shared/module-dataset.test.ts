/**
 * The `module` dataset: a user's JS module. What it gets wrong (a throw, a missing export, a
 * wrong shape, a bad target) is one DATASET_UNAVAILABLE line naming the module; a relative
 * path is resolved against the config file; the fingerprint covers the module file.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  datasetShape,
  fingerprint,
  loadDataset,
  parseDataSpec,
  prepareDataset,
  type DataSpec,
} from '../../shared/datasets/index.js';
import { readConfigFile } from '../../shared/job/config.js';
import { DptrainError } from '../../shared/util/errors.js';
import { tempDir } from '../helpers/cli.js';
import { expectCode } from '../helpers/expect-code.js';

const dir = tempDir('module-data');
let files = 0;

const DESCRIBE =
  `export function describe(o) { return { train: o.train ?? 6, test: 2, inputShape: [3], ` +
  `outputSize: 2, targets: 'onehot' }; }`;
const FILL = `export function fill(split, rows, { seed }) {
  const x = new Float32Array(rows.length * 3), y = new Float32Array(rows.length * 2);
  rows.forEach((r, i) => { x.set([r, seed, split === 'test' ? 1 : 0], i * 3); y[i * 2 + (r % 2)] = 1; });
  return { x, y };
}`;

/** A module file holding `source` (a fresh name each time: import() caches by URL). */
function moduleFile(source: string): string {
  const file = join(dir, `data-${files++}.mjs`);
  writeFileSync(file, source);
  return file;
}

async function prepared(source: string, options: Record<string, unknown> = {}): Promise<DataSpec> {
  const spec = parseDataSpec({ name: 'module', path: moduleFile(source), options });
  await prepareDataset(spec);
  return spec;
}

/** The awaited call fails with the code; its message, one line, is returned. */
async function rejects(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(DptrainError);
  expect((e as DptrainError).code).toBe('DATASET_UNAVAILABLE');
  return (e as DptrainError).message;
}

function loadFails(spec: DataSpec): string {
  const msg = expectCode(() => loadDataset(spec, 1), 'DATASET_UNAVAILABLE');
  expect(msg).not.toContain('\n');
  expect(msg).toContain((spec as { path: string }).path);
  return msg;
}

describe('a good module', () => {
  it('gives its rows in order, with the job seed and the options', async () => {
    const spec = await prepared(`${DESCRIBE}\n${FILL}`, { train: 5 });
    const ds = loadDataset(spec, 42);
    expect(ds.train.n).toBe(5);
    expect(Array.from(ds.train.x.subarray(9, 12))).toEqual([3, 42, 0]);
    expect(Array.from(ds.test.x.subarray(0, 3))).toEqual([0, 42, 1]);
    expect(Array.from(ds.train.y.subarray(0, 4))).toEqual([1, 0, 0, 1]);
  });

  it('may export describe and fill on its default export', async () => {
    const src =
      `${DESCRIBE}\n${FILL}`.replace(/export function (\w+)/g, 'function $1') + '\nexport default { describe, fill };';
    expect(loadDataset(await prepared(src), 1).train.n).toBe(6);
  });

  it('has a fingerprint that follows the module file, not only its values', async () => {
    const a = await prepared(`${DESCRIBE}\n${FILL}`);
    const b = await prepared(`${DESCRIBE}\n${FILL}\n// the same data, another file`);
    expect(fingerprint(loadDataset(a, 1))).toBe(fingerprint(loadDataset(a, 1)));
    expect(fingerprint(loadDataset(b, 1))).not.toBe(fingerprint(loadDataset(a, 1)));
  });
});

describe('a module that is wrong gets one line naming it', () => {
  it('a missing file', async () => {
    expect(await rejects(prepareDataset(parseDataSpec({ name: 'module', path: join(dir, 'nope.mjs') })))).toContain(
      'nope.mjs does not exist',
    );
  });

  it('a module that throws when imported', async () => {
    const file = moduleFile(`throw new Error('no data here');`);
    const msg = await rejects(prepareDataset(parseDataSpec({ name: 'module', path: file })));
    expect(msg).toBe(`data module ${file}: importing it failed: Error: no data here`);
  });

  it('a module with a syntax error', async () => {
    expect(
      await rejects(prepareDataset(parseDataSpec({ name: 'module', path: moduleFile('export function (') }))),
    ).toMatch(/importing it failed: .*syntax/i);
  });

  it('a missing export', async () => {
    expect(await rejects(prepareDataset(parseDataSpec({ name: 'module', path: moduleFile(DESCRIBE) })))).toContain(
      'exports no fill() function',
    );
  });

  it('describe() with a bad shape', async () => {
    const spec = await prepared(`${DESCRIBE.replace('[3]', '[3, 0]')}\n${FILL}`);
    expect(expectCode(() => datasetShape(spec), 'DATASET_UNAVAILABLE')).toContain(
      'describe() returned inputShape [3,0]',
    );
  });

  it('describe() that throws', async () => {
    const spec = await prepared(`export function describe() { throw new TypeError('bad options'); }\n${FILL}`);
    expect(expectCode(() => datasetShape(spec), 'DATASET_UNAVAILABLE')).toContain(
      'describe() threw TypeError: bad options',
    );
  });

  it('fill() that throws', async () => {
    expect(
      loadFails(await prepared(`${DESCRIBE}\nexport function fill() { throw new RangeError('row?'); }`)),
    ).toContain('fill("train", rows 0..5) threw RangeError: row?');
  });

  it('fill() returning the wrong number of values', async () => {
    const fill =
      'export function fill(s, rows) { return { x: new Float32Array(rows.length * 2), y: new ' +
      'Float32Array(rows.length * 2) }; }';
    expect(loadFails(await prepared(`${DESCRIBE}\n${fill}`))).toContain(
      'x has 12 values; expected 18 (6 rows × 3 inputs',
    );
  });

  it('fill() returning no y', async () => {
    expect(
      loadFails(
        await prepared(
          `${DESCRIBE}\nexport function fill(s, rows) { return { x: new Float32Array(rows.length * 3) }; }`,
        ),
      ),
    ).toContain('y is missing');
  });

  it('fill() returning a Promise', async () => {
    expect(loadFails(await prepared(`${DESCRIBE}\nexport async function fill() { return {}; }`))).toContain(
      'returned a Promise',
    );
  });

  it('a one-hot row with two ones', async () => {
    expect(
      loadFails(
        await prepared(`${DESCRIBE}\n${FILL.replace('y[i * 2 + (r % 2)] = 1;', 'y[i * 2] = 1; y[i * 2 + 1] = 1;')}`),
      ),
    ).toContain('y of row 0 has 2 ones');
  });

  it('describe() returning a Promise', async () => {
    const spec = await prepared(`${DESCRIBE.replace('export function', 'export async function')}\n${FILL}`);
    expect(expectCode(() => datasetShape(spec), 'DATASET_UNAVAILABLE')).toBe(
      `data module ${(spec as { path: string }).path}: describe() returned a Promise; describe must return the shape at once (not async)`,
    );
  });

  it('token inputs outside [0, vocab), negative or too large, naming the row and value', async () => {
    const tokens = (bad: string) =>
      prepared(`export function describe() { return { train: 6, test: 2, inputShape: [4], inputDtype: 'int32', outputSize: 4, targets: 'tokens', vocab: 5 }; }
export function fill(split, rows) {
  const x = new Float32Array(rows.length * 4).fill(1), y = new Float32Array(rows.length * 4).fill(2);
  if (split === 'test') x[5] = ${bad};
  return { x, y };
}`);
    expect(loadFails(await tokens('7'))).toContain(
      'fill("test", rows 0..1): x of row 1 holds 7, not a token id below vocab 5',
    );
    expect(loadFails(await tokens('-3'))).toContain('x of row 1 holds -3, not a token id below vocab 5');
    expect(loadDataset(await tokens('4'), 1).test.x[5]).toBe(4);
  });

  it('a fill that is not deterministic (Math.random)', async () => {
    const fill = FILL.replace('x.set([r, seed,', 'x.set([r, Math.random(),');
    expect(loadFails(await prepared(`${DESCRIBE}\n${fill}`))).toMatch(
      /fill\("train", rows 0\.\.5\) gave other values when asked again \(x of row 0\): fill must be deterministic/,
    );
  });

  it('a command that does not import modules says so', () => {
    const spec = parseDataSpec({ name: 'module', path: moduleFile(`${DESCRIBE}\n${FILL}`) });
    expect(expectCode(() => datasetShape(spec), 'DATASET_UNAVAILABLE')).toContain('not imported here');
  });
});

it('a relative data.path in a config file is relative to the file', () => {
  const sub = join(dir, 'configs');
  mkdirSync(sub, { recursive: true });
  writeFileSync(
    join(sub, 'job.json'),
    JSON.stringify({ data: { name: 'module', path: '../data.mjs' }, model: { kind: 'layers', path: 'm/model.json' } }),
  );
  const raw = readConfigFile(join(sub, 'job.json')) as { data: { path: string }; model: { path: string } };
  expect(raw.data.path).toBe(join(dir, 'data.mjs'));
  expect(raw.model.path).toBe(join(sub, 'm', 'model.json'));
});
