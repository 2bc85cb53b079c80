/**
 * `module`: the user's own dataset, a JavaScript module (ESM) named by `data.path`, imported
 * with dynamic import() on every side that needs it (coordinator and workers). It exports
 *
 *   describe(options, want) → { train, test, inputShape, inputDtype?, outputSize, targets, vocab?, alphabet? }
 *   fill(split, rows, ctx)  → { x, y }
 *
 * `describe` states the row counts and shapes from `data.options` alone (`want.seq` is the window
 * a sequence model asks for); `fill` returns the rows asked for ('train' or 'test', row indices
 * in an Int32Array), flat and row-major, x of rows × inputSize and y of rows × outputSize values;
 * `ctx` is { seed, options } (seed: the job's, for synthetic data). Both may be named exports or
 * members of the default export. The rows are gathered once at load, in blocks, and checked
 * against the declared target kind (token inputs against vocab); the first rows are asked for
 * once more, to refuse a fill that is not deterministic. Everything the module gets wrong is one DATASET_UNAVAILABLE
 * line naming the module; the fingerprint covers the module file's bytes and what it declares.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { fail, isDptrainError } from '../util/errors.js';
import { checkKeys, isObj, str, type Json } from '../job/fields.js';
import {
  dataset,
  sizeOf,
  type DataShape,
  type DatasetModule,
  type SampleRequest,
  type Split,
  type TargetKind,
} from './dataset.js';

export interface ModuleSpec {
  name: 'module';
  /** The module file; a relative path in a config file is resolved against the file's folder. */
  path: string;
  /** Passed to the module's describe and fill as they are. */
  options: Json;
}

interface Described extends DataShape {
  train: number;
  test: number;
}

interface UserModule {
  describe: (options: Json, want: SampleRequest) => unknown;
  fill: (split: 'train' | 'test', rows: Int32Array, ctx: { seed: number; options: Json }) => unknown;
  /** sha-256 of the file, to the fingerprint. */
  hash: string;
}

const TARGETS: readonly TargetKind[] = ['onehot', 'binary', 'real', 'tokens'];
/** Rows per fill call at load. */
const BLOCK = 4096;
/** Rows asked for a second time, alone, to catch a fill that is not deterministic (Math.random). */
const RECHECK = 16;
const loaded = new Map<string, UserModule>();

const firstLine = (e: unknown) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e)).split('\n')[0];

function bad(spec: ModuleSpec, what: string): never {
  return fail('DATASET_UNAVAILABLE', `data module ${spec.path}: ${what}`);
}

async function importModule(spec: ModuleSpec): Promise<UserModule> {
  const file = resolve(spec.path);
  if (!existsSync(file)) fail('DATASET_UNAVAILABLE', `data.path: ${spec.path} does not exist`);
  let ns: Record<string, unknown>;
  try {
    ns = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (e) {
    return bad(spec, `importing it failed: ${firstLine(e)}`);
  }
  const def = ns.default;
  const from = typeof ns.describe === 'function' || !isObj(def) ? ns : def;
  for (const fn of ['describe', 'fill']) {
    if (typeof from[fn] !== 'function') {
      bad(
        spec,
        `it exports no ${fn}() function (a dataset module exports describe(options, want) and fill(split, rows, ctx))`,
      );
    }
  }
  const hash = createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 16);
  return { describe: from.describe as UserModule['describe'], fill: from.fill as UserModule['fill'], hash };
}

function userModule(spec: ModuleSpec): UserModule {
  return loaded.get(resolve(spec.path)) ?? bad(spec, 'not imported here: this command does not read dataset modules');
}

/** Call the module, turning what it throws into one line naming it and the call. */
function call<T>(spec: ModuleSpec, what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (isDptrainError(e)) throw e;
    return bad(spec, `${what} threw ${firstLine(e)}`);
  }
}

const posInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 1;

/** An async function's result: its fields would all read undefined, so it gets a line of its own. */
const isPromise = (v: unknown) => v instanceof Promise || (isObj(v) && typeof v.then === 'function');

