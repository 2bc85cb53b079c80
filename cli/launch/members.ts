/**
 * What a launcher starts in each slot: one `dptrain worker`, or one `dptrain host-agent
 * --workers K` with K workers behind it (a slot with `agentWorkers`). The launchers build their
 * command lines from `memberArgs` and their slots through a `SlotShape`, so whether a job's
 * members are workers or host agents is decided here, once, for every launcher.
 */
import { fail } from '../../shared/util/errors.js';
import type { LaunchRequest, WorkerSlot } from './contract.js';

/** The launcher's worker slots, as the coordinator will see its members. */
export type SlotShape = (workers: WorkerSlot[]) => WorkerSlot[];

/** Every worker joins the coordinator itself. */
export const workerSlots: SlotShape = (workers) => workers;

/**
 * One host agent per host in place of that host's workers (split into agents of at most
 * `perAgent` workers when given), in the order the hosts first appear; ranks count agents.
 */
export function hostAgentSlots(perAgent: number | null): SlotShape {
  // The split below steps by perAgent: below 1 it would never end.
  if (perAgent !== null && !(Number.isInteger(perAgent) && perAgent >= 1))
    fail('CONFIG_INVALID', `--agent-workers ${perAgent}: expected an integer ≥ 1`);
  return (workers) => {
    const byHost = new Map<string, number>();
    for (const w of workers) byHost.set(w.host, (byHost.get(w.host) ?? 0) + 1);
    const agents: WorkerSlot[] = [];
    for (const [host, n] of byHost) {
      const per = perAgent ?? n;
      for (let left = n; left > 0; left -= per) {
        const rank = agents.length;
        agents.push({ host, rank, name: `agent${rank}@${host}`, agentWorkers: Math.min(per, left) });
      }
    }
    return agents;
  };
}

/** `worker --connect …` or `host-agent --workers K --connect …` for one slot; the token is not here (ps shows argv). */
export function memberArgs(req: LaunchRequest, slot: WorkerSlot): string[] {
  const program = slot.agentWorkers === undefined ? ['worker'] : ['host-agent', '--workers', String(slot.agentWorkers)];
  const args = [
    ...program,
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
