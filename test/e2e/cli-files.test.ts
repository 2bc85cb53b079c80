/**
 * Files and flags a user gets wrong around a run: each is one line naming what to fix, at once,
 * and no run's data is lost (report, sample, worker and host-agent).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync, appendFileSync, existsSync } from 'node:fs';
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../helpers/cli.js';
import { equivGptJob } from '../helpers/equivalence-job.js';
import { tinyTextFile } from '../helpers/fixtures.js';

const XOR = join(__dirname, '../../examples/xor.json');

/** stderr is exactly one `dptrain:` line (no stack, no log lines, no second line), matching `pattern`. */
function expectOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trim().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
}

describe('dptrain report: --out and metrics.jsonl', () => {
  const dir = tempDir('report-files');
  const run = join(dir, 'run');
  let metrics = '';

  beforeAll(async () => {
    const r = await runCli([
      'train',
      '--config',
      XOR,
      '--steps',
      '5',
      '--workers',
      '1',
      '--backend',
      'cpu',
      '--out',
      run,
    ]);
    expect(r.code, r.stderr).toBe(0);
    metrics = readFileSync(join(run, 'metrics.jsonl'), 'utf8');
  });

  it('refuses an --out that is a file of the run, or inside it, and leaves metrics.jsonl as it was', async () => {
    for (const out of [join(run, 'metrics.jsonl'), join(run, 'report.html'), join(run, 'workers', 'r.html')]) {
      const r = await runCli(['report', run, '--out', out]);
      expect(r.code).toBe(2);
      expectOneLine(
        r.stderr,
        /^dptrain: CONFIG_INVALID: --out .* is inside the run directory .*run, which the report reads: write it elsewhere/,
      );
    }
    expect(readFileSync(join(run, 'metrics.jsonl'), 'utf8')).toBe(metrics);
    expect(existsSync(join(run, 'report.html'))).toBe(false);
    // the same run named through another path is the same run
    const r = await runCli(['report', join(dir, '.', 'run', '..', 'run'), '--out', join(run, 'config.json')]);
    expect(r.code).toBe(2);
    const ok = await runCli(['report', run, '--out', join(dir, 'report.html')]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toBe('');
  });

  it('an empty --out, a directory, or a missing directory is one line', async () => {
    const empty = await runCli(['report', run, '--out', '']);
    expect(empty.code).toBe(2);
    expectOneLine(empty.stderr, /^dptrain: CONFIG_INVALID: --out is empty: name the HTML file to write/);
    const isDir = await runCli(['report', run, '--out', dir]);
    expectOneLine(isDir.stderr, /^dptrain: CONFIG_INVALID: --out .* is a directory: name the HTML file to write/);
    const missing = await runCli(['report', run, '--out', join(dir, 'nope', 'r.html')]);
    expectOneLine(missing.stderr, /^dptrain: CONFIG_INVALID: --out .*: its directory .*nope does not exist$/);
  });

  it('lines of metrics.jsonl that are no step record are named in a warning; a file of none is refused', async () => {
    const damaged = join(dir, 'damaged');
    mkdirSync(damaged);
    for (const f of ['config.json', 'summary.json']) writeFileSync(join(damaged, f), readFileSync(join(run, f)));
    writeFileSync(join(damaged, 'metrics.jsonl'), metrics);
    appendFileSync(join(damaged, 'metrics.jsonl'), 'garbage\n{"step": "x"}\n');
    const r = await runCli(['report', damaged, '--out', join(dir, 'd.html')]);
    expect(r.code, r.stderr).toBe(0);
    expectOneLine(
      r.stderr,
      /^dptrain: warning: .*damaged\/metrics\.jsonl: 2 of 7 lines are not step records \(lines 6, 7\); the report leaves them out$/,
    );
    // what `report RUN --out RUN/metrics.jsonl` used to leave: a page where the metrics were
    writeFileSync(join(damaged, 'metrics.jsonl'), '<!doctype html>\n<html><body>report</body></html>\n');
    const html = await runCli(['report', damaged, '--out', join(dir, 'h.html')]);
    expect(html.code).toBe(2);
    expectOneLine(
      html.stderr,
      /^dptrain: CONFIG_UNREADABLE: .*damaged\/metrics\.jsonl: none of its 2 lines is a step record .*is it a dptrain run's metrics\?$/,
    );
    expect(existsSync(join(dir, 'h.html'))).toBe(false);
  });
});

describe('dptrain sample: a damaged saved model', () => {
  const dir = tempDir('sample-files');
  const run = join(dir, 'run');

  beforeAll(async () => {
    const job = join(dir, 'job.json');
    writeFileSync(job, JSON.stringify({ ...equivGptJob(tinyTextFile()), steps: 2 }));
    const r = await runCli(['train', '--config', job, '--workers', '1', '--backend', 'wasm', '--out', run]);
    expect(r.code, r.stderr).toBe(0);
  });

  /** A copy of the run's model directory in a new run directory, changed by `damage`. */
  function damagedRun(tag: string, damage: (model: string) => void): string {
    const copy = join(dir, tag);
    mkdirSync(join(copy, 'model'), { recursive: true });
    for (const f of ['dptrain-model.json', 'weights.bin'])
      writeFileSync(join(copy, 'model', f), readFileSync(join(run, 'model', f)));
    damage(join(copy, 'model'));
    return copy;
  }

  it('malformed dptrain-model.json, missing or unreadable weights.bin, no run: one line naming the file', async () => {
    const cases: Array<[string, (m: string) => void, RegExp]> = [
      [
        'bad-json',
        (m) => writeFileSync(join(m, 'dptrain-model.json'), '{bad'),
        /^dptrain: CHECKPOINT_CORRUPT: .*bad-json\/model\/dptrain-model\.json: not valid JSON/,
      ],
      [
        'no-weights',
        (m) => rmSync(join(m, 'weights.bin')),
        /^dptrain: CHECKPOINT_CORRUPT: .*no-weights\/model\/weights\.bin is missing: the run's saved model is incomplete$/,
      ],
      [
        'dir-weights',
        (m) => {
          rmSync(join(m, 'weights.bin'));
          mkdirSync(join(m, 'weights.bin'));
        },
        /^dptrain: CHECKPOINT_CORRUPT: .*dir-weights\/model\/weights\.bin: cannot read it \(EISDIR\)$/,
      ],
      [
        'no-data',
        (m) => {
          const saved = JSON.parse(readFileSync(join(m, 'dptrain-model.json'), 'utf8')) as Record<string, unknown>;
          writeFileSync(join(m, 'dptrain-model.json'), JSON.stringify({ ...saved, data: { targets: 'tokens' } }));
        },
        /^dptrain: CHECKPOINT_CORRUPT: .*no-data\/model\/dptrain-model\.json: its "data" is not a token model's shape/,
      ],
      [
        'bad-spec',
        (m) => {
          const saved = JSON.parse(readFileSync(join(m, 'dptrain-model.json'), 'utf8')) as Record<string, unknown>;
          writeFileSync(join(m, 'dptrain-model.json'), JSON.stringify({ ...saved, spec: { kind: 'gpt' } }));
        },
        /^dptrain: CHECKPOINT_CORRUPT: .*bad-spec\/model\/dptrain-model\.json: model\.layers must be/,
      ],
    ];
    for (const [tag, damage, pattern] of cases) {
      const r = await runCli([
        'sample',
        damagedRun(tag, damage),
        '--prompt',
        'And',
        '--tokens',
        '3',
        '--backend',
        'cpu',
      ]);
      expect(r.code, tag).toBe(1);
      expectOneLine(r.stderr, pattern);
    }
    const none = await runCli(['sample', join(dir, 'nothing'), '--prompt', 'And']);
    expect(none.code).toBe(2);
    expectOneLine(none.stderr, /^dptrain: CONFIG_UNREADABLE: .*nothing: no such run directory$/);
    const good = await runCli(['sample', run, '--prompt', 'And', '--tokens', '3', '--backend', 'cpu']);
    expect(good.code, good.stderr).toBe(0);
  });
});

describe('dptrain worker and host-agent: --connect-file and --peak-flops', () => {
  const dir = tempDir('join-files');

  it('a coordinator.json without an address, malformed, or a directory is refused at once, naming --connect-file', async () => {
    const noAddress = join(dir, 'no-address.json');
    writeFileSync(noAddress, JSON.stringify({ port: 7070 }));
    const malformed = join(dir, 'malformed.json');
    writeFileSync(malformed, '{"address": "ws://127.0.0.1:7070"');
    const cases: Array<[string, RegExp]> = [
      [noAddress, /--connect-file .*no-address\.json: no ws:\/\/ or wss:\/\/ "address" in it/],
      [malformed, /--connect-file .*malformed\.json: not valid JSON/],
      [dir, /--connect-file .* is a directory: give the coordinator's RUN\/coordinator\.json$/],
    ];
    for (const [file, pattern] of cases)
      for (const command of ['worker', 'host-agent']) {
        const t0 = Date.now();
        const r = await runCli(
          [command, '--connect-file', file, '--backend', 'cpu', '--connect-timeout', '30'],
          25_000,
        );
        expect(r.code, `${command} ${file}: ${r.stderr}`).toBe(2);
        expect(Date.now() - t0).toBeLessThan(15_000); // not retried for --connect-timeout
        expectOneLine(r.stderr, new RegExp(`^dptrain: CONFIG_INVALID: ${pattern.source}`));
      }
  });

  it('a file not written yet is waited for (the coordinator may be starting)', async () => {
    const r = await runCli(
      [
        'worker',
        '--connect-file',
        join(dir, 'later', 'coordinator.json'),
        '--backend',
        'cpu',
        '--connect-timeout',
        '1',
      ],
      25_000,
    );
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').pop()).toMatch(
      /^dptrain: CONNECT_FAILED: --connect-file .*later\/coordinator\.json: not written yet .*; gave up after 1 s$/,
    );
  });

  it('--peak-flops ≤ 0 is refused as train refuses compute.peakFlops', async () => {
    for (const command of ['worker', 'host-agent'])
      for (const peak of ['-5', '0']) {
        const r = await runCli([
          command,
          '--connect',
          'ws://127.0.0.1:9',
          '--connect-timeout',
          '1',
          '--peak-flops',
          peak,
          '--backend',
          'cpu',
        ]);
        expect(r.code, r.stderr).toBe(2);
        expectOneLine(
          r.stderr,
          new RegExp(`^dptrain: CONFIG_INVALID: --peak-flops must be a number > 0, got ${peak}$`),
        );
      }
  });
});

describe('dptrain train: data its workers could not use', () => {
  it('is refused in one line before a run directory or a worker exists', async () => {
    const dir = tempDir('data-refused');
    writeFileSync(join(dir, 'tiny.txt'), 'hello');
    const job = join(dir, 'gpt.json');
    writeFileSync(
      job,
      JSON.stringify({
        data: { name: 'text', path: join(dir, 'tiny.txt') },
        model: { kind: 'gpt', layers: 1, dModel: 16, heads: 2, seq: 8 },
        batchSize: 4,
      }),
    );
    const out = join(dir, 'run');
    const r = await runCli(['train', '--config', job, '--workers', '1', '--steps', '2', '--out', out]);
    expect(r.code).toBe(1);
    expectOneLine(
      r.stderr,
      /^dptrain: DATASET_UNAVAILABLE: data\.path: .*tiny\.txt has 5 tokens, too few for one training window of 9$/,
    );
    expect(existsSync(out)).toBe(false);
  });
});

describe('a launched worker outside a session', () => {
  it('leaves at once on SIGTERM (there is no goodbye to wait for)', async () => {
    const w = fork(
      join(__dirname, '../../dist/cli/main.js'),
      ['worker', '--connect', 'ws://127.0.0.1:9', '--connect-timeout', '60', '--backend', 'cpu'],
      { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] },
    );
    let err = '';
    w.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    const t0 = Date.now();
    while (!/retrying/.test(err) && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 50));
    const sent = Date.now();
    w.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => w.once('exit', (c) => r(c)));
    expect(code).toBe(143);
    expect(Date.now() - sent).toBeLessThan(3000);
    expect(err).toMatch(/SIGTERM outside a session with the coordinator: leaving/);
  }, 60_000);
});
