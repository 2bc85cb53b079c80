/**
 * PromMetrics before and between values: a gauge with nothing to report has no sample (a scrape
 * must not read a test accuracy of 0 before any evaluation, or a budget of 0 without one), and
 * a resumed run reports its checkpoint's step and FLOPs from the start.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Coordinator } from '../../coordinator/coordinator.js';
import { PromMetrics } from '../../coordinator/prometheus.js';
import type { CheckpointState } from '../../coordinator/checkpoint.js';
import { parseConfig } from '../../shared/job/config.js';
import { createLocalNetwork } from '../../shared/transport/local.js';

function coordinator(compute: Record<string, unknown> = {}, resume?: CheckpointState): Coordinator {
  const config = parseConfig({
    data: { name: 'xor' },
    model: { layers: [{ units: 4, activation: 'tanh' }, { units: 1 }], loss: 'binaryCrossEntropy' },
    steps: 10,
    batchSize: 4,
    compute,
  });
  const { listener } = createLocalNetwork();
  return new Coordinator({ config, listener, log: pino({ level: 'silent' }), runDir: null, resume });
}

/** The value of the unlabelled series `name`, or null when it has no sample. */
async function sample(m: PromMetrics, name: string): Promise<number | null> {
  const line = (await m.registry.metrics()).split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? null : Number(line.slice(name.length + 1));
}

const UNTIL_SET = [
  'dptrain_loss',
  'dptrain_test_accuracy',
  'dptrain_samples_per_second',
  'dptrain_model_flops_per_second',
  'dptrain_mfu_ratio',
];

describe('Prometheus gauges without a value', () => {
  it('have no sample until set; the budget ones none without a budget', async () => {
    const m = new PromMetrics();
    m.attach(coordinator());
    for (const name of [...UNTIL_SET, 'dptrain_budget_flops', 'dptrain_budget_used_ratio'])
      expect(await sample(m, name), name).toBeNull();
    expect(await m.registry.metrics()).toMatch(/^# HELP dptrain_test_accuracy /m); // described, not sampled
    expect(await sample(m, 'dptrain_step')).toBe(0);
    expect(await sample(m, 'dptrain_model_flops')).toBe(0);
    m.onEval({ step: 5, testLoss: 0.3, testAccuracy: 0.75, evalMs: 1 });
    expect(await sample(m, 'dptrain_test_accuracy')).toBe(0.75);
  });

  it('with a budget: the budget and its share used from the start', async () => {
    const m = new PromMetrics();
    m.attach(coordinator({ budget: 1e9 }));
    expect(await sample(m, 'dptrain_budget_flops')).toBe(1e9);
    expect(await sample(m, 'dptrain_budget_used_ratio')).toBe(0);
  });

  it("a resumed run: its checkpoint's step and FLOPs, and no test accuracy before its first evaluation", async () => {
    const first = coordinator({ budget: 1e9 }).snapshot();
    const counters = { ...first.counters, cumulativeFlops: 2.5e8, hardwareFlops: 3e8 };
    const m = new PromMetrics();
    m.attach(coordinator({ budget: 1e9 }, { ...first, step: 7, counters }));
    expect(await sample(m, 'dptrain_step')).toBe(7);
    expect(await sample(m, 'dptrain_model_flops')).toBe(2.5e8);
    expect(await sample(m, 'dptrain_hardware_flops')).toBe(3e8);
    expect(await sample(m, 'dptrain_budget_used_ratio')).toBe(0.25);
    for (const name of UNTIL_SET) expect(await sample(m, name), name).toBeNull();
  });
});
