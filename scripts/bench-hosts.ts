/**
 * dptrain across simulated hosts (scripts/hosts/): the reference MLP (784-512-512-10, MNIST,
 * wasm, batch 128 per worker) with a coordinator host and worker hosts, each a network namespace
 * on a bridge, every host link capped (tbf, both ways) at each rate asked for; beside it, in the
 * same round, the same job on local processes and, with --ddp-anchor, PyTorch DDP (gloo) with
 * one rank per worker host, and on loopback. Per run: samples/s (median after warm-up), the
 * wire's share of a step (summary.json), and the bytes each host link carried per step (its
 * interface counters, read between two steps well into the run).
 *
 * Run as root after `npx tsc -p tsconfig.json`:
 *   node dist/scripts/bench-hosts.js [--rates 1gbit,100mbit] [--workers 2] [--bytes-workers 2,4]
 *     [--steps 40] [--rounds 1] [--ddp-anchor ddp_gloo_rank.py] [--out bench-hosts.json] [--slice-shards]
 *     [--per-host K] [--clip-norm 0]
 * With --per-host K (K > 1) a round is instead: K·workers local processes, then at each rate K
 * worker processes on each worker host, and one `dptrain host-agent --workers K` on each.
 *     [--wire-dtypes float32,bfloat16 (the sliced runs)] [--compress topk:0.01 (an unsharded run each rate)]
 * The machine's load average is recorded with each round: compare ratios within a round.
 * --clip-norm sets the job's optimizer.clipNorm: above every gradient norm it changes no bits
 * but makes slice shards wait for the global norm before Adam (0, the default, lets them not).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunSummary } from '../coordinator/summary.js';
import { Cluster, track } from './hosts/cluster.js';
import { hostsUnavailable, loadAverage, SimulatedHosts, type LinkCounters } from './hosts/netns.js';
import { PER_WORKER_BATCH, REFERENCE_JOB } from './reference-job.js';
import { stepsReached } from './run-progress.js';
import { anchorEnv, anchorSamplesPerSec, DDP_STEPS } from './lib/ddp-anchor.js';
import { BUILT_CLI, lastLine, readSummary, trainLocally } from './lib/dptrain-child.js';
import { runScript, ScriptArgs, writeResults } from './lib/bench-cli.js';

interface Figures {
  label: string;
  samplesPerSec: number;
  wireShare: number | null;
  /** Bytes per step on the coordinator's link (dptrain) or on rank 0's (DDP), each way. */
  hubBytesPerStep: { tx: number; rx: number } | null;
  /** Mean over the worker hosts' links, each way. */
  workerBytesPerStep: { tx: number; rx: number } | null;
  medianStepMs: number | null;
  /** Slice shards: per shard, the median of its wire, wait and norms-back times (summary.json). */
  shards: Array<{ wireMs: number; waitMs: number; normsMs: number }> | null;
}

const workerNames = (n: number) => Array.from({ length: n }, (_, i) => `w${i}`);

function perStep(before: Map<string, LinkCounters>, after: Map<string, LinkCounters>, names: string[], steps: number) {
  const d = (f: (c: LinkCounters) => number) =>
    names.reduce((s, n) => s + f(after.get(n)!) - f(before.get(n)!), 0) / names.length / steps;
  return { tx: d((c) => c.txBytes), rx: d((c) => c.rxBytes) };
}

function snapshot(net: SimulatedHosts): Map<string, LinkCounters> {
  return new Map([...net.hosts.keys()].map((n) => [n, net.counters(n)]));
}

function summaryFigures(label: string, s: RunSummary): Figures {
  return {
    label,
    samplesPerSec: s.samplesPerSec ?? NaN,
    wireShare: s.timeline.wireShare,
    hubBytesPerStep: null,
    workerBytesPerStep: null,
    medianStepMs: s.medianStepMs,
    shards:
      s.shardTimeline?.map((t) => ({ wireMs: t.wireMs.median, waitMs: t.waitMs.median, normsMs: t.normsMs.median })) ??
      null,
  };
}

/** The job on `workers` local processes (`dptrain train`, shared memory: the default). */
async function local(dir: string, job: string, workers: number, steps: number): Promise<Figures> {
  const out = join(dir, `local-${workers}-${Date.now()}`);
  return summaryFigures(`dptrain, ${workers} local processes`, await trainLocally({ job, workers, steps, out }));
}

