/**
 * Builds the example's model with tfjs-layers and saves it as model.json + weights.bin next to
 * this file: a small convolutional classifier for the 12×12 bar images of bars.mjs. The saved
 * weights (seeded Glorot) are what dptrain starts from.
 *
 *   node examples/custom/make-model.mjs
 */
import * as tf from '@tensorflow/tfjs';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const init = (seed) => tf.initializers.glorotUniform({ seed });

const model = tf.sequential();
model.add(
  tf.layers.conv2d({
    name: 'conv',
    inputShape: [12, 12, 1],
    filters: 8,
    kernelSize: 3,
    activation: 'relu',
    kernelInitializer: init(1),
  }),
);
model.add(tf.layers.maxPooling2d({ name: 'pool', poolSize: 2 }));
model.add(tf.layers.flatten({ name: 'flatten' }));
model.add(tf.layers.dense({ name: 'hidden', units: 16, activation: 'relu', kernelInitializer: init(2) }));
model.add(tf.layers.dense({ name: 'out', units: 4, activation: 'softmax', kernelInitializer: init(3) }));

await model.save(
  tf.io.withSaveHandler(async (a) => {
    const weights = new Uint8Array(a.weightData);
    writeFileSync(join(here, 'weights.bin'), weights);
    const json = {
      format: 'layers-model',
      generatedBy: `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
      convertedBy: null,
      modelTopology: a.modelTopology,
      weightsManifest: [{ paths: ['./weights.bin'], weights: a.weightSpecs }],
    };
    writeFileSync(join(here, 'model.json'), JSON.stringify(json, null, 1) + '\n');
    return {
      modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: weights.length },
    };
  }),
);
console.log(`saved ${join(here, 'model.json')}: ${model.countParams()} parameters`);
