/**
 * What a dataset module throws that is not a DptrainError (a bug, a parser's SyntaxError, an
 * fs error) reaches the user as one DATASET_UNAVAILABLE line naming the dataset.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it, vi } from 'vitest';
import { datasetShape, loadDataset, parseDataSpec } from '../../shared/datasets/index.js';
import { xor } from '../../shared/datasets/xor.js';
import { tempDir } from '../helpers/cli.js';
import { expectCode } from '../helpers/expect-code.js';

afterEach(() => {
  vi.restoreAllMocks();
});

it('a csv path that is a directory: the fs error, naming the dataset and path', () => {
  const dir = join(tempDir('dataset-errors'), 'a-dir.csv');
  mkdirSync(dir, { recursive: true });
  const spec = parseDataSpec({ name: 'csv', path: dir, label: 'y' });
  expect(expectCode(() => loadDataset(spec, 0), 'DATASET_UNAVAILABLE')).toMatch(
    new RegExp(`^data csv \\(${dir}\\): Error: EISDIR`),
  );
});

it("a built-in module's plain Error from load or shape, one line naming the dataset", () => {
  vi.spyOn(xor, 'load').mockImplementation(() => {
    throw new SyntaxError("Expected property name or '}' in JSON at position 1\n    at JSON.parse");
  });
  vi.spyOn(xor, 'shape').mockImplementation(() => {
    throw new RangeError('too big');
  });
  const spec = parseDataSpec({ name: 'xor' });
  expect(expectCode(() => loadDataset(spec, 0), 'DATASET_UNAVAILABLE')).toBe(
    "data xor: SyntaxError: Expected property name or '}' in JSON at position 1",
  );
  expect(expectCode(() => datasetShape(spec), 'DATASET_UNAVAILABLE')).toBe('data xor: RangeError: too big');
});

it("a module's own DptrainError passes as it is", () => {
  const spec = parseDataSpec({ name: 'csv', path: '/nonexistent/x.csv', label: 'y' });
  expect(expectCode(() => loadDataset(spec, 0), 'DATASET_UNAVAILABLE')).toBe(
    'data.path: /nonexistent/x.csv does not exist',
  );
});
