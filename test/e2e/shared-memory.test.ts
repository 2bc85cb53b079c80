/**
 * `dptrain train` hands its local workers tensors through /dev/shm files (shared/transport/shm.ts):
 * the parameters come out bit-identical to the socket path, almost nothing crosses the socket,
 * and the directory is gone after the run.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SHM_ROOT } from '../../shared/transport/shm.js';
import { CLI, readSummary, readWeights, SPIRALS, stepsReached, tempDir, trainSpirals } from '../helpers/cli.js';

/** The shared-memory directory a run used, from its log (other runs may have their own meanwhile). */
function shmDirOf(runDir: string): string {
  const lines = readFileSync(join(runDir, 'log.jsonl'), 'utf8').split('\n').filter(Boolean);
  const line = lines
    .map((l) => JSON.parse(l) as { msg?: string; dir?: string })
    .find((r) => r.msg === 'shared memory for local workers');
  if (!line?.dir) throw new Error(`${runDir}/log.jsonl names no shared-memory directory`);
  return line.dir;
}

describe.skipIf(!existsSync(SHM_ROOT))('shared memory for local workers', () => {
  it('trains bit-identically to the socket path, keeps the payloads off the socket, and cleans up', async () => {
    const run = async (flags: string[]) => {
      const out = await trainSpirals('shm', 30, ['--wire-dtype', 'bfloat16', ...flags]);
      return { summary: readSummary(out), weights: readWeights(out), out };
    };
    const shm = await run([]);
    const socket = await run(['--no-shared-memory']);
    expect(Array.from(shm.weights)).toEqual(Array.from(socket.weights));
    const params = shm.summary.params;
    // Through the socket: headers only with shared memory; 2 bytes a value each way without.
    expect(shm.summary.wireBytesPerStep!).toBeLessThan(2000);
    expect(socket.summary.wireBytesPerStep!).toBeGreaterThan(2 * 2 * 2 * params);
    const dir = shmDirOf(shm.out);
    expect(dir.startsWith(`${SHM_ROOT}/dptrain-`)).toBe(true);
    expect(existsSync(dir)).toBe(false);
  }, 120_000);

  // Long enough that the directory is removed mid-run: spirals trains ~100 steps/s here.
  const STEPS = 600;
  // With --coordinator-worker, the worker inside the coordinator falls back and joins again too.
  it.each([
    ['worker processes', []],
    ['one worker inside the coordinator', ['--coordinator-worker']],
  ])(
    '%s: when the directory disappears mid-run, payloads fall back to the socket and the run finishes',
    async (_, flags) => {
      const out = tempDir('shm-gone');
      const child = spawn(
        process.execPath,
        [CLI, 'train', '--config', SPIRALS, '--workers', '2', '--steps', String(STEPS), ...flags, '--out', out],
        { stdio: 'ignore' },
      );
      const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
      await stepsReached(out, 10);
      let dir: string | null = null;
      for (let tries = 0; dir === null && tries < 100; tries++) {
        try {
          dir = shmDirOf(out);
        } catch {
          await new Promise((r) => setTimeout(r, 100)); // the log line may still be on its way to the file
        }
      }
      // The directory goes while training is under way (a run this short must not have finished).
      expect(readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').length).toBeLessThan(STEPS / 2);
      if (dir === null) throw new Error(`${out}/log.jsonl named no shared-memory directory`);
      // Renamed away in one step (a recursive delete races with the files still being written), then removed.
      const gone = join(SHM_ROOT, `gone-${basename(dir)}`); // same filesystem: rename is atomic
      renameSync(dir, gone);
      rmSync(gone, { recursive: true, force: true });
      expect(await exited).toBe(0);
      expect(readSummary(out).steps).toBe(STEPS);
      // Whichever side touches the directory first falls back and says so: the coordinator (a
      // write or read fails: it stops offering shared memory) or the workers (a parameter read
      // fails: each reconnects without it, and the coordinator logs why it left).
      expect(readFileSync(join(out, 'log.jsonl'), 'utf8')).toMatch(
        /shared memory failed; payloads go through the socket from now on|shared memory unreadable; reconnecting without it/,
      );
      // A worker that reconnected changes how some steps were sharded, which over hundreds of
      // steps moves the weights; the run must still train as well as a socket-only one.
      const socket = await trainSpirals('shm-gone-ref', STEPS, ['--no-shared-memory']);
      const [got, want] = [readSummary(out).testAccuracy!, readSummary(socket).testAccuracy!];
      expect(want).toBeGreaterThan(0.8);
      expect(Math.abs(got - want)).toBeLessThanOrEqual(0.03);
    },
    120_000,
  );
});
