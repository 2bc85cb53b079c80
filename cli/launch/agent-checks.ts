/** What a launch of host agents checks before it starts any, and what it tells the user once they run. */
import type { Config } from '../../shared/job/config.js';
import { jobLayout, jobLeaves } from '../../shared/job/job-layout.js';
import { fail } from '../../shared/util/errors.js';
import { hostAgentRefusal } from '../../worker/host-agent/host-agent.js';
import { countWorkers, type WorkerSlot } from './contract.js';

/**
 * Before anything starts, what host agents cannot run, in one line: a job the agent refuses, and
 * a minWorkers the agents cannot meet (the coordinator counts an agent as one member).
 */
export function checkHostAgents(c: Config, agents: readonly WorkerSlot[]): void {
  const refused = hostAgentRefusal(c);
  if (refused) fail('CONFIG_INVALID', `--host-agents: ${refused}`);
  if (c.minWorkers > agents.length)
    fail(
      'CONFIG_INVALID',
      `minWorkers (${c.minWorkers}) is above the ${agents.length} host agents started: the coordinator counts each ` +
        `agent as one member; set --min-workers ${agents.length} or less, or drop --host-agents`,
    );
}

/**
 * The coordinator cuts a batch's virtual shards evenly over its members (here the agents, in the
 * order they become ready) and each agent over its own workers: an agent given fewer shards than
 * it has workers leaves some waiting. The coordinator counts agents only, so the launcher says it.
 */
export function idleBehindAgents(c: Config, agents: readonly WorkerSlot[]): string | null {
  const leaves = jobLeaves(c, jobLayout(c));
  if (leaves === null) return null; // per-worker: each agent's one shard is cut by rows over its workers
  const workers = agents.reduce((k, a) => k + (a.agentWorkers ?? 1), 0);
  const least = Math.floor(leaves / agents.length);
  const idle = agents.reduce((k, a) => k + Math.max(0, (a.agentWorkers ?? 1) - least), 0);
  if (idle === 0) return null;
  const share = leaves % agents.length === 0 ? `${least}` : `${least} or ${least + 1}`;
  return (
    `a batch of ${c.batchSize} is cut into ${leaves} virtual shards, ${share} for each of ` +
    `${agents.length} host agent${agents.length === 1 ? '' : 's'} of ${countWorkers(workers)} in all: up to ${idle} of the workers wait; ` +
    `set shards (--shards) to a multiple of ${workers}, per-worker, or a larger batch`
  );
}
