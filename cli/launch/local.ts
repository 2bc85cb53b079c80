/** `local`: N worker processes on this machine (what `dptrain train` starts). */
import { fileURLToPath } from 'node:url';
import type { Launcher, WorkerSlot } from './contract.js';
import { startProcs } from './procs.js';

/** The dptrain entry point of this installation (dist/cli/main.js). */
export const MAIN = fileURLToPath(new URL('../main.js', import.meta.url));

/** `node main.js worker --connect …` for one worker; the token is not here (ps shows argv). */
export function workerArgs(address: string, slot: WorkerSlot, backend: { name: string; allowSoftwareGpu: boolean }): string[] {
  const args = ['worker', '--connect', address, '--backend', backend.name, '--name', slot.name];
  if (backend.allowSoftwareGpu) args.push('--allow-software-gpu');
  return args;
}

export function localLauncher(n: number): Launcher {
  const slots = (): WorkerSlot[] => Array.from({ length: n }, (_, i) => ({ host: 'localhost', rank: i, name: `worker-${i}` }));
  return {
    name: 'local',
    slots,
    start(req) {
      const env = { ...process.env, DPTRAIN_TOKEN: req.token, ...req.env };
      const specs = slots().map((slot) => ({ slot, argv: [process.execPath, MAIN, ...workerArgs(req.address, slot, req.backend)], env }));
      // The IPC channel is how a local worker notices that its coordinator died (it exits then).
      // Stopping waits for the coordinator's goodbye to end them, as a finished run does.
      return startProcs(specs, req, { output: 'file', ipc: true, terminate: () => {} });
    },
  };
}