function describeData(spec: ModuleSpec, want: SampleRequest): Described {
  const m = userModule(spec);
  const d = call(spec, 'describe()', () => m.describe(spec.options, want));
  if (isPromise(d)) bad(spec, 'describe() returned a Promise; describe must return the shape at once (not async)');
  const wrong = (field: string, must: string, v: unknown) =>
    bad(spec, `describe() returned ${field} ${JSON.stringify(v)}: it must be ${must}`);
  if (!isObj(d))
    return bad(
      spec,
      `describe() returned ${JSON.stringify(d)}, not an object {train, test, inputShape, outputSize, targets}`,
    );
  if (!posInt(d.train)) wrong('train', 'the number of training rows (≥ 1)', d.train);
  if (!posInt(d.test)) wrong('test', 'the number of test rows (≥ 1)', d.test);
  if (!Array.isArray(d.inputShape) || d.inputShape.length === 0 || !d.inputShape.every((v) => posInt(v))) {
    wrong('inputShape', 'a non-empty array of positive integers (one sample, e.g. [2] or [28, 28, 1])', d.inputShape);
  }
  const inputDtype = d.inputDtype ?? 'float32';
  if (inputDtype !== 'float32' && inputDtype !== 'int32')
    wrong('inputDtype', '"float32" or "int32" (token ids)', d.inputDtype);
  if (!posInt(d.outputSize)) wrong('outputSize', 'a positive integer (target values per row)', d.outputSize);
  if (!TARGETS.includes(d.targets as TargetKind)) wrong('targets', TARGETS.map((t) => `"${t}"`).join(', '), d.targets);
  if (d.targets === 'tokens' && !posInt(d.vocab)) wrong('vocab', 'a positive integer with targets "tokens"', d.vocab);
  if (d.alphabet !== undefined && typeof d.alphabet !== 'string') wrong('alphabet', 'a string', d.alphabet);
  return {
    train: d.train as number,
    test: d.test as number,
    inputShape: (d.inputShape as number[]).slice(),
    inputDtype: inputDtype as DataShape['inputDtype'],
    outputSize: d.outputSize as number,
    targets: d.targets as TargetKind,
    ...(d.targets === 'tokens' ? { vocab: d.vocab as number } : {}),
    ...(typeof d.alphabet === 'string' ? { alphabet: d.alphabet } : {}),
  };
}

const shapeOf = ({ train: _t, test: _s, ...shape }: Described): DataShape => shape;

const isTokenId = (v: number, vocab: number) => Number.isInteger(v) && v >= 0 && v < vocab;

/** The first value of a block of targets (its first row is row `from`) that its target kind forbids, as words; or null. */
function targetProblem(d: DataShape, y: Float32Array, from: number): string | null {
  const k = d.outputSize;
  for (let r = 0; r < y.length / k; r++) {
    let ones = 0;
    for (let j = r * k; j < (r + 1) * k; j++) {
      const v = y[j];
      if (d.targets === 'tokens' ? !isTokenId(v, d.vocab!) : !Number.isFinite(v)) {
        return (
          `y of row ${from + r} holds ${v}, ` +
          `${d.targets === 'tokens' ? `not a token id below vocab ${d.vocab}` : 'not a finite number'}`
        );
      }
      if ((d.targets === 'onehot' || d.targets === 'binary') && v !== 0 && v !== 1)
        return `y of row ${from + r} holds ${v}; "${d.targets}" targets are 0 or 1`;
      ones += v;
    }
    if (d.targets === 'onehot' && ones !== 1)
      return `y of row ${from + r} has ${ones} ones; a "onehot" row has exactly one`;
  }
  return null;
}

/**
 * The first input of a block that its dtype forbids, as words; or null. Token ids must also be
 * below vocab: the one-hot embedding would turn one outside it into zeros and train silently.
 */
function inputProblem(d: DataShape, x: Float32Array, from: number): string | null {
  const k = sizeOf(d.inputShape);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    const where = `x of row ${from + Math.floor(i / k)} holds ${v}`;
    if (d.inputDtype === 'float32' && !Number.isFinite(v)) return `${where}, not a finite number`;
    if (d.inputDtype === 'int32' && d.vocab !== undefined && !isTokenId(v, d.vocab))
      return `${where}, not a token id below vocab ${d.vocab}`;
    if (d.inputDtype === 'int32' && !Number.isInteger(v)) return `${where}, not an integer id`;
  }
  return null;
}

