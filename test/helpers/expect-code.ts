import { expect } from 'vitest';
import { DptrainError, type ErrorCode } from '../../shared/util/errors.js';

/** Run fn, expect a DptrainError with this code, return its message for further checks. */
export function expectCode(fn: () => unknown, code: ErrorCode): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DptrainError);
    expect((e as DptrainError).code).toBe(code);
    return (e as DptrainError).message;
  }
  throw new Error(`expected a DptrainError ${code}, nothing was thrown`);
}
