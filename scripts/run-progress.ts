/** Watching a run directory from outside the run (tests, benchmarks). */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Resolve once `out/metrics.jsonl` has at least `steps` lines (the run got that far); reject after `timeoutMs`. */
export function stepsReached(out: string, steps: number, timeoutMs = 60_000): Promise<void> {
  const file = join(out, 'metrics.jsonl');
  return new Promise<void>((resolve, reject) => {
    const t0 = Date.now();
    const poll = setInterval(() => {
      const n = existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).length : 0;
      if (n >= steps) {
        clearInterval(poll);
        resolve();
      } else if (Date.now() - t0 > timeoutMs) {
        clearInterval(poll);
        reject(new Error(`the run in ${out} did not reach step ${steps} within ${timeoutMs / 1000} s`));
      }
    }, 5);
  });
}
