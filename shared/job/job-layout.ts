/**
 * The one place a job's config becomes its model layout: the data's shape from the dataset
 * registry (with what the model asks of a sample, e.g. a window length), the parameters from
 * the model-kind registry. Coordinator, workers and CLI all ask here, so they agree on every
 * parameter slot.
 */
import {
  datasetShape,
  loadDataset,
  prepareDataset,
  type Dataset,
  type DataShape,
  type DataSpec,
} from '../datasets/index.js';
import { layoutModel, modelKind, sampleRequest, type AnyLayout, type ModelSpec } from '../models/index.js';
import type { WireDtype } from '../wire/wire-dtype.js';
import {
  AUTO_BATCHED_LEAF_ITEMS,
  batchedAutoLeaves,
  leafCount,
  maxResultNodes,
  type ShardsSetting,
} from './shard-tree.js';

/**
 * The asynchronous part of reading a job (importing a dataset module), done once per process
 * before jobLayout or loadJobData: every entry point that reads a config awaits it.
 */
export async function prepareJob(job: { data: DataSpec }): Promise<void> {
  await prepareDataset(job.data);
}

export function jobLayout(job: { data: DataSpec; model: ModelSpec }): AnyLayout {
  return layoutModel(job.model, datasetShape(job.data, sampleRequest(job.model)));
}

/** The job's data, loaded as its model takes it. */
export function loadJobData(job: { data: DataSpec; model: ModelSpec; seed: number }): Dataset {
  return loadDataset(job.data, job.seed, sampleRequest(job.model));
}

export type { AnyLayout, DataShape };

interface ShardedJob {
  batchSize: number;
  shards: ShardsSetting | null;
  wireDtype: WireDtype;
}

/**
 * Virtual shards per micro-batch (shared/job/shard-tree.ts); null: one per worker. Unset, a job
 * gets "auto" where a worker's leaves share one pass and the batch makes two leaves at least
 * (bit-identical at any scale for little cost: docs/performance.md); "per-worker" where each
 * leaf would take a pass of its own, or where one leaf would leave every worker but one idle.
 */
export function jobLeaves(job: ShardedJob, layout: AnyLayout): number | null {
  const kind = modelKind(layout.spec);
  // A 16-bit wire carries every leaf on its own (shard-tree.ts): small leaves would multiply it.
  const onePass = kind.batchesLeaves(layout) && job.wireDtype === 'float32';
  const shards = job.shards ?? (onePass && job.batchSize >= 2 * AUTO_BATCHED_LEAF_ITEMS ? 'auto' : 'per-worker');
  const { itemsPerSample } = kind.flops(layout);
  if (shards === 'auto' && onePass) return batchedAutoLeaves(job.batchSize, itemsPerSample);
  return leafCount(shards, job.batchSize, itemsPerSample);
}

/** The most gradient tensors one result can carry in this job (frame and file sizes follow). */
export function jobResultNodes(job: ShardedJob, layout: AnyLayout): number {
  return maxResultNodes(jobLeaves(job, layout), job.wireDtype !== 'float32');
}
