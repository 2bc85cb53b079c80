/**
 * Checkpoints: everything the coordinator owns, so a run can continue exactly where it stopped.
 *
 * File layout (little-endian):
 *   "DPCK" | u32 format version | u32 header length H | H bytes JSON header | pad to 4 |
 *   params f32[P] | Adam m f32[P] | Adam v f32[P] | SHA-256 of all preceding bytes (32)
 *
 * Written atomically (temporary file, fsync, rename) as checkpoints/step-NNNNNNNN.ckpt; the
 * previous one is deleted only after the new one is complete, and two are kept. On load the
 * newest file that passes its checksum wins; a corrupt or truncated one is reported and skipped.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { jobOf, type Config } from '../shared/job/config.js';
import { DptrainError, fail } from '../shared/util/errors.js';
import { writeFileAtomic } from '../shared/util/fs-atomic.js';
import type { AdamState } from './optimizers/adam.js';

const MAGIC = 'DPCK';
const FORMAT = 1;
const KEEP = 2;

export interface CheckpointCounters {
  stale: number;
  reassigned: number;
  recomputed: number;
  outliers: number;
  dropped: number;
  skipped: number;
  cumulativeFlops: number;
  hardwareFlops: number;
}

export interface CheckpointState {
  /** Optimizer steps completed. */
  step: number;
  /** Cursor into the sample stream (see shared/job/sampler). */
  position: number;
  /** Parameter version (applied updates). */
  version: number;
  config: Config;
  params: Float32Array;
  adam: AdamState;
  counters: CheckpointCounters;
  /** The dataset's fingerprint (shared/datasets fingerprint) the run trained on; null: unknown (older checkpoints). */
  dataFingerprint?: string | null;
}

interface Header {
  step: number;
  position: number;
  version: number;
  config: Config;
  configHash: string;
  totalParams: number;
  adam: { accBeta1: number; accBeta2: number; step: number };
  counters: CheckpointCounters;
  /** The data order is a pure function of (seed, epoch): the seed is the whole RNG state. */
  rng: { seed: number };
  data?: string | null;
}

/** Hash of the job (what defines the optimization), with keys in a fixed order. */
export function configHash(c: Config): string {
  const canonical = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canonical)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
          )
        : v;
  // No compression leaves the hash as it was before compression existed: old checkpoints still resume.
  const { compression, ...rest } = jobOf(c);
  const job = compression.kind === 'none' ? rest : { ...rest, compression };
  return createHash('sha256')
    .update(JSON.stringify(canonical(job)))
    .digest('hex');
}

export function encodeCheckpoint(s: CheckpointState): Uint8Array {
  const header: Header = {
    step: s.step,
    position: s.position,
    version: s.version,
    config: s.config,
    configHash: configHash(s.config),
    totalParams: s.params.length,
    adam: { accBeta1: s.adam.accBeta1, accBeta2: s.adam.accBeta2, step: s.adam.step },
    counters: s.counters,
    rng: { seed: s.config.seed },
    data: s.dataFingerprint ?? null,
  };
  const json = Buffer.from(JSON.stringify(header));
  const bodyAt = (12 + json.length + 3) & ~3;
  const n = s.params.length * 4;
  const out = new Uint8Array(bodyAt + 3 * n + 32);
  const view = new DataView(out.buffer);
  out.set(Buffer.from(MAGIC), 0);
  view.setUint32(4, FORMAT, true);
  view.setUint32(8, json.length, true);
  out.set(json, 12);
  const bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  out.set(bytes(s.params), bodyAt);
  out.set(bytes(s.adam.m), bodyAt + n);
  out.set(bytes(s.adam.v), bodyAt + 2 * n);
  out.set(
    createHash('sha256')
      .update(out.subarray(0, out.length - 32))
      .digest(),
    out.length - 32,
  );
  return out;
}

