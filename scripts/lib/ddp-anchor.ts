/**
 * The PyTorch DDP (gloo) reference scripts the benchmarks measure dptrain against: the
 * environment they run in and the one figure read from their output.
 */

/** Timed steps each anchor run takes (after its own warm-up). */
export const DDP_STEPS = 30;

/** This process's environment with `extra`, less what the anchor must not inherit. */
export function anchorEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.OPENBLAS_CORETYPE; // the anchor's notes: these mis-tune OpenBLAS on this machine kind
  delete env.OPENBLAS_L2_SIZE;
  return env;
}

/** The samples/s an anchor printed (rank 0's `samples/s=N`); null if it printed none. */
export function anchorSamplesPerSec(output: string): number | null {
  const m = /samples\/s=(\d+)/.exec(output);
  return m ? Number(m[1]) : null;
}
