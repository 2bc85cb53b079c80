/**
 * What virtual shards cost: `dptrain train` on the reference MLP (784-512-512-10, wasm, MNIST,
 * batch 128 per worker as in the bench) with `shards` per-worker, auto, and a fine cut of four
 * leaves per worker (32 rows each), interleaved within each round (the order rotates from
 * round to round) so that a loaded machine's drift falls on every setting alike. Prints, per
 * worker count, the median samples/s of each setting and the median of the per-round ratios
 * to per-worker; writes the rows to bench-shards.json (or the path given first). With
 * --base-cli PATH (another build's dist/cli/main.js, e.g. before virtual shards) its runs join
 * the rotation as the setting "base".
 * --settings per-worker,auto keeps only those settings; --fine K cuts K leaves a worker (default 4).
 * Usage: node dist/scripts/bench-shards.js [out.json] [--rounds N] [--workers 1,2,4] [--steps N] [--base-cli PATH]
 *   [--settings per-worker,auto,fine]
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunSummary } from '../coordinator/summary.js';
import { median } from '../shared/util/stats.js';

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const PER_WORKER_BATCH = 128;
const JOB = {
  data: { name: 'mnist' },
  model: {
    layers: [
      { units: 512, activation: 'relu' },
      { units: 512, activation: 'relu' },
      { units: 10, activation: 'linear' },
    ],
    loss: 'softmaxCrossEntropy',
  },
  evalEvery: 0,
  checkpointEvery: 0,
};

type Setting = 'per-worker' | 'auto' | 'fine' | 'base';

interface Row {
  round: number;
  workers: number;
  setting: Setting;
  shards: string;
  samplesPerSec: number;
  medianStepMs: number;
  wireBytesPerStep: number;
}

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
}

function run(
  dir: string,
  round: number,
  workers: number,
  setting: Setting,
  steps: number,
  baseCli: string,
): Promise<Row> {
  const fine = Number(arg('--fine', '4')); // leaves per worker of the fine cut
  const shards = setting === 'fine' ? String(fine * workers) : setting === 'base' ? 'per-worker' : setting;
  const out = join(dir, `r${round}-w${workers}-${setting}`);
  const job = join(dir, 'job.json');
  writeFileSync(job, JSON.stringify(JOB));
  const common = [
    'train',
    '--config',
    job,
    '--workers',
    String(workers),
    '--batch-size',
    String(PER_WORKER_BATCH * workers),
    '--steps',
    String(steps),
    '--backend',
    'wasm',
    '--out',
    out,
  ];
  const args = setting === 'base' ? [baseCli, ...common] : [CLI, ...common, '--shards', shards];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { maxBuffer: 64 << 20 }, (err, _o, stderr) => {
      if (err) return reject(new Error(`dptrain train failed: ${stderr.trim().split('\n').pop()}`));
      const s = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as RunSummary;
      resolve({
        round,
        workers,
        setting,
        shards,
        samplesPerSec: s.samplesPerSec ?? 0,
        medianStepMs: s.medianStepMs ?? 0,
        wireBytesPerStep: s.wireBytesPerStep ?? 0,
      });
    });
  });
}

async function main(): Promise<void> {
  const outFile = process.argv[2] && !process.argv[2].startsWith('--') ? process.argv[2] : 'bench-shards.json';
  const rounds = Number(arg('--rounds', '3'));
  const workerCounts = arg('--workers', '1,2,4').split(',').map(Number);
  const steps = Number(arg('--steps', '60'));
  const baseCli = arg('--base-cli', '');
  const all: Setting[] = ['per-worker', 'auto', 'fine', ...(baseCli ? ['base' as const] : [])];
  const only = arg('--settings', '').split(',').filter(Boolean);
  const SETTINGS = only.length > 0 ? all.filter((x) => only.includes(x)) : all;
  const dir = mkdtempSync(join(tmpdir(), 'dptrain-bench-shards-'));
  const rows: Row[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const w of workerCounts) {
      const order = SETTINGS.map((_, i) => SETTINGS[(i + r) % SETTINGS.length]);
      for (const setting of order) {
        const row = await run(dir, r, w, setting, steps, baseCli);
        rows.push(row);
        const sps = row.samplesPerSec.toFixed(0);
        console.error(`round ${r + 1}/${rounds} workers ${w} ${setting} (shards ${row.shards}): ${sps} samples/s`);
      }
    }
  }
  writeFileSync(outFile, JSON.stringify({ job: JOB, perWorkerBatch: PER_WORKER_BATCH, steps, rows }, null, 2));
  console.log('workers  shards       samples/s (median)  ratio to per-worker (median of rounds)  wire MB/step');
  for (const w of workerCounts) {
    const of = (s: Setting) => rows.filter((x) => x.workers === w && x.setting === s);
    for (const s of SETTINGS) {
      const ratios = of(s).map(
        (x) => x.samplesPerSec / of('per-worker').find((y) => y.round === x.round)!.samplesPerSec,
      );
      const sps = median(of(s).map((x) => x.samplesPerSec)) ?? NaN;
      const mb = (median(of(s).map((x) => x.wireBytesPerStep)) ?? NaN) / 1e6;
      const label = s === 'base' ? 'base build' : of(s)[0].shards;
      const ratio = (median(ratios) ?? NaN).toFixed(3);
      const cols = [sps.toFixed(0).padStart(18), ratio.padStart(38), mb.toFixed(1).padStart(11)];
      console.log(`${String(w).padEnd(9)}${label.padEnd(13)}${cols.join('  ')}`);
    }
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
