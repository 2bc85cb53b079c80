/**
 * Write parameters as a TF.js Layers model (model.json + weights.bin), loadable with
 * tf.loadLayersModel. The topology is the model kind's own tfjs-layers form (ModelKind.toLayers),
 * so it is exactly what the loader expects; cross-entropy kinds put the link (softmax / sigmoid)
 * on the last layer so the saved model predicts probabilities. A kind tfjs-layers cannot express
 * is saved as its spec and the raw slots (dptrain-model.json + weights.bin).
 */
import * as tf from '@tensorflow/tfjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../shared/util/fs-atomic.js';
import { modelKind, paramView, type AnyLayout } from '../shared/models/index.js';

export async function exportLayersModel(layout: AnyLayout, params: Float32Array, dir: string): Promise<void> {
  tf.enableProdMode();
  mkdirSync(dir, { recursive: true });
  const model = modelKind(layout.spec).toLayers(layout);
  if (!model) {
    writeFileAtomic(join(dir, 'weights.bin'), new Uint8Array(params.buffer, params.byteOffset, params.byteLength));
    const slots = layout.params.map(({ name, shape, offset }) => ({ name, shape, offset }));
    writeFileAtomic(
      join(dir, 'dptrain-model.json'),
      JSON.stringify({ format: 'dptrain-slots', spec: layout.spec, data: layout.data, params: slots }),
    );
    return;
  }
  const weights = layout.params.map((slot) => tf.tensor(paramView(params, slot), slot.shape, 'float32'));
  model.setWeights(weights);
  tf.dispose(weights);
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const data = artifacts.weightData;
      const bytes =
        data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(tf.io.concatenateArrayBuffers(data ?? []));
      writeFileAtomic(join(dir, 'weights.bin'), bytes);
      const modelJson = {
        format: 'layers-model',
        generatedBy: `TensorFlow.js tfjs-layers v${tf.version.tfjs} (dptrain)`,
        convertedBy: null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ['./weights.bin'], weights: artifacts.weightSpecs }],
        // Read back with model.getUserDefinedMetadata(): which output is which class.
        ...(layout.data.classes ? { userDefinedMetadata: { dptrain: { classes: layout.data.classes } } } : {}),
      };
      writeFileAtomic(join(dir, 'model.json'), JSON.stringify(modelJson));
      return {
        modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: bytes.length },
      };
    }),
  );
  model.dispose();
}
