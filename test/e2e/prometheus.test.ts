/** GET /metrics on the coordinator's port serves the documented Prometheus metrics. */
import { spawn } from 'node:child_process';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Coordinator } from '../../coordinator/coordinator.js';
import { PromMetrics } from '../../coordinator/prometheus.js';
import { listenWs } from '../../coordinator/ws-listener.js';
import { parseConfig } from '../../shared/job/config.js';
import { CLI } from '../helpers/cli.js';

describe('Prometheus endpoint', () => {
  it('exposes step, loss, throughput, FLOP/s, MFU, budget and per-worker series', async () => {
    const cfg = parseConfig({
      data: { name: 'spirals', samples: 300 },
      model: { layers: [{ units: 8, activation: 'relu' }, { units: 2 }], loss: 'softmaxCrossEntropy' },
      steps: 10,
      batchSize: 30,
      evalEvery: 5,
      workers: 1,
      compute: { budget: 1e12, peakFlops: 1e9 },
    });
    const metrics = new PromMetrics();
    const listener = await listenWs({ host: '127.0.0.1', port: 0, maxPayload: 1 << 20, http: metrics.handler });
    const coord = new Coordinator({
      config: cfg,
      listener,
      log: pino({ level: 'silent' }),
      runDir: null,
      onStep: (r) => metrics.onStep(r),
      onEval: (r) => metrics.onEval(r),
    });
    metrics.attach(coord);
    const worker = spawn(process.execPath, [CLI, 'worker', '--connect', listener.address, '--backend', 'cpu'], {
      stdio: 'ignore',
    });
    try {
      await coord.run();
      const base = listener.address.replace(/^ws/, 'http');
      const res = await fetch(`${base}/metrics`);
      expect(res.status).toBe(200);
      const text = await res.text();
      const value = (line: RegExp) =>
        Number(
          text
            .split('\n')
            .find((l) => line.test(l))
            ?.split(' ')
            .pop(),
        );
      expect(value(/^dptrain_step /)).toBe(10);
      expect(value(/^dptrain_loss /)).toBeGreaterThan(0);
      expect(value(/^dptrain_samples_per_second /)).toBeGreaterThan(0);
      expect(value(/^dptrain_model_flops_per_second /)).toBeGreaterThan(0);
      expect(value(/^dptrain_mfu_ratio /)).toBeGreaterThan(0);
      expect(value(/^dptrain_model_flops_total /)).toBe(coord.meter.cumulativeFlops);
      expect(value(/^dptrain_budget_flops /)).toBe(1e12);
      expect(value(/^dptrain_budget_used_ratio /)).toBeCloseTo(coord.meter.cumulativeFlops / 1e12, 12);
      expect(value(/^dptrain_test_accuracy /)).toBeGreaterThan(0);
      expect(value(/^dptrain_worker_compute_seconds_total\{worker="w1"\}/)).toBeGreaterThan(0);
      expect(value(/^dptrain_worker_peak_flops\{worker="w1"\}/)).toBe(1e9);
      expect(text).toMatch(/^dptrain_worker_up\{worker="w1",host="[^"]+",backend="cpu"\} 0$/m); // left at the end
      expect((await fetch(`${base}/other`)).status).toBe(404);
    } finally {
      await listener.close();
      worker.kill('SIGKILL');
    }
  }, 60_000);
});
