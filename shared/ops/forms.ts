/**
 * Which backend's gradient forms the ops in this folder take. Normally the current backend's;
 * the kernel check (worker/kernel-check.ts) profiles a model on cpu as another backend would
 * run it, so it asks for that backend's forms while it does.
 */
import * as tf from '@tensorflow/tfjs';

let formsOf: string | null = null;

export function gradientBackend(): string {
  return formsOf ?? tf.getBackend();
}

/** Run fn with the ops taking `backend`'s gradient forms, whatever backend executes them. */
export async function withFormsOf<T>(backend: string, fn: () => Promise<T>): Promise<T> {
  const before = formsOf;
  formsOf = backend;
  try {
    return await fn();
  } finally {
    formsOf = before;
  }
}