/**
 * The job with a coordinator host and `workers` worker hosts, every link capped at `rate`;
 * `sliced`: with a slice shard (`dptrain slice-shard`) on each worker host.
 */
async function acrossHosts(
  dir: string,
  job: string,
  workers: number,
  rate: string,
  steps: number,
  sliced = false,
  /** Worker processes on each worker host, and whether a host agent starts them behind one link. */
  perHost: { k: number; agent: boolean } = { k: 1, agent: false },
  /** Job flags of this variant (`--wire-dtype bfloat16`, `--compress topk:0.01`), named in its label. */
  variant: string[] = [],
): Promise<Figures> {
  const names = workerNames(workers);
  const { k, agent } = perHost;
  const net = new SimulatedHosts(['coord', ...names]);
  try {
    for (const h of net.hosts.keys()) net.cap(h, rate);
    const cluster = new Cluster(net, 'coord');
    const shardFlags = sliced ? ['--slice-shard', ...(await sliceShards(cluster, names, job))] : [];
    const out = join(dir, `hosts-${workers}-${rate}-${Date.now()}`);
    const batch = String(PER_WORKER_BATCH * workers * k);
    const coord = cluster.coordinator([
      '--config',
      job,
      '--batch-size',
      batch,
      '--steps',
      String(steps),
      '--min-workers',
      String(agent ? workers : workers * k),
      '--out',
      out,
      ...shardFlags,
      ...variant,
    ]);
    const procs = agent
      ? names.map((h) => cluster.hostAgent(h, ['--workers', String(k), '--backend', 'wasm']))
      : names.flatMap((h) =>
          Array.from({ length: k }, (_, i) =>
            cluster.worker(h, ['--backend', 'wasm', ...shardFlags, '--name', `${h}-${i}`]),
          ),
        );
    // Counters between two steps past warm-up: the job's setup and the last evaluation stay out.
    const [from, to] = [Math.max(3, Math.floor(steps / 4)), steps - 1];
    // A coordinator that exits early ends the wait with its last line, not a timeout.
    const early = coord.exit.then((code) => {
      throw new Error(`coordinator exited ${code} early: ${lastLine(coord.output())}`);
    });
    const reached = (step: number) => Promise.race([stepsReached(out, step, 600_000), early]);
    await reached(from);
    const before = snapshot(net);
    await reached(to);
    const after = snapshot(net);
    early.catch(() => {});
    const code = await coord.exit;
    if (code !== 0) throw new Error(`coordinator exited ${code}: ${lastLine(coord.output())}`);
    await Promise.all(procs.map((p) => p.exit));
    return {
      ...summaryFigures(
        `dptrain${sliced ? ' sliced' : ''}${variant.length ? ` ${variant.join(' ')}` : ''}, coordinator + ${workers} worker hosts${k > 1 ? ` of ${k} workers${agent ? ' behind a host agent' : ''}` : ''} at ${rate}`,
        readSummary(out),
      ),
      hubBytesPerStep: perStep(before, after, ['coord'], to - from),
      workerBytesPerStep: perStep(before, after, names, to - from),
    };
  } finally {
    net.destroy();
  }
}

/** A slice shard on each of `hosts`, listening on its address; their URLs once all listen. */
async function sliceShards(cluster: Cluster, hosts: string[], job: string): Promise<string[]> {
  return Promise.all(
    hosts.map((h) => {
      const at = `${cluster.net.host(h).ip}:7071`;
      const env = { ...process.env, DPTRAIN_TOKEN: cluster.token };
      const args = [BUILT_CLI, 'slice-shard', '--config', job, '--listen', at];
      const c = cluster.net.spawn(h, process.execPath, args, { env });
      let out = '';
      return new Promise<string>((res, rej) => {
        const seen = (d: Buffer) => {
          out += d.toString();
          if (out.includes('slice shard listening')) res(`ws://${at}`);
        };
        c.stdout?.on('data', seen);
        c.stderr?.on('data', seen);
        c.once('exit', (code) => rej(new Error(`slice shard on ${h} exited ${code}: ${lastLine(out)}`)));
      });
    }),
  );
}

/** samples/s from rank 0's output. */
function ddpRate(out: string): number {
  const sps = anchorSamplesPerSec(out);
  if (sps === null) throw new Error(`ddp anchor: no samples/s in its output: ${lastLine(out)}`);
  return sps;
}

