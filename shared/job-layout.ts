/**
 * The one place a job's config becomes its model layout: the data's shape from the dataset
 * registry, the parameters from the model-kind registry. Coordinator, workers and CLI all ask
 * here, so they agree on every parameter slot.
 */
import { datasetShape, type DataShape, type DataSpec } from './datasets/index.js';
import { layoutModel, type AnyLayout, type ModelSpec } from './models/index.js';

export function jobLayout(job: { data: DataSpec; model: ModelSpec }): AnyLayout {
  return layoutModel(job.model, datasetShape(job.data));
}

export type { AnyLayout, DataShape };
