/**
 * `dptrain train` hands its local workers tensors through /dev/shm files (shared/transport/shm.ts):
 * the parameters come out bit-identical to the socket path, almost nothing crosses the socket,
 * and the directory is gone after the run.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SHM_ROOT } from '../../shared/transport/shm.js';
import { CLI, readSummary, readWeights, runCli, stepsReached, tempDir } from '../helpers/cli.js';

const SPIRALS = join(__dirname, '../../examples/spirals.json');
const ours = () => (existsSync(SHM_ROOT) ? readdirSync(SHM_ROOT).filter((n) => n.startsWith('dptrain-')) : []);

describe.skipIf(!existsSync(SHM_ROOT))('shared memory for local workers', () => {
  it('trains bit-identically to the socket path, keeps the payloads off the socket, and cleans up', async () => {
    const before = new Set(ours());
    const run = async (flags: string[]) => {
      const out = tempDir('shm');
      const r = await runCli([
        'train',
        '--config',
        SPIRALS,
        '--workers',
        '2',
        '--steps',
        '30',
        '--wire-dtype',
        'bfloat16',
        ...flags,
        '--out',
        out,
      ]);
      expect(r.code, r.stderr).toBe(0);
      return { summary: readSummary(out), weights: readWeights(out) };
    };
    const shm = await run([]);
    const socket = await run(['--no-shared-memory']);
    expect(Array.from(shm.weights)).toEqual(Array.from(socket.weights));
    const params = shm.summary.params;
    // Through the socket: headers only with shared memory; 2 bytes a value each way without.
    expect(shm.summary.wireBytesPerStep!).toBeLessThan(2000);
    expect(socket.summary.wireBytesPerStep!).toBeGreaterThan(2 * 2 * 2 * params);
    expect(ours().filter((n) => !before.has(n))).toEqual([]);
  }, 120_000);

  // Long enough that the directory is removed mid-run: spirals trains ~100 steps/s here.
  const STEPS = 600;
  it('when the directory disappears mid-run, both sides fall back to the socket and the run finishes', async () => {
    const before = new Set(ours());
    const out = tempDir('shm-gone');
    const child = spawn(
      process.execPath,
      [CLI, 'train', '--config', SPIRALS, '--workers', '2', '--steps', String(STEPS), '--out', out],
      { stdio: 'ignore' },
    );
    const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
    await stepsReached(out, 10);
    const fresh = ours().filter((n) => !before.has(n));
    // The directory goes while training is under way (a run this short must not have finished).
    expect(readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').length).toBeLessThan(STEPS / 2);
    expect(fresh.length).toBe(1);
    // Renamed away in one step (a recursive delete races with the files still being written), then removed.
    const gone = join(SHM_ROOT, `gone-${fresh[0]}`); // same filesystem: rename is atomic
    renameSync(join(SHM_ROOT, fresh[0]), gone);
    rmSync(gone, { recursive: true, force: true });
    expect(await exited).toBe(0);
    expect(readSummary(out).steps).toBe(STEPS);
    expect(readFileSync(join(out, 'log.jsonl'), 'utf8')).toMatch(
      /shared memory failed; payloads go through the socket from now on/,
    );
    // A worker that reconnected changes how some steps were sharded, which over hundreds of
    // steps moves the weights; the run must still train as well as a socket-only one.
    const socket = tempDir('shm-gone-ref');
    expect(
      (
        await runCli([
          'train',
          '--config',
          SPIRALS,
          '--workers',
          '2',
          '--steps',
          String(STEPS),
          '--no-shared-memory',
          '--out',
          socket,
        ])
      ).code,
    ).toBe(0);
    const [got, want] = [readSummary(out).testAccuracy!, readSummary(socket).testAccuracy!];
    expect(want).toBeGreaterThan(0.8);
    expect(Math.abs(got - want)).toBeLessThanOrEqual(0.03);
  }, 120_000);
});
