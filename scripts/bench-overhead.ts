/**
 * The coordinator's fixed cost per step, two ways, in one run:
 *   - the chain in one process: what the coordinator does between a step's last result and
 *     Adam's last write (check the result, fold it, the mean, Adam), unfused and fused
 *     (kernels/fused-simd.ts); and two one-leaf results through the virtual-shard tree with
 *     their waiting copy outside the arena (as before) and in its spare slot (the SIMD pair add)
 *   - whole training runs, A/B: `dptrain train` of this build against another build's CLI
 *     (`--base DIR/dist/cli/main.js`), interleaved A B B A … so that drift hits both alike;
 *     per round, the ratio of this build's median overhead and step time to the base's
 * Reference MLP (669,706 parameters), wasm, batch 128 per worker.
 *   node dist/scripts/bench-overhead.js [--base CLI] [--workers 2] [--steps 60] [--rounds 3]
 *     [--reps 200] [--out FILE]
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createArena, type Arena } from '../coordinator/kernels/arena.js';
import { FusedStep } from '../coordinator/kernels/fused-simd.js';
import { simdReduceOps } from '../coordinator/kernels/reduce-simd.js';
import { Adam } from '../coordinator/optimizers/adam.js';
import { TreeReducer, type ReduceOps } from '../coordinator/reducer.js';
import { meanInBlocks } from '../coordinator/slices/blocks.js';
import { parseConfig } from '../shared/job/config.js';
import { jobLayout } from '../shared/job/job-layout.js';
import { treeNode } from '../shared/job/shard-tree.js';
import { median } from '../shared/util/stats.js';
import { REFERENCE_JOB } from './reference-job.js';
import { trainLocally } from './lib/dptrain-child.js';

const med = (xs: number[]) => median(xs) ?? NaN;

interface Side {
  arena: Arena;
  adam: Adam;
  ops: ReduceOps;
}

function side(n: number): Side {
  const arena = createArena(n, 2) as Arena;
  const adam = new Adam({ beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: 0 }, n, undefined, { arena });
  const ops = simdReduceOps(arena);
  if (!ops) throw new Error('WebAssembly SIMD is unavailable on this Node.js');
  return { arena, adam, ops };
}

/** Median and best of each variant's ms (it times its own part), run alternately `reps` times after a warm-up. */
function alternate(
  reps: number,
  variants: Record<string, () => number>,
): Record<string, { median: number; best: number }> {
  const times: Record<string, number[]> = {};
  for (const [k, fn] of Object.entries(variants)) {
    fn();
    times[k] = [];
  }
  for (let r = 0; r < reps; r++) for (const [k, fn] of Object.entries(variants)) times[k].push(fn());
  return Object.fromEntries(Object.entries(times).map(([k, ts]) => [k, { median: med(ts), best: Math.min(...ts) }]));
}

/** The coordinator's passes from a step's last result to its new parameters, and the tree's pair of leaves. */
function chain(n: number, reps: number) {
  const result = () => Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 1e-2);
  const [g0, g1] = [result(), result()];
  const a = side(n);
  const b = side(n);
  const fused = FusedStep.over(b.arena, b.adam)!;
  // Timed: from the last result in the landing slot (where membership reads it) to Adam's last
  // write; the step's first result is folded before, untimed.
  const last = (s: Side, update: (g: Float32Array) => void) => () => {
    s.ops.fold(s.ops.land(g0), s.arena.sum);
    const g = s.ops.land(g1);
    const t0 = performance.now();
    if (!s.ops.allFinite(g)) throw new Error('not finite');
    update(g);
    return performance.now() - t0;
  };
  const update = alternate(reps, {
    unfused: last(a, (g) => {
      a.ops.fold(g, a.arena.sum);
      meanInBlocks(a.ops, a.arena.sum, 256, a.adam.grads);
      a.adam.apply(a.adam.params, a.adam.grads, 1e-3);
    }),
    fused: last(b, (g) => fused.run(g, 256, 1e-3)),
  });
  // Two one-leaf results through the tree, each from the landing slot: the first waits in a
  // copy, the second adds to it, the root is folded.
  const tree = (s: Side, spare: Float32Array[]) => () => {
    const r = new TreeReducer(2, s.arena.sum, s.ops, spare);
    const t0 = performance.now();
    r.add(treeNode(0, 1, 2), s.ops.land(g1), 0, 1);
    r.add(treeNode(0, 0, 2), s.ops.land(g0), 0, 1);
    const ms = performance.now() - t0;
    s.arena.sum.fill(0);
    return ms;
  };
  const pairs = alternate(reps, {
    'outside the arena': tree(a, []),
    'in its spare slot': tree(b, [...b.arena.spares]),
  });
  return { update, tree: pairs };
}

