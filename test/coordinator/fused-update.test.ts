/**
 * The coordinator's fused last fold + mean + Adam (kernels/fused-simd.ts) over the in-process
 * transport: a run that takes it ends on the same parameter bits as the same run through the
 * separate passes (clipping switched on with a bound no step reaches, which makes the
 * coordinator take the passes one by one), with results arriving in either order, micro-steps,
 * and a non-finite result that no other worker can recompute (that step is skipped, unfused).
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Coordinator } from '../../coordinator/coordinator.js';
import { FusedStep } from '../../coordinator/kernels/fused-simd.js';
import { parseConfig } from '../../shared/job/config.js';
import { createLocalNetwork } from '../../shared/transport/local.js';
import { fakeWorker } from '../helpers/fake-worker.js';
import { evalResultFor, resultFor } from '../helpers/result-msg.js';

const TOTAL = 2 * 4 + 4 + 4 + 1;
const STEPS = 12;

/** `shards`: virtual shards (the tree, whose root takes the fused pass) or null for per-worker ones. */
function job(clipNorm: number, accumulate: number, workers: number, shards: number | null) {
  return parseConfig({
    data: { name: 'xor' },
    model: { layers: [{ units: 4, activation: 'tanh' }, { units: 1 }], loss: 'binaryCrossEntropy' },
    steps: STEPS,
    batchSize: 2 * workers,
    accumulate,
    evalEvery: 0,
    minWorkers: workers,
    shards: shards ?? 'per-worker',
    optimizer: { lr: 0.05, clipNorm, weightDecay: 0.01 },
  });
}

/** A shard's gradient sum: depends on the step, micro-step and rows only (never on which worker computed it). */
function gradient(step: number, micro: number, from: number, nan: boolean): Float32Array {
  const g = Float32Array.from({ length: TOTAL }, (_, i) => Math.sin(step * 31 + micro * 17 + from * 7 + i) * 0.3);
  if (nan) g[3] = NaN;
  return g;
}

/** Train with `workers` scripted workers; `nanAt` (a step) gets one NaN result from the last worker. */
async function train(
  clipNorm: number,
  accumulate: number,
  workers: number,
  nanAt = -1,
  shards: number | null = null,
): Promise<Float32Array> {
  const net = createLocalNetwork();
  const coord = new Coordinator({
    config: job(clipNorm, accumulate, workers, shards),
    listener: net.listener,
    log: pino({ level: 'silent' }),
    runDir: null,
    startWorkers: workers,
  });
  const run = coord.run();
  for (let k = 0; k < workers; k++) {
    await fakeWorker(net.dial, TOTAL, {
      name: `w${k}`,
      onMessage: (msg, w) => {
        if (msg.t === 'evaluate') w.send(evalResultFor(msg));
        if (msg.t !== 'work') return;
        const reply = () =>
          w.send(
            resultFor(msg, { lossSum: 0.5, losses: [0.5], count: msg.to - msg.from }),
            gradient(msg.step, msg.micro, msg.from, msg.step === nanAt && k === workers - 1),
          );
        // The first worker answers late: later shards arrive first, and must wait for it.
        if (k === 0) setTimeout(reply, 2);
        else reply();
      },
    });
  }
  const summary = await run;
  expect(summary.steps).toBe(STEPS);
  expect(summary.skippedSteps).toBe(nanAt >= 0 ? 1 : 0);
  await net.listener.close();
  return coord.params.slice();
}

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer));

describe('fused update in the coordinator', () => {
  afterEach(() => vi.restoreAllMocks());

  it.each([
    [2, 1, null],
    [3, 1, null],
    [2, 2, null],
    [1, 1, 2],
    [2, 1, 4],
    [3, 1, 4],
    [2, 2, 4],
  ])(
    '%i workers, %i micro-steps, %s virtual shards: the same parameters as the separate passes',
    async (workers, accumulate, shards) => {
      const runs = vi.spyOn(FusedStep.prototype, 'run');
      const fused = await train(0, accumulate, workers, -1, shards);
      expect(runs).toHaveBeenCalledTimes(STEPS); // every step took the fused pass
      runs.mockClear();
      const separate = await train(1e30, accumulate, workers, -1, shards);
      expect(runs).not.toHaveBeenCalled(); // clipping asked for: the mean first, then Adam
      expect(bits(fused)).toEqual(bits(separate));
      expect(fused.some((x, i) => x !== separate[i] || !Number.isFinite(x))).toBe(false);
    },
    30_000,
  );

  it('a non-finite result nobody can recompute: that step is skipped as before, the others fused', async () => {
    const runs = vi.spyOn(FusedStep.prototype, 'run');
    const fused = await train(0, 1, 1, 5);
    expect(runs).toHaveBeenCalledTimes(STEPS - 1);
    const separate = await train(1e30, 1, 1, 5);
    expect(bits(fused)).toEqual(bits(separate));
  }, 30_000);
});