function ddpEnv(rank: number, world: number, master: string, ifname: string): NodeJS.ProcessEnv {
  const ranks = { RANK: String(rank), WORLD_SIZE: String(world), MASTER_ADDR: master, MASTER_PORT: '29500' };
  return anchorEnv({ ...ranks, GLOO_SOCKET_IFNAME: ifname });
}

/** PyTorch DDP (gloo), one rank per host (or all on loopback when `rate` is null). */
async function ddp(anchor: string, world: number, rate: string | null): Promise<Figures> {
  const args = [anchor, String(DDP_STEPS), String(PER_WORKER_BATCH)];
  if (rate === null) {
    const ranks = Array.from({ length: world }, (_, r) =>
      track(execFile('/usr/bin/python3', args, { env: ddpEnv(r, world, '127.0.0.1', 'lo'), maxBuffer: 16 << 20 })),
    );
    await Promise.all(ranks.map((p) => p.exit));
    return {
      label: `PyTorch DDP (gloo), ${world} local ranks`,
      samplesPerSec: ddpRate(ranks[0].output()),
      wireShare: null,
      hubBytesPerStep: null,
      workerBytesPerStep: null,
      medianStepMs: null,
      shards: null,
    };
  }
  const names = workerNames(world);
  const net = new SimulatedHosts(names);
  try {
    for (const h of names) net.cap(h, rate);
    const master = net.host(names[0]).ip;
    const before = snapshot(net);
    const ranks = names.map((h, r) =>
      track(
        net.spawn(h, '/usr/bin/python3', args, {
          env: ddpEnv(r, world, master, net.host(h).dev),
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      ),
    );
    const codes = await Promise.all(ranks.map((p) => p.exit));
    const after = snapshot(net);
    if (codes.some((code) => code !== 0))
      throw new Error(`ddp anchor failed: ${ranks.map((p) => lastLine(p.output())).join(' | ')}`);
    // Over the whole run: 3 warm-up steps, the timed ones, DDP's initial parameter broadcast and barriers.
    const steps = DDP_STEPS + 3;
    return {
      label: `PyTorch DDP (gloo), ${world} hosts at ${rate}`,
      samplesPerSec: ddpRate(ranks[0].output()),
      wireShare: null,
      hubBytesPerStep: perStep(before, after, [names[0]], steps),
      workerBytesPerStep: perStep(before, after, names, steps),
      medianStepMs: null,
      shards: null,
    };
  } finally {
    net.destroy();
  }
}

interface Round {
  loadBefore: number;
  loadAfter: number;
  runs: Figures[];
}

async function round(o: Options, dir: string, job: string): Promise<Round> {
  const loadBefore = loadAverage();
  const runs: Figures[] = [];
  const add = async (f: Promise<Figures>) => {
    const r = await f;
    process.stderr.write(`  ${r.label}: ${r.samplesPerSec.toFixed(0)} samples/s\n`);
    runs.push(r);
  };
  if (o.perHost > 1) {
    await add(local(dir, job, o.workers * o.perHost, o.steps));
    for (const rate of o.rates) {
      await add(acrossHosts(dir, job, o.workers, rate, o.steps, false, { k: o.perHost, agent: false }));
      await add(acrossHosts(dir, job, o.workers, rate, o.steps, false, { k: o.perHost, agent: true }));
    }
    return { loadBefore, loadAfter: loadAverage(), runs };
  }
  await add(local(dir, job, o.workers, o.steps));
  for (const rate of o.rates) await add(acrossHosts(dir, job, o.workers, rate, o.steps));
  // Sliced runs in each wire dtype asked for, side by side at each rate.
  const dtypes = o.wireDtypes.map((d) => (d === 'float32' ? [] : ['--wire-dtype', d]));
  if (o.sliced)
    for (const rate of o.rates)
      for (const d of dtypes) await add(acrossHosts(dir, job, o.workers, rate, o.steps, true, undefined, d));
  if (o.compress)
    for (const rate of o.rates)
      await add(acrossHosts(dir, job, o.workers, rate, o.steps, false, undefined, ['--compress', o.compress]));
  if (o.anchor) {
    await add(ddp(o.anchor, o.workers, null));
    for (const rate of o.rates) await add(ddp(o.anchor, o.workers, rate));
  }
  // Bytes per link against the number of worker hosts, at the first rate.
  for (const n of o.bytesWorkers.filter((n) => n !== o.workers)) {
    await add(acrossHosts(dir, job, n, o.rates[0], o.steps));
    if (o.sliced) await add(acrossHosts(dir, job, n, o.rates[0], o.steps, true));
    if (o.anchor) await add(ddp(o.anchor, n, o.rates[0]));
  }
  return { loadBefore, loadAfter: loadAverage(), runs };
}

interface Options {
  rates: string[];
  workers: number;
  bytesWorkers: number[];
  steps: number;
  rounds: number;
  anchor: string | null;
  out: string;
  /** Also run each across-hosts job with a slice shard on every worker host. */
  sliced: boolean;
  clipNorm: number;
  /** Worker processes per worker host (> 1: with and without a host agent, see the header). */
  perHost: number;
  /** The wire dtypes of the sliced runs (`--wire-dtypes float32,bfloat16`). */
  wireDtypes: string[];
  /** Also an unsharded run with this compression at each rate (`--compress topk:0.01`). */
  compress: string | null;
}

function options(args: ScriptArgs): Options {
  return {
    rates: args.list('--rates', '1gbit,100mbit'),
    workers: Number(args.value('--workers', '2')),
    bytesWorkers: args.list('--bytes-workers', '2,4').map(Number),
    steps: Number(args.value('--steps', '40')),
    rounds: Number(args.value('--rounds', '1')),
    anchor: args.value('--ddp-anchor'),
    out: args.value('--out', 'bench-hosts.json'),
    sliced: args.has('--slice-shards'),
    clipNorm: Number(args.value('--clip-norm', '0')),
    perHost: Number(args.value('--per-host', '1')),
    wireDtypes: args.list('--wire-dtypes', 'float32'),
    compress: args.value('--compress'),
  };
}

const mb = (b: number) => (b / 1e6).toFixed(2);

function table(rounds: Round[]): string[] {
  const lines: string[] = [];
  rounds.forEach((r, i) => {
    const base = r.runs[0].samplesPerSec;
    lines.push(`round ${i + 1} (load average ${r.loadBefore.toFixed(1)} → ${r.loadAfter.toFixed(1)})`, '');
    lines.push(
      '| run | samples/s | of the first row | wire share | hub link MB/step out / in | worker link MB/step out / in ' +
        '| step ms | per shard: wire / wait / norms back ms |',
    );
    lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
    for (const f of r.runs) {
      const share = f.wireShare === null ? '—' : `${(f.wireShare * 100).toFixed(1)}%`;
      const hub = f.hubBytesPerStep ? `${mb(f.hubBytesPerStep.tx)} / ${mb(f.hubBytesPerStep.rx)}` : '—';
      const wk = f.workerBytesPerStep ? `${mb(f.workerBytesPerStep.tx)} / ${mb(f.workerBytesPerStep.rx)}` : '—';
      const ms = (x: number) => x.toFixed(1);
      const shards = f.shards?.map((t) => `${ms(t.wireMs)} / ${ms(t.waitMs)} / ${ms(t.normsMs)}`).join('; ') ?? '—';
      const step = f.medianStepMs === null ? '—' : ms(f.medianStepMs);
      lines.push(
        `| ${f.label} | ${f.samplesPerSec.toFixed(0)} | ${(f.samplesPerSec / base).toFixed(2)} | ${share} | ` +
          `${hub} | ${wk} | ${step} | ${shards} |`,
      );
    }
    lines.push('');
  });
  return lines;
}

async function main(): Promise<void> {
  const why = hostsUnavailable();
  if (why) throw new Error(why);
  const o = options(new ScriptArgs());
  const dir = mkdtempSync(join(tmpdir(), 'dptrain-bench-hosts-'));
  const job = join(dir, 'job.json');
  writeFileSync(job, JSON.stringify({ ...REFERENCE_JOB, optimizer: { clipNorm: o.clipNorm } }));
  const rounds: Round[] = [];
  for (let i = 0; i < o.rounds; i++) {
    process.stderr.write(`round ${i + 1} of ${o.rounds}\n`);
    rounds.push(await round(o, dir, job));
  }
  const results = { date: new Date().toISOString(), options: o, perWorkerBatch: PER_WORKER_BATCH, rounds };
  writeResults(o.out, results, table(rounds));
}

// Interrupted: exit through process.exit, so the hosts are removed ('exit' handlers run).
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

runScript('bench-hosts', main);
