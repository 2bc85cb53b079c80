/**
 * Prometheus text exposition at GET /metrics on the coordinator's port (prom-client, with a
 * registry of our own). Names and meanings are listed in the README ("Monitoring").
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { Counter, Gauge, Registry } from 'prom-client';
import { isLoopback } from '../shared/wire/auth.js';
import type { Coordinator } from './coordinator.js';
import { loopbackHost } from './dashboard/access.js';
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
  /** Cumulative totals: counters (rate() works on them), set to the run's own count, a resume's included. */
  private readonly total = (name: string, help: string) => new Counter({ name, help, registers: [this.registry] });
  private readonly modelFlops = this.total('dptrain_model_flops_total', 'Model training FLOPs of all applied steps');
  private readonly hardwareFlops = this.total(
    'dptrain_hardware_flops_total',
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

  /** Workers ready now: a step record of one that left since must not bring its series back. */
  private readonly up = new Set<string>();

  /**
   * Serve /metrics (GET, HEAD; other methods 405); other paths are not ours. On a loopback
   * listener the Host header must name this machine, as for the dashboard (DNS rebinding).
   */
  handler = (req: IncomingMessage, res: ServerResponse): boolean => {
    if ((req.url ?? '').split('?')[0] !== '/metrics') return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('/metrics is read-only\n');
      return true;
    }
    if (listensOnLoopback(req) && !loopbackHost(req)) {
      res
        .writeHead(403, { 'content-type': 'text/plain' })
        .end('on loopback /metrics answers to 127.0.0.1, localhost or [::1] only\n');
      return true;
    }
    this.registry
      .metrics()
      .then((text) =>
        res.writeHead(200, { 'content-type': this.registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
      )
      .catch((e: Error) => res.writeHead(500).end(e.message));
    return true;
  };

  private setTotal(counter: Counter, value: number): void {
    counter.reset(); // then one increment: the sample is the value itself, exactly
    counter.inc(value);
  }

  attach(c: Coordinator): void {
    const m = c.membership;
    const refreshStates = () => {
      const counts: Record<string, number> = { hello: 0, loading: 0, ready: 0 };
      for (const w of m.workers.values()) counts[w.state] = (counts[w.state] ?? 0) + 1;
      for (const [state, n] of Object.entries(counts)) this.workers.set({ state }, n);
    };
    m.on('ready', (w) => {
      this.up.add(w.id);
      this.workerUp.set({ worker: w.id, host: w.host, backend: w.backend }, 1);
      this.workerPeak.set({ worker: w.id }, c.peaks.of(w));
      refreshStates();
    });
    m.on('gone', (w) => {
      this.up.delete(w.id);
      this.workerUp.set({ worker: w.id, host: w.host, backend: w.backend }, 0);
      this.workerFlops.remove({ worker: w.id }); // "in the last step" no longer means anything
      refreshStates();
    });
    // What the run starts from (a resumed run's counts, not 0); the rest waits for its first value.
    const { step, config } = c.snapshot();
    this.step.set(step);
    this.setTotal(this.modelFlops, c.meter.cumulativeFlops);
    this.setTotal(this.hardwareFlops, c.meter.hardwareFlops);
    // A resumed run had evaluations: its last one stands until the next (the checkpoint does not carry it).
    const acc = step > 0 && config.out ? lastTestAccuracy(join(config.out, 'metrics.jsonl')) : null;
    if (acc !== null) this.testAccuracy.set(acc);
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
    this.setTotal(this.modelFlops, r.cumulativeFlops);
    this.setTotal(this.hardwareFlops, r.hardwareFlops);
    if (r.budgetUsed !== null) this.budgetUsed.set(r.budgetUsed);
    for (const [id, ms] of Object.entries(r.workerComputeMs)) this.workerCompute.inc({ worker: id }, ms / 1000);
    for (const [id, f] of Object.entries(r.workerFlopsPerSec))
      if (this.up.has(id)) this.workerFlops.set({ worker: id }, f);
  }

  onEval(r: EvalRecord): void {
    if (r.testAccuracy !== null) this.testAccuracy.set(r.testAccuracy);
  }
}

/** Does the server this request came to listen on loopback only (not 0.0.0.0, not a LAN address)? */
function listensOnLoopback(req: IncomingMessage): boolean {
  // Node sets `server` on the sockets a server accepts (plain and TLS); not in its types.
  const server = (req.socket as Socket & { server?: { address(): AddressInfo | string | null } }).server;
  const bound = server?.address();
  return isLoopback(bound && typeof bound === 'object' ? bound.address : (req.socket.localAddress ?? ''));
}

/**
 * The test accuracy of the last evaluation in a run's metrics.jsonl, read from its end; null
 * when there is none (no file, no evaluation, or a model without accuracy).
 */
export function lastTestAccuracy(file: string): number | null {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const CHUNK = 1 << 16;
    let carry = Buffer.alloc(0); // the start of a line whose beginning is in the chunk before
    for (let end = fstatSync(fd).size; end > 0; ) {
      const start = Math.max(0, end - CHUNK);
      const buf = Buffer.alloc(end - start);
      readSync(fd, buf, 0, buf.length, start);
      end = start;
      let data = Buffer.concat([buf, carry]);
      if (start > 0) {
        const nl = data.indexOf(10);
        carry = nl < 0 ? data : data.subarray(0, nl);
        if (nl < 0) continue;
        data = data.subarray(nl + 1);
      }
      const lines = data.toString('utf8').split('\n');
      for (let i = lines.length - 1; i >= 0; i--) {
        if (!lines[i].includes('"testLoss"')) continue;
        try {
          const rec = JSON.parse(lines[i]) as { testAccuracy?: unknown };
          return typeof rec.testAccuracy === 'number' ? rec.testAccuracy : null;
        } catch {
          // a torn line: look further back
        }
      }
    }
    return null;
  } finally {
    closeSync(fd);
  }
}
