import { existsSync, mkdtempSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  checkpointDir,
  configHash,
  decodeCheckpoint,
  encodeCheckpoint,
  loadLatestCheckpoint,
  saveCheckpoint,
  type CheckpointState,
} from '../../coordinator/checkpoint.js';
import { parseConfig } from '../../shared/job/config.js';
import { expectCode } from '../helpers/expect-code.js';

function state(step: number, n = 7): CheckpointState {
  const f = (k: number) => Float32Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i * k + step)));
  return {
    step,
    position: step * 32,
    version: step,
    config: parseConfig({ steps: 50 }),
    params: f(1),
    adam: {
      m: f(2),
      v: f(3).map(Math.abs),
      accBeta1: Math.fround(0.9 ** (step + 1)),
      accBeta2: Math.fround(0.999 ** (step + 1)),
      step,
    },
    counters: {
      stale: 1,
      reassigned: 2,
      recomputed: 7,
      outliers: 8,
      dropped: 3,
      skipped: 4,
      cumulativeFlops: 5e9,
      hardwareFlops: 6e9,
    },
    dataFingerprint: 'xor:4+0:2->1:0123abcd',
  };
}

describe('checkpoint file', () => {
  it('round-trips every field bit for bit', () => {
    const s = state(12);
    const back = decodeCheckpoint(encodeCheckpoint(s));
    expect(back.params).toEqual(s.params);
    expect(back.adam).toEqual(s.adam);
    expect(back).toMatchObject({ step: 12, position: 384, version: 12, counters: s.counters });
    expect(back.dataFingerprint).toBe('xor:4+0:2->1:0123abcd');
    expect(decodeCheckpoint(encodeCheckpoint({ ...s, dataFingerprint: undefined })).dataFingerprint).toBeNull();
    expect(configHash(back.config)).toBe(configHash(s.config));
  });

  it('detects truncation, a flipped byte and a foreign file', () => {
    const bytes = encodeCheckpoint(state(3));
    expect(expectCode(() => decodeCheckpoint(bytes.subarray(0, bytes.length - 100)), 'CHECKPOINT_CORRUPT')).toMatch(
      /checksum/,
    );
    const flipped = bytes.slice();
    flipped[200] ^= 1;
    expect(expectCode(() => decodeCheckpoint(flipped), 'CHECKPOINT_CORRUPT')).toMatch(/checksum/);
    expect(
      expectCode(
        () => decodeCheckpoint(new TextEncoder().encode('{"not": "a checkpoint"} padding padding padding')),
        'CHECKPOINT_CORRUPT',
      ),
    ).toMatch(/magic/);
  });

  it('the config hash covers the job, not the launch options', () => {
    const a = parseConfig({ steps: 50 });
    expect(configHash(parseConfig({ steps: 50, workers: 7, backend: 'cpu' }))).toBe(configHash(a));
    expect(configHash(parseConfig({ steps: 51 }))).not.toBe(configHash(a));
  });
});

describe('checkpoints in a run directory', () => {
  it('keeps the two newest, written atomically (no temporary files left)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ckpt-'));
    for (const step of [5, 10, 15]) saveCheckpoint(dir, state(step));
    expect(readdirSync(checkpointDir(dir)).sort()).toEqual(['step-00000010.ckpt', 'step-00000015.ckpt']);
    expect(loadLatestCheckpoint(dir).state.step).toBe(15);
  });

  it('a truncated newest checkpoint is reported and the previous one used', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ckpt-'));
    saveCheckpoint(dir, state(10));
    const newest = saveCheckpoint(dir, state(20));
    truncateSync(newest, 1000);
    const loaded = loadLatestCheckpoint(dir);
    expect(loaded.state.step).toBe(10);
    expect(loaded.rejected).toHaveLength(1);
    expect(loaded.rejected[0].path).toBe(newest);
    expect(loaded.rejected[0].reason).toMatch(/checksum mismatch/);
  });

  it('no usable checkpoint is one CHECKPOINT_MISSING line naming the directory and why', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ckpt-'));
    expect(expectCode(() => loadLatestCheckpoint(dir), 'CHECKPOINT_MISSING')).toContain(dir);
    const only = saveCheckpoint(dir, state(1));
    writeFileSync(only, readFileSync(only).subarray(0, 40));
    expect(existsSync(only)).toBe(true);
    expect(expectCode(() => loadLatestCheckpoint(dir), 'CHECKPOINT_MISSING')).toMatch(/every checkpoint failed/);
  });
});
