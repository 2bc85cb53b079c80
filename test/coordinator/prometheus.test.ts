/**
 * PromMetrics before and between values: a gauge with nothing to report has no sample (a scrape
 * must not read a test accuracy of 0 before any evaluation, or a budget of 0 without one), and
 * a resumed run reports its checkpoint's step and FLOPs from the start.
 */
import { EventEmitter } from 'node:events';
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Coordinator } from '../../coordinator/coordinator.js';
import { PromMetrics } from '../../coordinator/prometheus.js';
import type { StepRecord } from '../../coordinator/summary.js';
import { listenWs } from '../../coordinator/ws-listener.js';
import type { Listener } from '../../shared/transport/transport.js';
import { tempDir } from '../helpers/cli.js';
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
    expect(await sample(m, 'dptrain_model_flops_total')).toBe(0);
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
    expect(await sample(m, 'dptrain_model_flops_total')).toBe(2.5e8);
    expect(await sample(m, 'dptrain_hardware_flops_total')).toBe(3e8);
    expect(await sample(m, 'dptrain_budget_used_ratio')).toBe(0.25);
    for (const name of UNTIL_SET) expect(await sample(m, name), name).toBeNull();
  });
});

/** A coordinator as PromMetrics.attach reads it: its workers' events, a resume's step and run directory. */
function fakeCoordinator(step = 0, out: string | null = null) {
  const membership = Object.assign(new EventEmitter(), { workers: new Map() });
  const c = {
    membership,
    meter: { budget: null, cumulativeFlops: 0, hardwareFlops: 0 },
    peaks: { of: () => 1e9 },
    snapshot: () => ({ step, config: { out } }),
  };
  return { c: c as unknown as Coordinator, membership };
}

/** The fields of a step record PromMetrics reads. */
const stepRec = (extra: Partial<StepRecord>) =>
  ({
    step: 1,
    loss: 0.5,
    samplesPerSec: 100,
    modelFlopsPerSec: 1e9,
    mfu: null,
    budgetUsed: null,
    cumulativeFlops: 0,
    hardwareFlops: 0,
    workerComputeMs: {},
    workerFlopsPerSec: {},
    ...extra,
  }) as StepRecord;

describe('Prometheus conventions', () => {
  it("cumulative FLOPs are counters named _total, equal to the run's counts", async () => {
    const m = new PromMetrics();
    m.attach(coordinator());
    const text = await m.registry.metrics();
    expect(text).toMatch(/^# TYPE dptrain_model_flops_total counter$/m);
    expect(text).toMatch(/^# TYPE dptrain_hardware_flops_total counter$/m);
    m.onStep(stepRec({ cumulativeFlops: 1.23456789e9, hardwareFlops: 2.5e9 }));
    expect(await sample(m, 'dptrain_model_flops_total')).toBe(1.23456789e9);
    expect(await sample(m, 'dptrain_hardware_flops_total')).toBe(2.5e9);
  });

  it('a worker that left has no FLOP/s series, even when a later record names it', async () => {
    const m = new PromMetrics();
    const { c, membership } = fakeCoordinator();
    m.attach(c);
    const w = (id: string) => ({ id, host: 'h', backend: 'cpu', state: 'ready' });
    membership.emit('ready', w('w1'));
    membership.emit('ready', w('w2'));
    const step = stepRec({ workerFlopsPerSec: { w1: 1e8, w2: 2e8 } });
    m.onStep(step);
    membership.emit('gone', w('w2'));
    m.onStep(step); // the step w2 left in still carries its shard
    const text = await m.registry.metrics();
    expect(text).toMatch(/^dptrain_worker_flops_per_second\{worker="w1"\} 100000000$/m);
    expect(text).not.toMatch(/^dptrain_worker_flops_per_second\{worker="w2"\}/m);
    expect(text).toMatch(/^dptrain_worker_up\{worker="w2",host="h",backend="cpu"\} 0$/m);
  });

  it("a resumed run's test accuracy is its last evaluation's, from its metrics.jsonl", async () => {
    const dir = tempDir('prom-resume');
    const rows = [{ step: 1 }, { step: 2, testLoss: 0.3, testAccuracy: 0.875 }, { step: 3 }];
    writeFileSync(join(dir, 'metrics.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const m = new PromMetrics();
    m.attach(fakeCoordinator(3, dir).c);
    expect(await sample(m, 'dptrain_test_accuracy')).toBe(0.875);
  });
});

describe('/metrics over HTTP on loopback', () => {
  let listener: Listener | null = null;
  afterEach(async () => {
    await listener?.close();
    listener = null;
  });

  function call(port: number, method: string, host: string): Promise<{ status: number; body: string }> {
    return new Promise((done, fail) => {
      const req = request({ host: '127.0.0.1', port, method, path: '/metrics', headers: { host } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => done({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', fail);
      req.end();
    });
  }

  it("answers this machine's names only (any case, a trailing dot); HEAD works; writes are 405", async () => {
    const m = new PromMetrics();
    m.attach(coordinator());
    listener = await listenWs({ host: '127.0.0.1', port: 0, maxPayload: 1 << 16, http: m.handler });
    const port = Number(new URL(listener.address).port);
    for (const host of ['evil.example', `127.0.0.1.nip.io:${port}`])
      expect((await call(port, 'GET', host)).status, host).toBe(403);
    for (const host of [`127.0.0.1:${port}`, `LOCALHOST:${port}`, `localhost.:${port}`, `[::1]:${port}`]) {
      const r = await call(port, 'GET', host);
      expect(r.status, host).toBe(200);
      expect(r.body).toContain('dptrain_step');
    }
    const head = await call(port, 'HEAD', `127.0.0.1:${port}`);
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    for (const method of ['POST', 'PUT', 'DELETE'])
      expect((await call(port, method, `127.0.0.1:${port}`)).status).toBe(405);
  });
});
