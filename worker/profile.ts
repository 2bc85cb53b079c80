/**
 * Where a worker's training step spends its time, kernel by kernel: one shard's gradient, as
 * `Trainer.gradientParts` computes it, under `tf.profile`. The next slow kernel shows up as a
 * row here, with the input shapes of its slowest call. Several steps are profiled and the table
 * is the one of median kernel time: one step's hiccup (a GC, a busy core) would otherwise be
 * shown as the slow kernel.
 */
import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../shared/datasets/index.js';
import { initParams, type AnyLayout as ModelLayout } from '../shared/models/index.js';
import { matMulGradFor, withMatMulGrad, type MatMulGrad } from '../shared/ops/matmul.js';
import { Trainer } from './trainer.js';

export interface KernelRow {
  kernel: string;
  calls: number;
  totalMs: number;
  /** Share of the kernels' summed time. */
  share: number;
  /** Input shapes of the slowest call, e.g. "128x784 784x512". */
  slowestInputs: string;
  slowestMs: number;
}

export interface StepProfile {
  backend: string;
  matMulGrad: MatMulGrad;
  batch: number;
  /** Median wall time of a whole gradient step (batch assembly, kernels, read-back). */
  stepMs: number;
  /** Sum over kernel rows: the rest of stepMs is batch assembly, dispatch and read-back. */
  kernelMs: number;
  /** Each profiled step's summed kernel time, ascending; the table is of the median one (kernelMs). */
  profiledKernelMs: number[];
  rows: KernelRow[];
  /**
   * Entries that wrap other kernels (customGrad's forward, op-level composites such as
   * logSoftmax): their time is already in the rows, so they are listed apart, not summed.
   */
  composites: KernelRow[];
}

export interface ProfileOptions {
  batch: number;
  /** Steps timed for stepMs (after as many warm-up steps), then as many profiled. */
  steps?: number;
  seed?: number;
  /** Force a matMul gradient form (to compare with the backend's default). */
  matMulGrad?: MatMulGrad;
}

const shapes = (s: number[][] | undefined) => (s ?? []).map((d) => (d.length ? d.join('x') : 'scalar')).join(' ');

function isKernel(name: string, backend: string): boolean {
  return tf.getKernel(name, backend) !== undefined;
}

function table(
  kernels: Awaited<ReturnType<typeof tf.profile>>['kernels'],
  backend: string,
): { rows: KernelRow[]; composites: KernelRow[] } {
  const by = new Map<string, KernelRow>();
  for (const k of kernels) {
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0; // webgpu may report {error}
    const row = by.get(k.name) ?? { kernel: k.name, calls: 0, totalMs: 0, share: 0, slowestInputs: '', slowestMs: -1 };
    row.calls++;
    row.totalMs += ms;
    if (ms > row.slowestMs) {
      row.slowestMs = ms;
      row.slowestInputs = shapes(k.inputShapes);
    }
    by.set(k.name, row);
  }
  const all = [...by.values()].sort((a, b) => b.totalMs - a.totalMs);
  const rows = all.filter((r) => isKernel(r.kernel, backend));
  const composites = all.filter((r) => !isKernel(r.kernel, backend));
  const total = rows.reduce((s, r) => s + r.totalMs, 0);
  for (const r of [...rows, ...composites]) r.share = total > 0 ? r.totalMs / total : 0;
  return { rows, composites };
}

/** Profile one gradient step of `layout` on `ds` on the current TF.js backend. */
export async function profileStep(layout: ModelLayout, ds: Dataset, o: ProfileOptions): Promise<StepProfile> {
  const backend = tf.getBackend();
  const form = o.matMulGrad ?? matMulGradFor(backend);
  const steps = o.steps ?? 5;
  const seed = o.seed ?? 1;
  return withMatMulGrad(form, async () => {
    const trainer = new Trainer(layout, ds, seed);
    trainer.setParams(0, initParams(layout, seed));
    let at = 0;
    const one = async () => {
      const r = await trainer.gradientParts(at, at + o.batch);
      r.release();
      at += o.batch;
    };
    try {
      for (let i = 0; i < steps; i++) await one(); // warm-up: compiled shaders, grown heaps
      const times: number[] = [];
      for (let i = 0; i < steps; i++) {
        const t0 = performance.now();
        await one();
        times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      const profiled: Array<ReturnType<typeof table> & { kernelMs: number }> = [];
      for (let i = 0; i < steps; i++) {
        const t = table((await tf.profile(one)).kernels, backend);
        profiled.push({ ...t, kernelMs: t.rows.reduce((s, r) => s + r.totalMs, 0) });
      }
      // One whole step's table (its calls and shares add up), the step of median kernel time.
      profiled.sort((a, b) => a.kernelMs - b.kernelMs);
      const { rows, composites, kernelMs } = profiled[Math.floor(profiled.length / 2)];
      return {
        backend,
        matMulGrad: form,
        batch: o.batch,
        stepMs: times[Math.floor(times.length / 2)],
        kernelMs,
        profiledKernelMs: profiled.map((p) => p.kernelMs),
        rows,
        composites,
      };
    } finally {
      trainer.dispose();
    }
  });
}

/** The profile as a text table, slowest kernel first. */
export function formatProfile(p: StepProfile, top = 15): string {
  const f = (x: number) => x.toFixed(2).padStart(9);
  const line = (r: KernelRow) =>
    `${r.kernel.padEnd(24)} ${String(r.calls).padStart(5)} ${f(r.totalMs)} ${(r.share * 100).toFixed(1).padStart(6)}%  ${f(r.slowestMs)}  ${r.slowestInputs}`;
  const shown = p.rows.slice(0, top);
  const rest = p.rows.slice(top);
  const k = p.profiledKernelMs;
  const of =
    k.length > 1
      ? `the profiled step of median kernel time, of ${k.length} (${k[0].toFixed(1)}–${k[k.length - 1].toFixed(1)} ms)`
      : 'one profiled step';
  const out = [
    `backend ${p.backend}, matMul gradient: ${p.matMulGrad}, batch ${p.batch}: step ${p.stepMs.toFixed(1)} ms (median), kernels ` +
      `${p.kernelMs.toFixed(1)} ms in ${of}`,
    `${'kernel'.padEnd(24)} ${'calls'.padStart(5)} ${'total ms'.padStart(9)} ${'share'.padStart(7)}  ${'slowest'.padStart(9)}  inputs of the slowest call`,
    ...shown.map(line),
  ];
  if (rest.length)
    out.push(
      `${`(${rest.length} more)`.padEnd(24)} ${String(rest.reduce((s, r) => s + r.calls, 0)).padStart(5)} ${f(rest.reduce((s, r) => s + r.totalMs, 0))}`,
    );
  if (p.composites.length)
    out.push(
      `wrappers, already counted in the rows above: ${p.composites.map((r) => `${r.kernel} ×${r.calls} ${r.totalMs.toFixed(2)} ms`).join(', ')}`,
    );
  return out.join('\n');
}
