/**
 * Prometheus text exposition at GET /metrics on the coordinator's port (prom-client, with a
 * registry of our own). Names and meanings are listed in the README ("Monitoring").
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Coordinator } from './coordinator.js';
import type { EvalRecord, StepRecord } from './summary.js';

export class PromMetrics {
  readonly registry = new Registry();
  /**
   * A gauge with no series until it is set: prom-client starts an unlabelled one at 0, which a
   * scrape cannot tell from a real 0 (a test accuracy before any evaluation, a budget of none).
   */
  private readonly g = (name: string, help: string, labelNames: string[] = []) => {
    const gauge = new Gauge({ name, help, labelNames, registers: [this.registry] });
    if (labelNames.length === 0) gauge.remove();
    return gauge;
  };
  private readonly step = this.g('dptrain_step', 'Optimizer steps completed');
  private readonly loss = this.g('dptrain_loss', 'Training loss of the last step (mean over the global batch)');
  private readonly testAccuracy = this.g('dptrain_test_accuracy', 'Test accuracy at the last evaluation');
  private readonly samplesPerSec = this.g('dptrain_samples_per_second', 'Samples per second of the last step');
  private readonly flopsPerSec = this.g(
    'dptrain_model_flops_per_second',
    'Model FLOP/s, median over the last 20 steps',
  );
  private readonly mfu = this.g(
    'dptrain_mfu_ratio',
    'Model FLOPs utilization: median over the last 20 steps of model FLOP/s over the summed peak of the workers computing each',
  );
  private readonly modelFlops = this.g('dptrain_model_flops', 'Model training FLOPs of all applied steps');
  private readonly hardwareFlops = this.g(
    'dptrain_hardware_flops',
    'All FLOPs computed, including evaluation and discarded shards',
  );
  private readonly budget = this.g('dptrain_budget_flops', 'Compute budget in model FLOPs (absent without a budget)');
  private readonly budgetUsed = this.g('dptrain_budget_used_ratio', 'Fraction of the compute budget used');
  private readonly workers = this.g('dptrain_workers', 'Workers by state', ['state']);
  private readonly workerUp = this.g('dptrain_worker_up', '1 while a worker is ready, 0 once it left', [
    'worker',
    'host',
    'backend',
  ]);
  private readonly workerFlops = this.g(
    'dptrain_worker_flops_per_second',
    'Model FLOP/s a worker achieved on its shards in the last step',
    ['worker'],
  );
  private readonly workerPeak = this.g(
    'dptrain_worker_peak_flops',
    'Peak FLOP/s a worker counts with (declared, else measured)',
    ['worker'],
  );
  private readonly workerCompute = new Counter({
    name: 'dptrain_worker_compute_seconds_total',
    help: 'Compute time workers reported for their shards',
    labelNames: ['worker'],
    registers: [this.registry],
  });

  /** Serve GET /metrics; anything else is not ours. */
  handler = (req: IncomingMessage, res: ServerResponse): boolean => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') return false;
    this.registry
      .metrics()
      .then((text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text))
      .catch((e: Error) => res.writeHead(500).end(e.message));
    return true;
  };

  attach(c: Coordinator): void {
    const m = c.membership;
    const refreshStates = () => {
      const counts: Record<string, number> = { hello: 0, loading: 0, ready: 0 };
      for (const w of m.workers.values()) counts[w.state] = (counts[w.state] ?? 0) + 1;
      for (const [state, n] of Object.entries(counts)) this.workers.set({ state }, n);
    };
    m.on('ready', (w) => {
      this.workerUp.set({ worker: w.id, host: w.host, backend: w.backend }, 1);
      this.workerPeak.set({ worker: w.id }, c.peaks.of(w));
      refreshStates();
    });
    m.on('gone', (w) => {
      this.workerUp.set({ worker: w.id, host: w.host, backend: w.backend }, 0);
      refreshStates();
    });
    // What the run starts from (a resumed run's counts, not 0); the rest waits for its first value.
    this.step.set(c.snapshot().step);
    this.modelFlops.set(c.meter.cumulativeFlops);
    this.hardwareFlops.set(c.meter.hardwareFlops);
    const { budget } = c.meter;
    if (budget !== null) {
      this.budget.set(budget);
      this.budgetUsed.set(c.meter.cumulativeFlops / budget);
    }
  }

  onStep(r: StepRecord): void {
    this.step.set(r.step);
    if (Number.isFinite(r.loss)) this.loss.set(r.loss);
    this.samplesPerSec.set(r.samplesPerSec);
    this.flopsPerSec.set(r.modelFlopsPerSec);
    if (r.mfu !== null) this.mfu.set(r.mfu);
    this.modelFlops.set(r.cumulativeFlops);
    this.hardwareFlops.set(r.hardwareFlops);
    if (r.budgetUsed !== null) this.budgetUsed.set(r.budgetUsed);
    for (const [id, ms] of Object.entries(r.workerComputeMs)) this.workerCompute.inc({ worker: id }, ms / 1000);
    for (const [id, f] of Object.entries(r.workerFlopsPerSec)) this.workerFlops.set({ worker: id }, f);
  }

  onEval(r: EvalRecord): void {
    if (r.testAccuracy !== null) this.testAccuracy.set(r.testAccuracy);
  }
}
