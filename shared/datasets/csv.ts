/**
 * `csv`: a CSV file with a header row: numeric feature columns and a label column, for
 * classification (the label's distinct values, in sorted order, are the classes: one-hot
 * targets) or regression (a numeric label: real targets). Every k-th row, evenly spaced, is held
 * out for testing. The shape depends on the file (columns, classes), so whoever lays out the
 * model (the coordinator too) reads it. A cell that is not a number (or not one float32 can
 * hold) is one line naming its row and column. Numeric labels that are equal numbers ("1",
 * "1.0") are one class, named as first written.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fail } from '../util/errors.js';
import { checkKeys, num, oneOf, str } from '../job/fields.js';
import { dataset, oneHot, whereRelative, type DataShape, type DatasetModule, type Split } from './dataset.js';

export const CSV_TASKS = ['classification', 'regression'] as const;

export interface CsvSpec {
  name: 'csv';
  path: string;
  /** The label column's header. */
  label: string;
  task: (typeof CSV_TASKS)[number];
  testFraction: number;
}

/** Fields of one CSV line: commas separate, double quotes enclose ("" is a quote inside). */
export function csvFields(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out.map((f) => f.trim());
}

interface Table {
  features: string[];
  /** Row-major features, one row per data line. */
  x: Float32Array;
  labels: string[];
  n: number;
}

/**
 * A cell as a float32 feature or target; NaN where it is not a number. Number() reads more than
 * decimals (hex "0x10" is 16); a value past float32's range would be Infinity in the batch.
 */
function cellValue(cell: string): number {
  const v = cell === '' ? NaN : Number(cell);
  return Number.isFinite(Math.fround(v)) ? v : NaN;
}

/** Why a cell is refused: words after its quoted text. */
const notNumber = (cell: string) =>
  Number.isFinite(Number(cell)) && cell !== '' ? 'is beyond float32 range (±3.4e38)' : 'is not a number';

function readTable(spec: CsvSpec): Table {
  if (!existsSync(spec.path))
    fail('DATASET_UNAVAILABLE', `data.path: ${spec.path} does not exist${whereRelative(spec.path)}`);
  const text = readFileSync(spec.path, 'utf8');
  if (text.trim() === '')
    fail('DATASET_UNAVAILABLE', `data.path: ${spec.path} is empty (a CSV file needs a header row)`);
  const lines = text.split(/\r?\n/);
  const header = csvFields(lines[0] ?? '');
  // indexOf would read the first of two same-named columns and train the other as a feature.
  const twice = header.findIndex((h, i) => header.indexOf(h) !== i);
  if (twice >= 0)
    fail(
      'DATASET_UNAVAILABLE',
      `data.path: ${spec.path} has two columns named "${header[twice]}" (columns ${header.indexOf(header[twice]) + 1} and ${twice + 1}); name each column once`,
    );
  const labelAt = header.indexOf(spec.label);
  if (labelAt < 0)
    fail(
      'DATASET_UNAVAILABLE',
      `data.label: ${spec.path} has no column "${spec.label}" (its header: ${header.join(', ')})`,
    );
  const features = header.filter((_, i) => i !== labelAt);
  if (features.length === 0)
    fail('DATASET_UNAVAILABLE', `data.path: ${spec.path} has no feature column beside "${spec.label}"`);
  const rows: number[] = [];
  const labels: string[] = [];
  lines.slice(1).forEach((line, i) => {
    if (line.trim() === '') return;
    const row = i + 2; // 1-based, the header is row 1
    const cells = csvFields(line);
    if (cells.length !== header.length)
      fail('DATASET_UNAVAILABLE', `${spec.path}: row ${row} has ${cells.length} cells, the header ${header.length}`);
    cells.forEach((cell, c) => {
      if (c === labelAt) {
        labels.push(cell);
        return;
      }
      const v = cellValue(cell);
      if (Number.isNaN(v))
        fail(
          'DATASET_UNAVAILABLE',
          `${spec.path}: row ${row}, column "${header[c]}": ${JSON.stringify(cell)} ${notNumber(cell)}`,
        );
      rows.push(v);
    });
    const label = labels[labels.length - 1];
    if (spec.task === 'regression' && Number.isNaN(cellValue(label))) {
      fail(
        'DATASET_UNAVAILABLE',
        `${spec.path}: row ${row}, label "${spec.label}": ${JSON.stringify(label)} ${notNumber(label)} (data.task is regression)`,
      );
    }
  });
  if (labels.length === 0) fail('DATASET_UNAVAILABLE', `data.path: ${spec.path} has a header but no rows`);
  return { features, x: Float32Array.from(rows), labels, n: labels.length };
}

