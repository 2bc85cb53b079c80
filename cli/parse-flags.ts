/** Strict parsers for flag values: a mistyped number is refused at the flag, with the flag's name. */
import { InvalidArgumentError } from 'commander';

export function intFlag(v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('expected a non-negative integer.');
  return Number(v);
}

/** A count that must be at least 1 (workers, batch, steps, devices): 0 and -1 get the same refusal. */
export function countFlag(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new InvalidArgumentError('expected an integer ≥ 1.');
  return Number(v);
}

export function numFlag(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('expected a number.');
  return n;
}

/** A finite number > 0 (a size, a rate, a budget): zero or negative would only print nonsense. */
export function positiveFlag(v: string): number {
  const n = numFlag(v);
  if (!(n > 0)) throw new InvalidArgumentError('expected a number > 0.');
  return n;
}

/** "0.0.0.0:7070", ":7070", "7070" → host and port. */
export function parseListen(v: string): { host: string; port: number } {
  const m = /^(?:(.*):)?(\d{1,5})$/.exec(v);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new InvalidArgumentError('expected HOST:PORT, e.g. 0.0.0.0:7070.');
  const host = (m[1] ?? '127.0.0.1').replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
  return { host, port };
}
