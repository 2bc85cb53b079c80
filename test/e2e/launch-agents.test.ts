/**
 * `dptrain launch --host-agents` with the local launcher: 4 workers as 2 host agents of 2 end on
 * the bits of the same 4 workers joining the coordinator directly (virtual shards), the
 * coordinator counts 2 members, and its socket carries one result per agent a step; an agent
 * killed mid-run ends the run naming it, and neither it nor its workers are left running.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../shared/job/config.js';
import { jobLayout } from '../../shared/job/job-layout.js';
import { readMetrics, readSummary, readWeights, runCli, stepsReached, tempDir } from '../helpers/cli.js';

const JOB = {
  seed: 5,
  data: { name: 'spirals', samples: 400 },
  model: { layers: [{ units: 32, activation: 'tanh' }, { units: 2 }], loss: 'softmaxCrossEntropy' },
  steps: 10,
  batchSize: 48,
  // 4 rows a leaf: an agent holds 6 leaves ([0,4)+[4,6)), each of its workers 3 ([0,2)+[2,3), [3,4)+[4,6)),
  // as each of 4 direct workers does.
  shards: 12,
  evalEvery: 5,
  backend: 'cpu',
};
const TOTAL = jobLayout(parseConfig(JOB)).totalParams;

const launch = (job: string, out: string, flags: string[]) =>
  runCli([
    'launch',
    '--launcher',
    'local',
    '--workers',
    '4',
    '--listen',
    '127.0.0.1:0',
    '-c',
    job,
    '--out',
    out,
    ...flags,
  ]);

/** The host agents dialling `address` and their children (the agents' workers), by pid. */
function agentTree(address: string): { agents: Map<string, number>; children: number[] } {
  const ps = execFileSync('ps', ['-eo', 'pid=,ppid=,args='], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((l) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l)!)
    .filter(Boolean);
  const agents = new Map(
    ps
      .filter((m) => m[3].includes(' host-agent ') && m[3].includes(address))
      .map((m) => [/--name (\S+)/.exec(m[3])![1], Number(m[1])]),
  );
  const pids = [...agents.values()];
  return { agents, children: ps.filter((m) => pids.includes(Number(m[2]))).map((m) => Number(m[1])) };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('dptrain launch --host-agents (local launcher)', () => {
  const dir = tempDir('launch-agents');
  const job = join(dir, 'job.json');
  writeFileSync(job, JSON.stringify(JOB));

  it('2 agents of 2 workers: the bits of 4 direct workers, 2 members, one result per agent a step', {
    timeout: 300_000,
  }, async () => {
    const direct = join(dir, 'direct');
    const agents = join(dir, 'agents');
    const rd = await launch(job, direct, []);
    expect(rd.code, rd.stderr).toBe(0);
    const ra = await launch(job, agents, ['--host-agents', '--agent-workers', '2']);
    expect(ra.code, ra.stderr).toBe(0);
    for (const a of ['agent0@localhost', 'agent1@localhost'])
      expect(readFileSync(join(agents, 'workers', `${a}.log`), 'utf8')).toMatch(/host agent ready workers=2/);
    expect(readSummary(direct)).toMatchObject({ workers: 4, members: 4 });
    expect(readSummary(agents)).toMatchObject({ workers: 4, members: 2 });
    // Every step counts the processes that computed it and the links they came over.
    const counts = (out: string) => [...new Set(readMetrics(out).map((m) => `${m.workers}/${m.members}`))];
    expect(counts(agents)).toEqual(['4/2']);
    expect(counts(direct)).toEqual(['4/4']);
    const steps = (out: string) => readMetrics(out).map((m) => [m.loss, m.gradNorm, m.testLoss]);
    expect(steps(agents)).toEqual(steps(direct));
    expect(Buffer.from(readWeights(agents).buffer).equals(Buffer.from(readWeights(direct).buffer))).toBe(true);
    // The coordinator's socket per step: a params frame down and a 2-node result up per agent
    // (plus headers), against 4 of each directly (each worker's result is 2 nodes too).
    const bytes = (out: string) =>
      readMetrics(out)
        .slice(1)
        .map((m) => m.wireBytes as number);
    for (const b of bytes(agents)) expect(b).toBeLessThan(2 * (1 + 2) * 4 * TOTAL + 8192);
    for (const b of bytes(direct)) expect(b).toBeGreaterThan(4 * (1 + 2) * 4 * TOTAL);
  });

  it('an agent killed mid-run ends the run naming it; no agent or agent worker is left', {
    timeout: 300_000,
  }, async () => {
    const long = join(dir, 'long.json');
    writeFileSync(long, JSON.stringify({ ...JOB, steps: 5000, evalEvery: 0 }));
    const out = join(dir, 'killed');
    const run = launch(long, out, ['--host-agents', '--agent-workers', '2']);
    await stepsReached(out, 3, 120_000);
    const port = (JSON.parse(readFileSync(join(out, 'coordinator.json'), 'utf8')) as { port: number }).port;
    const tree = agentTree(`ws://127.0.0.1:${port}`);
    expect([...tree.agents.keys()].sort()).toEqual(['agent0@localhost', 'agent1@localhost']);
    expect(tree.children.length, 'the agents have their workers').toBe(4);
    process.kill(tree.agents.get('agent1@localhost')!, 'SIGKILL');
    const r = await run;
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      /host agent 1 on localhost \(agent1@localhost, 2 workers\) failed: killed by SIGKILL; stopping the other host agents/,
    );
    // The other agent was dismissed (bye), not left to take the closing coordinator for a crash.
    expect(readFileSync(join(out, 'workers', 'agent0@localhost.log'), 'utf8')).toMatch(
      /coordinator said goodbye reason=run ended: host agent 1 on localhost/,
    );
    // The agents' workers leave when their agent's IPC channel closes, just after it exits.
    const all = [...tree.agents.values(), ...tree.children];
    const t0 = Date.now();
    while (all.some(alive) && Date.now() - t0 < 10_000) await new Promise((res) => setTimeout(res, 100));
    console.log(`agents and their workers gone ${Date.now() - t0} ms after the launch returned`);
    expect(all.filter(alive)).toEqual([]);
  });
});
