/**
 * A Chrome trace (chrome://tracing, Perfetto: "JSON trace event format") of a window of steps:
 * the coordinator's spans (step, waiting for shards, reduce, optimizer, parameter encode) and
 * each worker's compute spans, placed so that they end when the coordinator received them.
 */
import { writeFileSync } from 'node:fs';

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

/** "10:30" → steps 10 to 30. */
/** The coordinator's spans of one step: the whole, the shards in flight, the optimizer, the parameter encode. */
export function traceStep(
  tr: Tracer,
  step: number,
  t: { start: number; optimizer: number; end: number },
  loss: number,
  reduceMs: number,
  encode: { start: number; end: number } | null,
): void {
  tr.span('coordinator', `step ${step}`, t.start, t.end, { loss });
  tr.span('coordinator', 'shards in flight (reduced as they arrive)', t.start, t.optimizer, { reduceMs });
  tr.span('coordinator', 'optimizer (mean, clip, Adam)', t.optimizer, t.end);
  if (encode && encode.start >= t.start) tr.span('coordinator', 'encode parameters', encode.start, encode.end);
}

export function parseTraceSteps(v: string): [number, number] {
  const m = /^(\d+):(\d+)$/.exec(v);
  if (!m || Number(m[1]) < 1 || Number(m[2]) < Number(m[1])) throw new Error('expected FROM:TO steps, e.g. 10:30');
  return [Number(m[1]), Number(m[2])];
}
