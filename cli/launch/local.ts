/** `local`: N worker processes on this machine (what `dptrain train` starts). */
import { fileURLToPath } from 'node:url';
import type { Launcher, LaunchRequest, WorkerSlot } from './contract.js';
import { startProcs } from './procs.js';

/** The dptrain entry point of this installation (dist/cli/main.js). */
export const MAIN = fileURLToPath(new URL('../main.js', import.meta.url));

/** `node main.js worker --connect …` for one worker; the token is not here (ps shows argv). */
export function workerArgs(req: LaunchRequest, slot: WorkerSlot): string[] {
  const args = [
    'worker',
    '--connect',
    req.address,
    '--backend',
    req.backend.name,
    '--name',
    slot.name,
    ...(req.workerFlags ?? []),
  ];
  if (req.backend.allowSoftwareGpu) args.push('--allow-software-gpu');
  return args;
}

export function localLauncher(n: number): Launcher {
  const slots = (): WorkerSlot[] =>
    Array.from({ length: n }, (_, i) => ({ host: 'localhost', rank: i, name: `worker-${i}` }));
  return {
    name: 'local',
    slots,
    start(req) {
      const env = { ...process.env, DPTRAIN_TOKEN: req.token, ...req.env };
      const specs = slots().map((slot) => ({ slot, argv: [process.execPath, MAIN, ...workerArgs(req, slot)], env }));
      // The IPC channel is how a local worker notices that its coordinator died (it exits then).
      // Stopping waits for the coordinator's goodbye to end them, as a finished run does.
      return startProcs(specs, req, { output: 'file', ipc: true, terminate: () => {} });
    },
  };
}
