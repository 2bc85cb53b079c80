#!/usr/bin/env node
/**
 * dptrain command line. A user error ends with one line naming what to fix (exit 2 for a bad
 * config or flag, commander's refusals included; 1 otherwise); DPTRAIN_DEBUG=1 adds the stack.
 */
import { CommanderError } from 'commander';
import { buildProgram } from './program.js';
import { describeError, DptrainError, type ErrorCode } from '../shared/util/errors.js';

/** Exit statuses (README "Exit status"). */
const EXIT_CODES: Partial<Record<ErrorCode, number>> = {
  CONFIG_INVALID: 2,
  CONFIG_UNREADABLE: 2,
  MODEL_INVALID: 2, // a model that does not fit its data is a config error too
  AUTH_FAILED: 3,
  PROTOCOL_MISMATCH: 4,
  WRONG_JOB: 5,
  INTERRUPTED: 130,
};

function exitCode(e: unknown): number {
  return e instanceof DptrainError ? (EXIT_CODES[e.code] ?? 1) : 1;
}

buildProgram()
  .parseAsync(process.argv)
  .then(() => {
    // Workers and the coordinator hold timers and sockets; once the command is done, leave.
    process.exit(process.exitCode ?? 0);
  })
  .catch((e: unknown) => {
    // --help, --version, or help for a missing command: commander has printed it (usageError passes these on).
    if (e instanceof CommanderError) process.exit(e.exitCode);
    process.stderr.write(`dptrain: ${describeError(e)}\n`);
    if (process.env.DPTRAIN_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    process.exit(exitCode(e));
  });
