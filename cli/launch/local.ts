/** `local`: N worker processes on this machine (what `dptrain train` starts), or host agents for them. */
import { fileURLToPath } from 'node:url';
import type { Launcher, WorkerSlot } from './contract.js';
import { memberArgs, type SlotShape, workerSlots } from './members.js';
import { startProcs } from './procs.js';

/** The dptrain entry point of this installation (dist/cli/main.js). */
export const MAIN = fileURLToPath(new URL('../main.js', import.meta.url));

/** `firstRank`: 1 when rank 0 runs inside the coordinator (`--coordinator-worker`). */
export function localLauncher(n: number, shape: SlotShape = workerSlots, firstRank = 0): Launcher {
  const slots = (): WorkerSlot[] =>
    shape(
      Array.from({ length: n }, (_, i) => ({
        host: 'localhost',
        rank: firstRank + i,
        name: `worker-${firstRank + i}`,
      })),
    );
  return {
    name: 'local',
    slots,
    start(req) {
      const env = { ...process.env, DPTRAIN_TOKEN: req.token, ...req.env };
      const specs = slots().map((slot) => ({ slot, argv: [process.execPath, MAIN, ...memberArgs(req, slot)], env }));
      // The IPC channel is how a local worker notices that its coordinator died (it exits then).
      // Stopping waits for the coordinator's goodbye to end them, as a finished run does.
      return startProcs(specs, req, { output: 'file', ipc: true, terminate: () => {} });
    },
  };
}
