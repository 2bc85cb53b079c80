/**
 * Write parameters as a TF.js Layers model (model.json + weights.bin), loadable with
 * tf.loadLayersModel. The topology is built with tfjs-layers itself so it is exactly what the
 * loader expects. Cross-entropy losses train on logits; the exported last layer applies the
 * link (softmax / sigmoid) so the saved model predicts probabilities.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../shared/fs-atomic.js';
import { paramView, type ModelLayout } from '../shared/model-spec.js';

const LINK = { softmaxCrossEntropy: 'softmax', binaryCrossEntropy: 'sigmoid', meanSquaredError: null } as const;

export async function exportLayersModel(layout: ModelLayout, params: Float32Array, dir: string): Promise<void> {
  tf.enableProdMode();
  const { layers, loss } = layout.spec;
  const model = tf.sequential();
  layers.forEach((l, i) => {
    const last = i === layers.length - 1;
    const activation = last && LINK[loss] ? LINK[loss] : l.activation;
    model.add(
      tf.layers.dense({
        name: `dense_${i}`,
        units: l.units,
        activation: activation as 'linear',
        ...(i === 0 ? { inputShape: [layout.inputSize] } : {}),
      }),
    );
  });
  const weights = layout.params.map((slot) => tf.tensor(paramView(params, slot), slot.shape, 'float32'));
  model.setWeights(weights);
  tf.dispose(weights);
  mkdirSync(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const data = artifacts.weightData;
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(tf.io.concatenateArrayBuffers(data ?? []));
      writeFileAtomic(join(dir, 'weights.bin'), bytes);
      const modelJson = {
        format: 'layers-model',
        generatedBy: `TensorFlow.js tfjs-layers v${tf.version.tfjs} (dptrain)`,
        convertedBy: null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ['./weights.bin'], weights: artifacts.weightSpecs }],
      };
      writeFileAtomic(join(dir, 'model.json'), JSON.stringify(modelJson));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: bytes.length } };
    }),
  );
  model.dispose();
}