/**
 * The classes: distinct labels, numerically sorted when all are numbers (equal numbers, "1"
 * and "1.0", are one class, named as first written), else sorted as strings; and each label's
 * class index.
 */
function classesOf(labels: string[]): { classes: string[]; index: (label: string) => number } {
  const distinct = [...new Set(labels)];
  const numeric = distinct.every((l) => l !== '' && Number.isFinite(Number(l)));
  if (!numeric) {
    const classes = distinct.sort();
    const at = new Map(classes.map((c, i) => [c, i]));
    return { classes, index: (l) => at.get(l)! };
  }
  const named = new Map<number, string>();
  for (const l of distinct) if (!named.has(Number(l))) named.set(Number(l), l);
  const values = [...named.keys()].sort((a, b) => a - b);
  const at = new Map(values.map((v, i) => [v, i]));
  return { classes: values.map((v) => named.get(v)!), index: (l) => at.get(Number(l))! };
}

function shapeOf(spec: CsvSpec, t: Table): DataShape {
  const classes = spec.task === 'regression' ? null : classesOf(t.labels).classes;
  const outputs = classes ? classes.length : 1;
  if (spec.task === 'classification' && outputs < 2)
    fail(
      'DATASET_UNAVAILABLE',
      `data.label: column "${spec.label}" has one value only; classification needs two classes or more`,
    );
  return {
    inputShape: [t.features.length],
    inputDtype: 'float32',
    outputSize: outputs,
    targets: spec.task === 'regression' ? 'real' : 'onehot',
    ...(classes ? { classes } : {}),
  };
}

export const csv: DatasetModule<CsvSpec> = {
  name: 'csv',
  parse(raw) {
    checkKeys(raw, ['name', 'path', 'label', 'task', 'testFraction'], 'data.');
    return {
      name: 'csv',
      path: str(raw.path, 'data.path', 'a CSV file with a header row'),
      label: str(raw.label, 'data.label', 'the label column (its header)'),
      task: oneOf(raw.task ?? 'classification', 'data.task', CSV_TASKS),
      testFraction: num(raw.testFraction ?? 0.2, 'data.testFraction', { min: 0, max: 0.9 }),
    };
  },
  shape: (spec) => shapeOf(spec, readTable(spec)),
  load(spec) {
    const t = readTable(spec);
    const shape = shapeOf(spec, t);
    const d = t.features.length;
    const classes = classesOf(t.labels);
    const y =
      spec.task === 'regression'
        ? Float32Array.from(t.labels, Number)
        : oneHot(t.labels.map(classes.index), classes.classes.length);
    const isTest = (i: number) => Math.floor((i + 1) * spec.testFraction) > Math.floor(i * spec.testFraction);
    const take = (test: boolean): Split => {
      const idx = Array.from({ length: t.n }, (_, i) => i).filter((i) => isTest(i) === test);
      const x = new Float32Array(idx.length * d);
      const ys = new Float32Array(idx.length * shape.outputSize);
      idx.forEach((i, r) => {
        x.set(t.x.subarray(i * d, (i + 1) * d), r * d);
        ys.set(y.subarray(i * shape.outputSize, (i + 1) * shape.outputSize), r * shape.outputSize);
      });
      return { x, y: ys, n: idx.length };
    };
    return dataset('csv', shape, take(false), take(true));
  },
};
