/**
 * Field checks for untrusted JSON (config files, dataset and model sections): each complaint is
 * one line that names the field, under the error code of the section being read.
 */
import { fail, type ErrorCode } from '../util/errors.js';

export type Json = Record<string, unknown>;

export const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

export function checkKeys(
  obj: Json,
  allowed: readonly string[],
  where: string,
  code: ErrorCode = 'CONFIG_INVALID',
): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) fail(code, `${where}${k} is not a config field (known: ${allowed.join(', ')})`);
  }
}

export interface NumRule {
  int?: boolean;
  min?: number;
  max?: number;
  minExclusive?: boolean;
}

export function num(v: unknown, field: string, opts: NumRule, code: ErrorCode = 'CONFIG_INVALID'): number {
  const kind = opts.int ? 'an integer' : 'a number';
  const range =
    opts.min !== undefined || opts.max !== undefined
      ? ` ${opts.minExclusive ? '>' : '≥'} ${opts.min ?? '-∞'}${opts.max !== undefined ? ` and ≤ ${opts.max}` : ''}`
      : '';
  const ok =
    typeof v === 'number' &&
    Number.isFinite(v) &&
    (!opts.int || Number.isInteger(v)) &&
    (opts.min === undefined || (opts.minExclusive ? v > opts.min : v >= opts.min)) &&
    (opts.max === undefined || v <= opts.max);
  // JSON.stringify shows Infinity and NaN (1e400 in a file parses to Infinity) as null.
  const got = typeof v === 'number' ? String(v) : JSON.stringify(v);
  if (!ok) fail(code, `${field} must be ${kind}${range}, got ${got}`);
  return v as number;
}

export function oneOf<T extends string>(
  v: unknown,
  field: string,
  values: readonly T[],
  code: ErrorCode = 'CONFIG_INVALID',
): T {
  if (!(values as readonly unknown[]).includes(v))
    fail(code, `${field} must be one of ${values.join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

export function str(v: unknown, field: string, what: string, code: ErrorCode = 'CONFIG_INVALID'): string {
  if (typeof v !== 'string' || v === '') fail(code, `${field} must name ${what}`);
  return v;
}
