import * as tf from '@tensorflow/tfjs';
import { readFileSync, writeFileSync } from 'node:fs';
import { exportLayersModel } from '../../coordinator/model-export.js';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../shared/job/config.js';
import { csvFields } from '../../shared/datasets/csv.js';
import { loadDataset, parseDataSpec } from '../../shared/datasets/index.js';
import { jobLayout } from '../../shared/job/job-layout.js';
import { tempDir } from '../helpers/cli.js';
import { expectCode } from '../helpers/expect-code.js';

const dir = tempDir('csv');
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const IRIS = file(
  'iris.csv',
  'sepal,petal,"kind, of"\n5.1,1.4,setosa\n7.0,4.7,versicolor\n6.3,6.0,virginica\n4.9,1.4,setosa\n\n6.4,4.5,versicolor\n',
);

describe('csv dataset', () => {
  it('reads quoted fields with commas and doubled quotes', () => {
    expect(csvFields('a,"b, c","say ""hi"""')).toEqual(['a', 'b, c', 'say "hi"']);
  });

  it('classification: features in column order, classes sorted, every k-th row held out', () => {
    const ds = loadDataset(parseDataSpec({ name: 'csv', path: IRIS, label: 'kind, of', testFraction: 0.4 }), 0);
    expect([ds.inputShape, ds.outputSize, ds.targets]).toEqual([[2], 3, 'onehot']);
    expect(ds.train.n + ds.test.n).toBe(5); // the blank line is skipped
    expect(ds.test.n).toBe(2);
    // rows 0..4: held out where floor((i+1)·0.4) > floor(i·0.4): rows 2 and 4
    expect(Array.from(ds.test.x)).toEqual([6.3, 6.0, 6.4, 4.5].map(Math.fround));
    expect(Array.from(ds.test.y)).toEqual([0, 0, 1, 0, 1, 0]); // virginica = class 2, versicolor = class 1
  });

  it('regression: a numeric label gives one real output', () => {
    const p = file('reg.csv', 'x1,x2,y\n1,2,3.5\n2,3,5.5\n3,4,7.5\n');
    const ds = loadDataset(parseDataSpec({ name: 'csv', path: p, label: 'y', task: 'regression', testFraction: 0 }), 0);
    expect([ds.outputSize, ds.targets, Array.from(ds.train.y)]).toEqual([1, 'real', [3.5, 5.5, 7.5]]);
  });

  it('the exported model names its classes, in output order (model.getUserDefinedMetadata())', async () => {
    const model = { layers: [{ units: 3 }], loss: 'softmaxCrossEntropy' };
    const layout = jobLayout(parseConfig({ data: { name: 'csv', path: IRIS, label: 'kind, of' }, model }));
    const out = join(dir, 'model');
    await exportLayersModel(layout, new Float32Array(layout.totalParams), out);
    const json = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8'));
    const loaded = await tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: json.modelTopology,
        weightSpecs: json.weightsManifest[0].weights,
        weightData: new Uint8Array(readFileSync(join(out, 'weights.bin'))).buffer,
        userDefinedMetadata: json.userDefinedMetadata,
      }),
    );
    expect(loaded.getUserDefinedMetadata()).toEqual({ dptrain: { classes: ['setosa', 'versicolor', 'virginica'] } });
  });

  it('regression wants meanSquaredError: a cross-entropy (whose sigmoid bounds the outputs to (0, 1)) is refused', () => {
    const data = { name: 'csv', path: file('reg2.csv', 'x1,y\n1,3.5\n2,5.5\n3,7.5\n'), label: 'y', task: 'regression' };
    const layout = (loss: string) => jobLayout(parseConfig({ data, model: { layers: [{ units: 1 }], loss } }));
    expect(expectCode(() => layout('binaryCrossEntropy'), 'MODEL_INVALID')).toBe(
      "model.loss binaryCrossEntropy is for classes; the data's targets are real numbers: use meanSquaredError",
    );
    expect(layout('meanSquaredError').totalParams).toBe(2);
  });

  it('a dense model lays out on it; a cnn or gpt is refused in one line', () => {
    const model = { layers: [{ units: 4, activation: 'relu' }, { units: 3 }], loss: 'softmaxCrossEntropy' };
    expect(jobLayout(parseConfig({ data: { name: 'csv', path: IRIS, label: 'kind, of' }, model })).totalParams).toBe(
      2 * 4 + 4 + 4 * 3 + 3,
    );
    const cnn = {
      kind: 'cnn',
      layers: [{ type: 'flatten' }, { type: 'dense', units: 3 }],
      loss: 'softmaxCrossEntropy',
    };
    expect(
      expectCode(
        () => jobLayout(parseConfig({ data: { name: 'csv', path: IRIS, label: 'kind, of' }, model: cnn })),
        'MODEL_INVALID',
      ),
    ).toContain('model.kind cnn needs images');
  });

  it('bad input: one line naming the row and column, the label, or the file', () => {
    const bad = file('bad.csv', 'a,b,label\n1,2,x\n3,abc,y\n');
    expect(
      expectCode(
        () => loadDataset(parseDataSpec({ name: 'csv', path: bad, label: 'label' }), 0),
        'DATASET_UNAVAILABLE',
      ),
    ).toContain('row 3, column "b": "abc" is not a number');
    expect(
      expectCode(
        () => loadDataset(parseDataSpec({ name: 'csv', path: IRIS, label: 'species' }), 0),
        'DATASET_UNAVAILABLE',
      ),
    ).toContain('has no column "species"');
    const short = file('short.csv', 'a,b,label\n1,2,x\n3,y\n');
    expect(
      expectCode(
        () => loadDataset(parseDataSpec({ name: 'csv', path: short, label: 'label' }), 0),
        'DATASET_UNAVAILABLE',
      ),
    ).toContain('row 3 has 2 cells, the header 3');
    expect(
      expectCode(
        () => loadDataset(parseDataSpec({ name: 'csv', path: IRIS, label: 'kind, of', task: 'regression' }), 0),
        'DATASET_UNAVAILABLE',
      ),
    ).toContain('"setosa" is not a number (data.task is regression)');
    expect(expectCode(() => parseDataSpec({ name: 'csv', path: IRIS }), 'CONFIG_INVALID')).toContain(
      'data.label must name',
    );
    expect(
      expectCode(
        () => loadDataset(parseDataSpec({ name: 'csv', path: join(dir, 'nope.csv'), label: 'y' }), 0),
        'DATASET_UNAVAILABLE',
      ),
    ).toContain('nope.csv does not exist');
    // A relative path: where it was looked for.
    expect(
      expectCode(
        () => loadDataset(parseDataSpec({ name: 'csv', path: 'no/such.csv', label: 'y' }), 0),
        'DATASET_UNAVAILABLE',
      ),
    ).toBe(
      `data.path: no/such.csv does not exist (looked for ${join(process.cwd(), 'no/such.csv')}: relative paths start at the working directory)`,
    );
  });

  const loadFails = (path: string, task = 'classification') =>
    expectCode(() => loadDataset(parseDataSpec({ name: 'csv', path, label: 'label', task }), 0), 'DATASET_UNAVAILABLE');

  it('a number float32 cannot hold (1e39) is refused like NaN, in a feature or a regression label', () => {
    expect(loadFails(file('big.csv', 'a,b,label\n1,2,x\n1e39,3,y\n'))).toBe(
      `${join(dir, 'big.csv')}: row 3, column "a": "1e39" is beyond float32 range (±3.4e38)`,
    );
    expect(loadFails(file('bigy.csv', 'a,label\n1,2\n2,-1e39\n'), 'regression')).toContain(
      'row 3, label "label": "-1e39" is beyond float32 range (±3.4e38) (data.task is regression)',
    );
    expect(loadFails(file('inf.csv', 'a,b,label\n1,Infinity,x\n'))).toContain('"Infinity" is not a number');
  });

  it('labels that are equal numbers ("1", "1.0") are one class, named as first written', () => {
    const p = file('numlabels.csv', 'a,label\n1,10\n2,9\n3,1.0\n4,1\n5,9.0\n');
    const ds = loadDataset(parseDataSpec({ name: 'csv', path: p, label: 'label', testFraction: 0 }), 0);
    expect([ds.classes, ds.outputSize]).toEqual([['1.0', '9', '10'], 3]);
    expect(Array.from(ds.train.y)).toEqual([0, 0, 1, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0]);
  });

  it('an empty file says so; two columns of one name are refused', () => {
    expect(loadFails(file('empty.csv', ''))).toBe(
      `data.path: ${join(dir, 'empty.csv')} is empty (a CSV file needs a header row)`,
    );
    expect(loadFails(file('dup.csv', 'a,b,a,label\n1,2,3,x\n4,5,6,y\n'))).toBe(
      `data.path: ${join(dir, 'dup.csv')} has two columns named "a" (columns 1 and 3); name each column once`,
    );
  });
});