/** fill's {x, y} for rows, checked for shape (not yet for values). */
function fillRows(
  spec: ModuleSpec,
  m: UserModule,
  d: Described,
  split: 'train' | 'test',
  rows: Int32Array,
  seed: number,
): { what: string; x: Float32Array; y: Float32Array } {
  const inSize = sizeOf(d.inputShape);
  const what = `fill("${split}", rows ${rows[0]}..${rows[rows.length - 1]})`;
  const r = call(spec, what, () => m.fill(split, rows, { seed, options: spec.options }));
  if (isPromise(r)) bad(spec, `${what} returned a Promise; fill must return {x, y} at once`);
  if (!isObj(r)) bad(spec, `${what} returned ${JSON.stringify(r)}, not {x, y}`);
  const x = values(
    spec,
    r.x,
    `${what}: x`,
    rows.length * inSize,
    `${rows.length} rows × ${inSize} inputs, inputShape [${d.inputShape.join(', ')}]`,
  );
  const y = values(
    spec,
    r.y,
    `${what}: y`,
    rows.length * d.outputSize,
    `${rows.length} rows × ${d.outputSize} outputs`,
  );
  return { what, x, y };
}

/** One array of fill's result, checked for length. */
function values(spec: ModuleSpec, v: unknown, what: string, want: number, per: string): Float32Array {
  const arr = ArrayBuffer.isView(v) || Array.isArray(v) ? Float32Array.from(v as ArrayLike<number>) : null;
  if (arr === null)
    return bad(
      spec,
      `${what} is ${v === undefined ? 'missing' : typeof v}; it must be an array or typed array of ${per}`,
    );
  if (arr.length !== want) bad(spec, `${what} has ${arr.length} values; expected ${want} (${per})`);
  return arr;
}

function gatherSplit(spec: ModuleSpec, m: UserModule, d: Described, split: 'train' | 'test', seed: number): Split {
  const n = d[split];
  const inSize = sizeOf(d.inputShape);
  const x = new Float32Array(n * inSize);
  const y = new Float32Array(n * d.outputSize);
  for (let from = 0; from < n; from += BLOCK) {
    const rows = Int32Array.from({ length: Math.min(BLOCK, n - from) }, (_, i) => from + i);
    const b = fillRows(spec, m, d, split, rows, seed);
    const problem = inputProblem(d, b.x, from) ?? targetProblem(d, b.y, from);
    if (problem) bad(spec, `${b.what}: ${problem}`);
    x.set(b.x, from * inSize);
    y.set(b.y, from * d.outputSize);
  }
  // Every process fills its own copy: a module whose rows change from call to call (Math.random,
  // the time) would make each worker's data differ, refused later with a misleading hint.
  const again = fillRows(
    spec,
    m,
    d,
    split,
    Int32Array.from({ length: Math.min(RECHECK, n) }, (_, i) => i),
    seed,
  );
  const differs = (a: Float32Array, b: Float32Array) => a.findIndex((v, i) => v !== b[i]);
  const dx = differs(again.x, x);
  const dy = differs(again.y, y);
  if (dx >= 0 || dy >= 0) {
    const row = dx >= 0 ? `x of row ${Math.floor(dx / inSize)}` : `y of row ${Math.floor(dy / d.outputSize)}`;
    bad(
      spec,
      `${again.what} gave other values when asked again (${row}): fill must be deterministic, the same rows whatever is asked with them (derive randomness from ctx.seed)`,
    );
  }
  return { x, y, n };
}

export const moduleData: DatasetModule<ModuleSpec> = {
  name: 'module',
  parse(raw) {
    checkKeys(raw, ['name', 'path', 'options'], 'data.');
    const options = raw.options ?? {};
    if (!isObj(options)) fail('CONFIG_INVALID', 'data.options must be an object (passed to the module as it is)');
    return {
      name: 'module',
      path: str(raw.path, 'data.path', 'a JavaScript module (.mjs) exporting describe and fill'),
      options,
    };
  },
  async prepare(spec) {
    const key = resolve(spec.path);
    if (!loaded.has(key)) loaded.set(key, await importModule(spec));
  },
  shape: (spec, want) => shapeOf(describeData(spec, want)),
  load(spec, seed, want) {
    const m = userModule(spec);
    const d = describeData(spec, want);
    const ds = dataset(
      'module',
      shapeOf(d),
      gatherSplit(spec, m, d, 'train', seed),
      gatherSplit(spec, m, d, 'test', seed),
    );
    return { ...ds, source: `${m.hash}:${JSON.stringify(d)}:${JSON.stringify(spec.options)}` };
  },
};