export function decodeCheckpoint(buf: Uint8Array, what = 'checkpoint'): CheckpointState {
  const bad = (why: string): never => fail('CHECKPOINT_CORRUPT', `${what}: ${why}`);
  if (buf.length < 44 || Buffer.from(buf.subarray(0, 4)).toString() !== MAGIC)
    bad('not a dptrain checkpoint (bad magic or too short)');
  const digest = createHash('sha256')
    .update(buf.subarray(0, buf.length - 32))
    .digest();
  if (!digest.equals(buf.subarray(buf.length - 32))) bad('checksum mismatch (truncated or corrupted)');
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.getUint32(4, true) !== FORMAT) bad(`format version ${view.getUint32(4, true)}, expected ${FORMAT}`);
  const hlen = view.getUint32(8, true);
  const header = JSON.parse(Buffer.from(buf.subarray(12, 12 + hlen)).toString()) as Header;
  const bodyAt = (12 + hlen + 3) & ~3;
  const n = header.totalParams * 4;
  if (bodyAt + 3 * n + 32 !== buf.length) bad('size does not match its header');
  const f32 = (at: number) => {
    // Copy into a fresh buffer: `buf` may be a Node Buffer inside a shared pool.
    const out = new Float32Array(header.totalParams);
    new Uint8Array(out.buffer).set(buf.subarray(bodyAt + at, bodyAt + at + n));
    return out;
  };
  if (configHash(header.config) !== header.configHash) bad('config hash mismatch');
  return {
    step: header.step,
    position: header.position,
    version: header.version,
    config: header.config,
    params: f32(0),
    adam: {
      m: f32(n),
      v: f32(2 * n),
      accBeta1: header.adam.accBeta1,
      accBeta2: header.adam.accBeta2,
      step: header.adam.step,
    },
    counters: header.counters,
    dataFingerprint: header.data ?? null,
  };
}

const NAME = /^step-(\d{8})\.ckpt$/;

export function checkpointDir(runDir: string): string {
  return join(runDir, 'checkpoints');
}

/** Write a checkpoint atomically; then keep only the newest KEEP. Returns its path. */
export function saveCheckpoint(runDir: string, s: CheckpointState): string {
  const dir = checkpointDir(runDir);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `step-${String(s.step).padStart(8, '0')}.ckpt`);
  writeFileAtomic(path, encodeCheckpoint(s));
  const all = readdirSync(dir)
    .filter((f) => NAME.test(f))
    .sort()
    .reverse();
  for (const old of all.slice(KEEP)) rmSync(join(dir, old), { force: true });
  return path;
}

export interface LoadedCheckpoint {
  state: CheckpointState;
  path: string;
  /** Newer files that failed to load, with why. */
  rejected: Array<{ path: string; reason: string }>;
}

/** The newest valid checkpoint in a run directory. */
export function loadLatestCheckpoint(runDir: string): LoadedCheckpoint {
  const dir = checkpointDir(runDir);
  let files: string[] = [];
  try {
    files = readdirSync(dir)
      .filter((f) => NAME.test(f))
      .sort()
      .reverse();
  } catch {
    // no checkpoints directory: handled below
  }
  const rejected: LoadedCheckpoint['rejected'] = [];
  for (const f of files) {
    const path = join(dir, f);
    try {
      return { state: decodeCheckpoint(readFileSync(path), path), path, rejected };
    } catch (e) {
      if (!(e instanceof DptrainError)) throw e;
      rejected.push({ path, reason: e.message });
    }
  }
  const why = rejected.length ? `; every checkpoint failed: ${rejected.map((r) => r.reason).join('; ')}` : '';
  return fail('CHECKPOINT_MISSING', `--resume ${runDir}: no usable checkpoint in ${dir}${why}`);
}

/**
 * The data a resumed run trains on must be the data it began with: a checkpoint's fingerprint
 * against this host's (refused when they differ, before a changed vocabulary shows up as a
 * parameter count), or, where this host cannot load the data, the one workers must match.
 */
export function resumedDataFingerprint(resume: CheckpointState | undefined, now: string | null): string | null {
  const was = resume?.dataFingerprint ?? null;
  if (was && now && was !== now)
    fail(
      'DATASET_UNAVAILABLE',
      `the job's data changed since the checkpoint (${was}, now ${now}): resume with the files the run began with, or start a new run`,
    );
  return now ?? was;
}
