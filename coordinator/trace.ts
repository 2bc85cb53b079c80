/**
 * A Chrome trace (chrome://tracing, Perfetto: "JSON trace event format") of a window of steps:
 * the coordinator's spans (step, waiting for shards, reduce, optimizer, parameter encode) and
 * each worker's compute spans, placed so that they end when the coordinator received them.
 */
import { accessSync, constants, existsSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fail } from '../shared/util/errors.js';

interface TraceEvent {
  name: string;
  ph: 'X' | 'M';
  ts: number;
  dur?: number;
  pid: number;
  tid: number;
  args?: Record<string, unknown>;
}

export class Tracer {
  private events: TraceEvent[] = [];
  private tids = new Map<string, number>();

  constructor(
    /** Steps (1-based, inclusive) to record. */
    readonly from: number,
    readonly to: number,
  ) {}

  records(step: number): boolean {
    return step >= this.from && step <= this.to;
  }

  private tid(track: string): number {
    let t = this.tids.get(track);
    if (t === undefined) {
      t = this.tids.size;
      this.tids.set(track, t);
      this.events.push({ name: 'thread_name', ph: 'M', ts: 0, pid: 1, tid: t, args: { name: track } });
    }
    return t;
  }

  /** A span from `startMs` to `endMs` (performance.now() milliseconds) on a named track. */
  span(track: string, name: string, startMs: number, endMs: number, args?: Record<string, unknown>): void {
    this.events.push({
      name,
      ph: 'X',
      ts: Math.round(startMs * 1000),
      dur: Math.max(0, Math.round((endMs - startMs) * 1000)),
      pid: 1,
      tid: this.tid(track),
      ...(args ? { args } : {}),
    });
  }

  write(file: string): void {
    writeFileSync(file, JSON.stringify({ traceEvents: this.events, displayTimeUnit: 'ms' }));
  }
}

/**
 * The coordinator's spans of one step: the whole, the shards in flight, the optimizer, the
 * parameter encode. `fusedMs` is optimizer work done inside the last fold, while shards were
 * still in flight (fused-update.ts): its own span, ending where the rest of the optimizer
 * begins, so the optimizer spans add up to the step record's optimizerMs.
 */
export function traceStep(
  tr: Tracer,
  step: number,
  t: { start: number; optimizer: number; end: number; fusedMs?: number },
  loss: number,
  reduceMs: number,
  encode: { start: number; end: number } | null,
): void {
  const fused = t.fusedMs ?? 0;
  const optimizerMs = t.end - t.optimizer + fused;
  tr.span('coordinator', `step ${step}`, t.start, t.end, { loss });
  tr.span('coordinator', 'shards in flight (reduced as they arrive)', t.start, t.optimizer, { reduceMs });
  if (fused > 0)
    tr.span('coordinator', 'optimizer, fused into the last fold (shards in flight)', t.optimizer - fused, t.optimizer, {
      optimizerMs,
    });
  tr.span('coordinator', 'optimizer (mean, clip, Adam)', t.optimizer, t.end, { optimizerMs });
  if (encode && encode.start >= t.start) tr.span('coordinator', 'encode parameters', encode.start, encode.end);
}

/** "10:30" → steps 10 to 30. */
export function parseTraceSteps(v: string): [number, number] {
  const m = /^(\d+):(\d+)$/.exec(v);
  if (!m || Number(m[1]) < 1 || Number(m[2]) < Number(m[1])) throw new Error('expected FROM:TO steps, e.g. 10:30');
  return [Number(m[1]), Number(m[2])];
}

/** The steps traced when --trace-steps is not given. */
export const DEFAULT_TRACE_STEPS: readonly [number, number] = [1, 20];

/**
 * --trace FILE is written only when the run ends (all steps, the budget, or a stop by
 * SIGINT/SIGTERM): a path that cannot be written is refused before the run starts, not after it
 * has trained. Returns the absolute path.
 */
export function checkTraceFile(file: string): string {
  if (file.trim() === '') fail('CONFIG_INVALID', '--trace is empty: name the file to write, e.g. --trace trace.json');
  const path = resolve(file);
  if (existsSync(path)) {
    if (statSync(path).isDirectory())
      fail('CONFIG_INVALID', `--trace ${file} is a directory: name the file to write, e.g. ${file}/trace.json`);
    try {
      accessSync(path, constants.W_OK);
    } catch {
      fail('CONFIG_INVALID', `--trace ${file}: the file is there and cannot be written (permissions)`);
    }
    return path;
  }
  const dir = dirname(path);
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    return fail('CONFIG_INVALID', `--trace ${file}: its directory ${dir} does not exist`);
  }
  if (!isDir) fail('CONFIG_INVALID', `--trace ${file}: ${dir} is not a directory`);
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    fail('CONFIG_INVALID', `--trace ${file}: its directory ${dir} cannot be written (permissions)`);
  }
  return path;
}

/**
 * A trace window must hold a step the run will take (after `resumedAt`, up to `steps`): one
 * outside it would write an empty trace, found only after the run.
 */
export function checkTraceSteps(window: readonly [number, number] | undefined, steps: number, resumedAt = 0): void {
  const [from, to] = window ?? DEFAULT_TRACE_STEPS;
  const given = window ? `--trace-steps ${from}:${to}` : `--trace-steps ${from}:${to} (the default)`;
  if (from > steps)
    fail(
      'CONFIG_INVALID',
      `${given}: the run has ${steps} step${steps === 1 ? '' : 's'}, so the trace would be empty; pick steps within 1:${steps}`,
    );
  if (to <= resumedAt)
    fail(
      'CONFIG_INVALID',
      `${given}: the run resumes after step ${resumedAt}, so the trace would be empty; pick steps within ${resumedAt + 1}:${steps}`,
    );
}

/**
 * Both checks, for the training commands' flags before anything starts; --trace-steps without
 * --trace would be ignored in silence, so it is refused too.
 */
export function checkTrace(f: { trace?: string; traceSteps?: [number, number] }, steps: number, resumedAt = 0): void {
  if (f.trace === undefined) {
    if (f.traceSteps) fail('CONFIG_INVALID', '--trace-steps needs --trace FILE: the steps would be traced nowhere');
    return;
  }
  checkTraceFile(f.trace);
  checkTraceSteps(f.traceSteps, steps, resumedAt);
}
