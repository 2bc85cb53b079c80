/**
 * The `layers` kind's own lines: what it refuses in a model.json (and why), the file's weights
 * as the initialization, its FLOPs counted by hand, and its export loadable by tfjs-layers.
 */
import * as tf from '@tensorflow/tfjs';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { exportLayersModel } from '../../../coordinator/model-export.js';
import type { DataShape } from '../../../shared/datasets/index.js';
import { initParams, layoutModel, modelKind, paramView, parseModelSpec } from '../../../shared/models/index.js';
import { tempDir } from '../../helpers/cli.js';
import { expectCode } from '../../helpers/expect-code.js';
import { layersModelFile } from '../../helpers/fixtures.js';

beforeAll(async () => {
  tf.enableProdMode();
  await tf.setBackend('cpu');
});

const dir = tempDir('layers-kind');
let files = 0;
const BARS: DataShape = { inputShape: [12, 12, 1], inputDtype: 'float32', outputSize: 4, targets: 'onehot' };
const POINTS: DataShape = { inputShape: [2], inputDtype: 'float32', outputSize: 3, targets: 'onehot' };

function file(json: unknown): string {
  const f = join(dir, `model-${files++}.json`);
  writeFileSync(f, JSON.stringify(json));
  return f;
}

/** A model.json of a tfjs-layers model's topology (no weights). */
function saved(model: tf.LayersModel): string {
  return file({ format: 'layers-model', modelTopology: model.toJSON(undefined, false) });
}

const dense = (layers: tf.layers.Layer[]) => {
  const m = tf.sequential();
  for (const l of layers) m.add(l);
  return m;
};

/** The one MODEL_INVALID line laying out the model at `path` on `data` gives. */
function refusal(path: string, data: DataShape = POINTS, loss?: string): string {
  const msg = expectCode(
    () => layoutModel(parseModelSpec({ kind: 'layers', path, ...(loss ? { loss } : {}) }), data),
    'MODEL_INVALID',
  );
  expect(msg).not.toContain('\n');
  return msg;
}

