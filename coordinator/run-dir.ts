/**
 * The run directory: everything a run leaves behind.
 *   log.jsonl       pino JSON log of the coordinator
 *   metrics.jsonl   one line per optimizer step (eval fields on the steps that evaluated)
 *   model/          the final model in TF.js Layers format (model.json + weights.bin)
 *   summary.json    the run's outcome, written at the end
 *   workers/        stdout/stderr of locally spawned workers
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../shared/util/fs-atomic.js';

export class RunDir {
  readonly path: string;

  constructor(path: string) {
    this.path = resolve(path);
    mkdirSync(this.path, { recursive: true });
  }

  /** runs/2026-11-28T16-59-03 (local time is ambiguous; UTC, filesystem-safe). */
  static defaultPath(now = new Date()): string {
    return join('runs', now.toISOString().slice(0, 19).replace(/:/g, '-'));
  }

  get logFile(): string {
    return join(this.path, 'log.jsonl');
  }

  get modelDir(): string {
    return join(this.path, 'model');
  }

  workerLog(name: string): string {
    mkdirSync(join(this.path, 'workers'), { recursive: true });
    return join(this.path, 'workers', `${name}.log`);
  }

  appendMetrics(record: object): void {
    appendFileSync(join(this.path, 'metrics.jsonl'), JSON.stringify(record) + '\n');
  }

  /** On resume: drop metrics lines of steps after the checkpoint (they will be run again). */
  truncateMetrics(afterStep: number): void {
    const file = join(this.path, 'metrics.jsonl');
    if (!existsSync(file)) return;
    const keep = readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .filter((l) => {
        try {
          return (JSON.parse(l) as { step: number }).step <= afterStep;
        } catch {
          return false; // a line torn by a crash
        }
      });
    writeFileAtomic(file, keep.map((l) => l + '\n').join(''));
  }

  writeJson(name: string, value: unknown): void {
    writeFileAtomic(join(this.path, name), JSON.stringify(value, null, 2) + '\n');
  }
}
