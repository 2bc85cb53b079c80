/**
 * The `layers` kind's reference: the model.json loaded by tfjs-layers itself (tf.loadLayersModel
 * with its weights, if any), predicting probabilities, and the Keras losses on those
 * probabilities (tf.metrics.*: clipped log of the output), as model.fit would train it.
 */
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export type ReferenceLoss = 'softmaxCrossEntropy' | 'binaryCrossEntropy' | 'meanSquaredError';

interface Manifest {
  paths: string[];
  weights: tf.io.WeightsManifestEntry[];
}

export async function loadLayersReference(file: string, loss?: ReferenceLoss) {
  const json = JSON.parse(readFileSync(file, 'utf8')) as { modelTopology: object; weightsManifest?: Manifest[] };
  const groups = json.weightsManifest ?? [];
  const weightSpecs = groups.flatMap((g) => g.weights);
  const bytes = Buffer.concat(groups.flatMap((g) => g.paths.map((p) => readFileSync(join(dirname(file), p)))));
  const weightData = weightSpecs.length ? new Uint8Array(bytes).buffer : undefined;
  const model = await tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs, weightData }),
  );
  const last = model.layers[model.layers.length - 1].getConfig().activation;
  return {
    model,
    hasWeights: weightSpecs.length > 0,
    loss:
      loss ??
      (last === 'softmax' ? 'softmaxCrossEntropy' : last === 'sigmoid' ? 'binaryCrossEntropy' : 'meanSquaredError'),
    /** getWeights() must come in the slot order the comparison reads them in. */
    checkOrder(slots: string[]) {
      const names = model.weights.map((w) => w.originalName);
      if (names.join() !== slots.join())
        throw new Error(`reference weights ${names.join()} are not in slot order ${slots.join()}`);
    },
  };
}

export function layersReferenceLoss(loss: ReferenceLoss, y: tf.Tensor, p: tf.Tensor): tf.Scalar {
  switch (loss) {
    case 'softmaxCrossEntropy':
      return tf.mean(tf.metrics.categoricalCrossentropy(y, p));
    case 'binaryCrossEntropy':
      return tf.mean(tf.metrics.binaryCrossentropy(y, p));
    case 'meanSquaredError':
      return tf.losses.meanSquaredError(y, p) as tf.Scalar;
  }
}