describe('refused with one line', () => {
  it('a Keras 3 config', () => {
    const layer = (cls: string, config: object) => ({
      module: 'keras.layers',
      class_name: cls,
      config,
      registered_name: null,
    });
    const topo = {
      keras_version: '3.3.3',
      backend: 'tensorflow',
      model_config: {
        class_name: 'Sequential',
        config: {
          name: 's',
          layers: [layer('InputLayer', { batch_shape: [null, 2] }), layer('Dense', { name: 'd', units: 3 })],
        },
      },
    };
    expect(refusal(file({ format: 'layers-model', modelTopology: topo }))).toMatch(
      /is a Keras 3 config \(keras_version 3\.3\.3\), which TF\.js cannot read/,
    );
  });

  it('a graph model', () => {
    expect(refusal(file({ format: 'graph-model', modelTopology: { node: [] } }))).toContain(
      'is a TF.js graph model, not a Layers model',
    );
  });

  it('JSON that is no model at all', () => {
    expect(refusal(file({ hello: 1 }))).toContain('has no modelTopology: not a TF.js Layers model.json');
  });

  it('a missing file', () => {
    expect(refusal(join(dir, 'none.json'))).toContain('none.json does not exist');
  });

  it('BatchNormalization, saying why', () => {
    const path = saved(
      dense([
        tf.layers.dense({ inputShape: [2], units: 4 }),
        tf.layers.batchNormalization({ name: 'bn' }),
        tf.layers.dense({ units: 3, activation: 'softmax' }),
      ]),
    );
    expect(refusal(path)).toMatch(
      /layer bn \(BatchNormalization\) is refused: its moving mean and variance are state outside/,
    );
  });

  it('Dropout with a rate, saying why; rate 0 trains', () => {
    const withRate = (rate: number) =>
      saved(
        dense([
          tf.layers.dense({ inputShape: [2], units: 4 }),
          tf.layers.dropout({ name: 'drop', rate }),
          tf.layers.dense({ units: 3, activation: 'softmax' }),
        ]),
      );
    expect(refusal(withRate(0.5))).toMatch(
      /layer drop \(Dropout\): Dropout with rate 0.5 is refused: its random mask would be drawn per shard/,
    );
    expect(layoutModel(parseModelSpec({ kind: 'layers', path: withRate(0) }), POINTS).totalParams).toBe(
      2 * 4 + 4 + 4 * 3 + 3,
    );
  });

  it('a layer class it does not run, listing those it does', () => {
    const path = saved(
      dense([
        tf.layers.dense({ inputShape: [2], units: 4 }),
        tf.layers.reshape({ name: 'r', targetShape: [2, 2] }),
        tf.layers.flatten({}),
        tf.layers.dense({ units: 3, activation: 'softmax' }),
      ]),
    );
    expect(refusal(path)).toMatch(
      /layer r \(Reshape\): layer class Reshape is not supported by model.kind layers \(supported: InputLayer, Dense/,
    );
  });

  it('a functional model that is not a chain', () => {
    const input = tf.input({ shape: [2], name: 'in' });
    const a = tf.layers.dense({ units: 3, name: 'a' }).apply(input) as tf.SymbolicTensor;
    const b = tf.layers.dense({ units: 3, name: 'b' }).apply(input) as tf.SymbolicTensor;
    const sum = tf.layers.add({ name: 'sum' }).apply([a, b]) as tf.SymbolicTensor;
    expect(refusal(saved(tf.model({ inputs: input, outputs: sum })))).toMatch(
      /layer (b|sum) does not take the layer before it alone/,
    );
  });

  it('an input shape other than the data', () => {
    expect(refusal(layersModelFile(false), POINTS)).toMatch(
      /takes inputs of shape \[12, 12, 1\], and the dataset gives \[2\]/,
    );
  });

  it('outputs other than the targets', () => {
    expect(refusal(layersModelFile(false), { ...BARS, outputSize: 10 })).toMatch(
      /gives outputs of shape \[4\], and the dataset has 10 target values per sample/,
    );
  });

  it('a cross-entropy loss on a model without its link', () => {
    const path = saved(dense([tf.layers.dense({ inputShape: [2], units: 3 })]));
    expect(refusal(path, POINTS, 'softmaxCrossEntropy')).toContain('needs the model to end in a softmax activation');
  });

  it('an input shape the file does not state', () => {
    const topo = {
      class_name: 'Sequential',
      config: { name: 's', layers: [{ class_name: 'Dense', config: { name: 'd', units: 3 } }] },
    };
    expect(refusal(file({ modelTopology: topo }))).toContain('declares no complete input shape');
  });

  it('weights that lack a layer', () => {
    const path = layersModelFile(true, 'renamed.json');
    const json = JSON.parse(readFileSync(path, 'utf8'));
    json.weightsManifest[0].weights[0].name = 'elsewhere/kernel';
    json.weightsManifest[0].weights.pop(); // fewer than the slots: no fallback to order
    writeFileSync(path, JSON.stringify(json));
    const layout = layoutModel(parseModelSpec({ kind: 'layers', path }), BARS);
    expect(expectCode(() => initParams(layout, 1), 'MODEL_INVALID')).toContain('its weights have no conv/kernel');
  });
});

describe('the example model (conv, pool, flatten, dense, dense)', () => {
  const spec = parseModelSpec({ kind: 'layers', path: layersModelFile(true) });
  const layout = layoutModel(spec, BARS);

  it('names its slots after the layers, and starts from the weights in the file', () => {
    expect(layout.params.map((s) => s.name)).toEqual([
      'conv/kernel',
      'conv/bias',
      'hidden/kernel',
      'hidden/bias',
      'out/kernel',
      'out/bias',
    ]);
    const saved = new Float32Array(new Uint8Array(readFileSync('examples/custom/weights.bin')).buffer);
    expect(initParams(layout, 1)).toEqual(saved);
    expect(initParams(layout, 2)).toEqual(saved); // the file's weights, not the seed
  });

  it('counts its FLOPs layer by layer', () => {
    // conv: 10×10 positions × (2·3·3·1·8 + 8 bias + 8 relu); pool: 4 per output of 5×5×8;
    // hidden: 2·200·16 + 16 + 16; out: 2·16·4 + 4 + 4 (softmax); the loss: 4.
    const forward = 100 * (144 + 16) + 4 * 200 + (6400 + 32) + (128 + 8) + 4;
    const f = modelKind(spec).flops(layout);
    expect(f.forward).toBe(forward);
    expect(f.training).toBe(3 * forward);
  });

  it(
    'exports a model.json that tfjs-layers loads and that predicts probabilities as the trained slots ' + 'do',
    async () => {
      const out = join(dir, 'export');
      const params = initParams(layout, 1).map((v, i) => v + 0.01 * Math.sin(i));
      await exportLayersModel(layout, params, out);
      const json = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8'));
      const bytes = new Uint8Array(readFileSync(join(out, 'weights.bin')));
      const loaded = await tf.loadLayersModel(
        tf.io.fromMemory({
          modelTopology: json.modelTopology,
          weightSpecs: json.weightsManifest[0].weights,
          weightData: bytes.buffer,
        }),
      );
      const x = tf.randomUniform([3, 12, 12, 1], 0, 1, 'float32', 5);
      const ws = layout.params.map((s) => tf.tensor(paramView(params, s), s.shape));
      const ours = tf.softmax(modelKind(spec).forward(layout, ws, x)).dataSync();
      const theirs = (loaded.predict(x) as tf.Tensor).dataSync();
      for (let i = 0; i < ours.length; i++) expect(Math.abs(ours[i] - theirs[i])).toBeLessThan(1e-5);
    },
  );
});

describe('the job pins its model.json', () => {
  const model = () => dense([tf.layers.dense({ inputShape: [2], units: 3, activation: 'softmax' })]);

  it('parsing a config pins the file it reads; the pinned spec lays out while the file is the same', () => {
    const path = saved(model());
    const spec = parseModelSpec({ kind: 'layers', path }) as { sha256?: string };
    expect(spec.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(parseModelSpec({ ...spec }) as { sha256?: string }).toEqual(spec);
    expect(layoutModel(parseModelSpec({ ...spec }), POINTS).totalParams).toBe(2 * 3 + 3);
  });

  it('a process whose model.json differs from the pinned one is refused, naming the file', () => {
    const mine = saved(model());
    const theirs = saved(dense([tf.layers.dense({ inputShape: [2], units: 3, activation: 'sigmoid' })]));
    const pinned = parseModelSpec({ kind: 'layers', path: theirs }) as { sha256?: string };
    const msg = expectCode(
      () => layoutModel(parseModelSpec({ kind: 'layers', path: mine, sha256: pinned.sha256 }), POINTS),
      'MODEL_INVALID',
    );
    expect(msg).toContain(mine);
    expect(msg).toContain('is not the job');
    expect(msg).not.toContain('\n');
    expectCode(() => parseModelSpec({ kind: 'layers', path: mine, sha256: 'abc' }), 'MODEL_INVALID');
  });
});
