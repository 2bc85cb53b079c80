/**
 * examples/custom as its README runs it: the user's own Layers model (model.json) on the user's
 * own dataset module, 2 workers, briefly; the trained model comes back as a model.json that
 * tfjs-layers loads. And a module that fails is one line naming it, not a stack trace.
 */
import * as tf from '@tensorflow/tfjs';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSummary, runCli, tempDir } from '../helpers/cli.js';

const JOB = resolve(__dirname, '../../examples/custom/job.json');

describe('examples/custom', () => {
  it('trains with 2 workers, learns, and exports a model tfjs-layers loads', async () => {
    const out = join(tempDir('custom'), 'run');
    const r = await runCli(['train', '--config', JOB, '--workers', '2', '--steps', '60', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const s = readSummary(out);
    expect(s.workers).toBe(2);
    // Four classes: chance is 25%; 60 steps is well above it.
    expect(s.testAccuracy).toBeGreaterThan(0.5);
    const json = JSON.parse(readFileSync(join(out, 'model', 'model.json'), 'utf8'));
    const weights = new Uint8Array(readFileSync(join(out, 'model', 'weights.bin')));
    const model = await tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: json.modelTopology,
        weightSpecs: json.weightsManifest[0].weights,
        weightData: weights.buffer,
      }),
    );
    expect(model.layers.map((l) => l.name)).toEqual(['conv', 'pool', 'flatten', 'hidden', 'out']);
    const p = (model.predict(tf.zeros([1, 12, 12, 1])) as tf.Tensor).dataSync();
    expect(Array.from(p).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5); // softmax kept: probabilities
  });

  it('a dataset module that throws is one line naming it', async () => {
    const dir = tempDir('custom-bad');
    writeFileSync(
      join(dir, 'broken.mjs'),
      "export function describe() { throw new Error('no such table'); }\nexport function fill() {}\n",
    );
    const job = JSON.parse(readFileSync(JOB, 'utf8'));
    writeFileSync(
      join(dir, 'job.json'),
      JSON.stringify({
        ...job,
        data: { name: 'module', path: 'broken.mjs' },
        model: { ...job.model, path: resolve(__dirname, '../../examples/custom/model.json') },
      }),
    );
    const r = await runCli(['train', '--config', join(dir, 'job.json'), '--workers', '1', '--out', join(dir, 'run')]);
    expect(r.code).not.toBe(0);
    const lines = r.stderr
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('dptrain:'));
    expect(lines).toEqual([
      `dptrain: DATASET_UNAVAILABLE: data module ${join(dir, 'broken.mjs')}: describe() threw Error: no such table`,
    ]);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});
