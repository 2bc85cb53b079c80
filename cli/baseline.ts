/**
 * Single-process training loops for the same model, data order, batch and backend as a job,
 * measured in the same run as the distributed figures they are compared with:
 *   - engine: the fastest single process dptrain's own engine runs — its model graph (with each
 *     backend's fast matMul gradient), parameters as variables, tf.train.adam. Scaling
 *     efficiency is measured against this, so distribution gets no credit for a faster kernel.
 *   - layers-minimize: what a TF.js user writes by hand: a tfjs-layers model, tf.train.adam,
 *     optimizer.minimize, one batch at a time.
 *   - layers-fit: what a TF.js user gets from model.fit over the same batches.
 * The tfjs-layers loops are measured for dense models (the other kinds have none: null).
 */
import * as tf from '@tensorflow/tfjs';
import type { Config } from '../shared/job/config.js';
import { fail } from '../shared/util/errors.js';
import { gatherRows, type Dataset } from '../shared/datasets/index.js';
import { jobLayout, loadJobData, prepareJob } from '../shared/job/job-layout.js';
import { initParams, modelKind, paramView, type AnyLayout } from '../shared/models/index.js';
import { batchTensors as modelBatch } from '../worker/batch.js';
import { Sampler } from '../shared/job/sampler.js';
import { median } from '../shared/util/stats.js';

export const BASELINES = ['engine', 'layers-minimize', 'layers-fit'] as const;
export type BaselineKind = (typeof BASELINES)[number];

export const BASELINE_LABELS: Record<BaselineKind, string> = {
  engine: "dptrain's graph in one process (fast matMul gradient, tf.train.adam)",
  'layers-minimize': 'tfjs-layers model, tf.train.adam minimize loop',
  'layers-fit': 'tfjs-layers model.fit',
};

const LOSSES = {
  softmaxCrossEntropy: (y: tf.Tensor, out: tf.Tensor) => tf.losses.softmaxCrossEntropy(y, out),
  binaryCrossEntropy: (y: tf.Tensor, out: tf.Tensor) => tf.losses.sigmoidCrossEntropy(y, out),
  meanSquaredError: (y: tf.Tensor, out: tf.Tensor) => tf.losses.meanSquaredError(y, out),
};

interface Setup {
  cfg: Config;
  ds: Dataset;
  layout: AnyLayout;
  init: Float32Array;
  sampler: Sampler;
}

function setup(cfg: Config): Setup {
  const ds = loadJobData(cfg);
  const layout = jobLayout(cfg);
  return { cfg, ds, layout, init: initParams(layout, cfg.seed), sampler: new Sampler(ds.train.n, cfg.seed) };
}

function batchTensors(s: Setup, from: number, to: number): { x: tf.Tensor; y: tf.Tensor } {
  const rows = s.sampler.rows(from, to);
  const b = gatherRows(s.ds.train, s.ds.inputSize, s.ds.outputSize, rows);
  return modelBatch(s.layout, rows.length, b.x, b.y);
}

type LossFn = (y: tf.Tensor, out: tf.Tensor) => tf.Tensor;

/** The dense model as tfjs-layers layers and its loss, or null for another kind. */
function layersModel(s: Setup): { model: tf.Sequential; lossFn: LossFn } | null {
  const spec = s.cfg.model;
  if (spec.kind !== undefined && spec.kind !== 'dense') return null;
  const model = tf.sequential();
  spec.layers.forEach((l, i) => {
    model.add(
      tf.layers.dense({
        units: l.units,
        activation: l.activation,
        ...(i === 0 ? { inputShape: [s.ds.inputSize] } : {}),
      }),
    );
  });
  model.setWeights(s.layout.params.map((p) => tf.tensor(paramView(s.init, p), p.shape)));
  return { model, lossFn: LOSSES[spec.loss] };
}

const adam = (cfg: Config) =>
  tf.train.adam(cfg.optimizer.lr, cfg.optimizer.beta1, cfg.optimizer.beta2, cfg.optimizer.epsilon);

