/**
 * One error type for everything a user or a peer can cause. Every error carries a stable
 * `code` so that callers (CLI, tests, the coordinator's drop logic) branch on the code,
 * never on message text. Messages are one line that names what to fix.
 */
export type ErrorCode =
  | 'CONFIG_INVALID' // a config file or flag has a bad value
  | 'CONFIG_UNREADABLE' // the config file cannot be read or parsed
  | 'MODEL_INVALID' // the model spec is malformed or does not fit the dataset
  | 'DATASET_UNAVAILABLE' // dataset files missing or malformed
  | 'FRAME_MALFORMED' // bytes on the wire that do not decode
  | 'MESSAGE_INVALID' // a decoded message with wrong fields or sizes
  | 'PROTOCOL_MISMATCH' // peer speaks another protocol version
  | 'AUTH_FAILED' // the job token does not match (either side)
  | 'WRONG_JOB' // the worker was started for another job
  | 'BACKEND_UNAVAILABLE' // requested compute backend cannot be loaded
  | 'KERNEL_MISSING' // the model needs a kernel the backend lacks
  | 'CONNECT_FAILED' // worker cannot reach the coordinator
  | 'WORKER_LOST' // no workers left to finish a step
  | 'CHECKPOINT_CORRUPT' // a checkpoint file fails its checksum or is truncated
  | 'CHECKPOINT_MISSING' // --resume names a directory without a usable checkpoint
  | 'INTERRUPTED' // stopped by a signal after writing a checkpoint
  | 'RUN_FAILED'; // anything else that ends a run

export class DptrainError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'DptrainError';
    this.code = code;
  }
}

export function fail(code: ErrorCode, message: string): never {
  throw new DptrainError(code, message);
}

export function isDptrainError(e: unknown, code?: ErrorCode): e is DptrainError {
  return e instanceof DptrainError && (code === undefined || e.code === code);
}

/** One line for a terminal: our own errors by message, anything else with its name. */
export function describeError(e: unknown): string {
  if (e instanceof DptrainError) return `${e.code}: ${e.message}`;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}