interface Run {
  stepMs: number;
  samplesPerSec: number;
  timeline: Record<string, number>;
}

/** A run of this build (`cli` undefined) or of another build's CLI. */
async function train(cli: string | undefined, workers: number, steps: number, dir: string, tag: string): Promise<Run> {
  const job = join(dir, 'job.json');
  writeFileSync(job, JSON.stringify(REFERENCE_JOB));
  const s = await trainLocally({ job, workers, steps, out: join(dir, tag), cli });
  const timeline: Record<string, number> = {};
  for (const [k, v] of Object.entries(s.timeline)) if (typeof v === 'object' && v) timeline[k] = v.median;
  return { stepMs: s.medianStepMs ?? NaN, samplesPerSec: s.samplesPerSec ?? NaN, timeline };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      base: { type: 'string' },
      workers: { type: 'string', default: '2' },
      steps: { type: 'string', default: '60' },
      rounds: { type: 'string', default: '3' },
      reps: { type: 'string', default: '200' },
      out: { type: 'string', default: 'bench-overhead.json' },
    },
  });
  const n = jobLayout(parseConfig(REFERENCE_JOB)).totalParams;
  const c = chain(n, Number(values.reps));
  console.log(`chain, ${n} parameters, ${values.reps} alternating repeats, ms (median / best):`);
  const show = (what: string, [a, b]: Array<[string, { median: number; best: number }]>) =>
    console.log(
      `  ${what}: ${a[0]} ${a[1].median.toFixed(3)} / ${a[1].best.toFixed(3)}, ${b[0]} ${b[1].median.toFixed(3)} / ` +
        `${b[1].best.toFixed(3)} (${(b[1].median / a[1].median).toFixed(2)}× / ${(b[1].best / a[1].best).toFixed(2)}×)`,
    );
  show('check + last fold + mean + Adam', Object.entries(c.update));
  show('two one-leaf results through the tree (waiting copy)', Object.entries(c.tree));
  const runs: Array<{ round: number; build: 'base' | 'new'; run: Run }> = [];
  if (values.base) {
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-overhead-'));
    const workers = Number(values.workers);
    const steps = Number(values.steps);
    for (let r = 0; r < Number(values.rounds); r++) {
      const order = r % 2 ? (['new', 'base'] as const) : (['base', 'new'] as const);
      for (const build of order)
        runs.push({
          round: r,
          build,
          run: await train(build === 'new' ? undefined : values.base, workers, steps, dir, `${r}-${build}`),
        });
    }
    const keys = ['overheadMs', 'reduceMs', 'optimizerMs', 'encodeMs', 'broadcastMs', 'decodeMs', 'wireMs'];
    console.log(
      `\n${workers} local workers, ${steps} steps a run, ${values.rounds} rounds (medians of each run's steps):`,
    );
    console.log(`round build  step ms  samples/s  ${keys.map((k) => k.replace('Ms', '')).join('  ')}`);
    for (const { round, build, run } of runs)
      console.log(
        `${round}     ${build.padEnd(5)}  ${run.stepMs.toFixed(1).padStart(7)}  ${run.samplesPerSec.toFixed(0).padStart(9)}  ` +
          keys.map((k) => (run.timeline[k] ?? NaN).toFixed(2)).join('  '),
      );
    const ratio = (f: (r: Run) => number) =>
      med(
        Array.from({ length: Number(values.rounds) }, (_, r) => {
          const get = (b: string) => runs.find((x) => x.round === r && x.build === b)!.run;
          return f(get('new')) / f(get('base'));
        }),
      );
    console.log(
      `new/base, median of per-round ratios: overhead ${ratio((r) => r.timeline.overheadMs).toFixed(2)}, ` +
        `update (reduce + optimizer) ${ratio((r) => r.timeline.reduceMs + r.timeline.optimizerMs).toFixed(2)}, ` +
        `step ${ratio((r) => r.stepMs).toFixed(2)}, samples/s ${ratio((r) => r.samplesPerSec).toFixed(2)}`,
    );
  }
  writeFileSync(values.out!, JSON.stringify({ date: new Date().toISOString(), params: n, chain: c, runs }, null, 2));
}

await main();