/** Median samples/s of a minimize loop, one batch a step, the step done when its loss is readable. */
async function minimizeLoop(
  s: Setup,
  batch: number,
  steps: number,
  warmup: number,
  loss: (x: tf.Tensor, y: tf.Tensor) => tf.Scalar,
  opt: tf.Optimizer,
  vars?: tf.Variable[],
): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    const t0 = performance.now();
    const { x, y } = batchTensors(s, i * batch, (i + 1) * batch);
    const l = opt.minimize(() => loss(x, y), true, vars)!;
    await l.data();
    tf.dispose([x, y, l]);
    if (i >= warmup) times.push(performance.now() - t0);
  }
  return batch / (median(times)! / 1000);
}

async function engine(s: Setup, batch: number, steps: number, warmup: number): Promise<number> {
  const vars = s.layout.params.map((p) => tf.variable(tf.tensor(paramView(s.init, p), p.shape)));
  const opt = adam(s.cfg);
  const m = modelKind(s.layout.spec);
  try {
    return await minimizeLoop(
      s,
      batch,
      steps,
      warmup,
      (x, y) => tf.div(m.lossSum(s.layout, m.forward(s.layout, vars, x), y), x.shape[0]) as tf.Scalar,
      opt,
      vars,
    );
  } finally {
    tf.dispose(vars);
    opt.dispose();
  }
}

async function layersMinimize(s: Setup, batch: number, steps: number, warmup: number): Promise<number | null> {
  const built = layersModel(s);
  if (!built) return null;
  const { model, lossFn } = built;
  const opt = adam(s.cfg);
  try {
    return await minimizeLoop(
      s,
      batch,
      steps,
      warmup,
      (x, y) => lossFn(y, model.apply(x) as tf.Tensor) as tf.Scalar,
      opt,
    );
  } finally {
    model.dispose();
    opt.dispose();
  }
}

/** samples/s of model.fit over `steps` batches (one epoch, no shuffling: the job's data order), after a warm-up fit. */
async function layersFit(s: Setup, batch: number, steps: number, warmup: number): Promise<number | null> {
  const built = layersModel(s);
  if (!built) return null;
  const { model, lossFn } = built;
  model.compile({ optimizer: adam(s.cfg), loss: (y: tf.Tensor, out: tf.Tensor) => lossFn(y, out) });
  const fit = async (from: number, n: number) => {
    const { x, y } = batchTensors(s, from * batch, (from + n) * batch);
    try {
      await model.fit(x, y, { batchSize: batch, epochs: 1, shuffle: false, verbose: 0 });
    } finally {
      tf.dispose([x, y]);
    }
  };
  try {
    await fit(0, Math.max(1, warmup));
    const t0 = performance.now();
    await fit(warmup, steps);
    return (steps * batch) / ((performance.now() - t0) / 1000);
  } finally {
    model.dispose();
  }
}

const LOOPS: Record<BaselineKind, (s: Setup, batch: number, steps: number, warmup: number) => Promise<number | null>> =
  {
    engine,
    'layers-minimize': layersMinimize,
    'layers-fit': layersFit,
  };

/** samples/s of one single-process loop over `steps` batches after `warmup` (the TF.js backend must already be set). */
export async function singleProcessSamplesPerSec(
  kind: BaselineKind,
  cfg: Config,
  batch: number,
  steps: number,
  warmup = 10,
): Promise<number> {
  await prepareJob(cfg);
  const sps = await LOOPS[kind](setup(cfg), batch, steps, warmup);
  return sps ?? fail('CONFIG_INVALID', `the ${kind} baseline is measured for dense models only; use engine`);
}

/** Every baseline, measured one after another (null: not measured for this model kind). */
export async function allBaselines(
  cfg: Config,
  batch: number,
  steps: number,
  warmup = 10,
): Promise<Record<BaselineKind, number | null> & { engine: number }> {
  await prepareJob(cfg);
  const out: Record<BaselineKind, number | null> & { engine: number } = {
    engine: await engine(setup(cfg), batch, steps, warmup),
    'layers-minimize': null,
    'layers-fit': null,
  };
  for (const k of BASELINES) if (k !== 'engine') out[k] = await LOOPS[k](setup(cfg), batch, steps, warmup);
  return out;
}
