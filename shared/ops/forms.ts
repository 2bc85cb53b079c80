/**
 * Which backend's gradient forms the ops in this folder take. Normally the current backend's;
 * the kernel check (worker/kernel-check.ts) profiles a model on cpu as another backend would
 * run it, so it asks for that backend's forms while it does.
 */
import * as tf from '@tensorflow/tfjs';

/** A setting that holds a value only while a function runs, then the one before it again. */
export interface ScopedSetting<V> {
  get(): V | null;
  during<T>(value: V, fn: () => Promise<T>): Promise<T>;
}

export function scopedSetting<V>(): ScopedSetting<V> {
  let current: V | null = null;
  return {
    get: () => current,
    async during(value, fn) {
      const before = current;
      current = value;
      try {
        return await fn();
      } finally {
        current = before;
      }
    },
  };
}

const formsOf = scopedSetting<string>();

export function gradientBackend(): string {
  return formsOf.get() ?? tf.getBackend();
}

/** Run fn with the ops taking `backend`'s gradient forms, whatever backend executes them. */
export function withFormsOf<T>(backend: string, fn: () => Promise<T>): Promise<T> {
  return formsOf.during(backend, fn);
}
