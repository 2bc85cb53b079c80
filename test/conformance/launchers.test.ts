/**
 * Every registered launcher against the launcher contract (cli/launch/contract.ts), with real
 * `dptrain worker` processes: one slot per rank; the token reaches every worker, and no command
 * line; each worker's end is reported once with its host, rank and exit status or signal; a
 * signal reaches the one worker named; stop() ends them all and leaves nothing running. Each also
 * starts host agents in place of workers: a slot an agent, the token on no command line, and
 * stop() ends the agents with their workers.
 * ssh runs against a local sshd, slurm inside an allocation of a local Slurm; each skips,
 * saying why, where it cannot.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as Registry from '../../cli/launch/index.js';
import { freePort, tempDir } from '../helpers/cli.js';
import { processesWith, sshdSkip, startSshd, type Sshd } from '../helpers/sshd.js';
import { slurmSkip, startSlurm, type SlurmCluster } from '../helpers/slurm.js';

// The launchers start dist/cli/main.js next to themselves: load them from the build.
const DIST = resolve(__dirname, '../../dist/cli/launch/index.js');
let registry: typeof Registry;

interface Env {
  launcher: () => Registry.Launcher;
  /** The same launcher starting host agents (--host-agents): at least two agent slots. */
  agents: () => Registry.Launcher;
  stop?: () => Promise<void>;
}

const ENVS: Record<string, { skip: string | null; setup: () => Promise<Env> }> = {
  local: {
    skip: null,
    setup: async () => ({
      launcher: () => registry.makeLauncher('local', { workers: 2 }),
      agents: () => registry.makeLauncher('local', { workers: 4, hostAgents: { perAgent: 2 } }),
    }),
  },
  ssh: {
    skip: sshdSkip,
    setup: async () => {
      const sshd: Sshd = await startSshd();
      const hosts = [
        { host: '127.0.0.1', slots: 1 },
        { host: 'localhost', slots: 1 },
      ];
      const ssh = { hosts, port: sshd.port, identity: sshd.identity, options: sshd.options };
      return {
        launcher: () => registry.makeLauncher('ssh', { ssh }),
        agents: () => registry.makeLauncher('ssh', { ssh, hostAgents: { perAgent: null } }),
        stop: () => sshd.stop(),
      };
    },
  },
  slurm: {
    skip: slurmSkip,
    setup: async () => {
      const slurm: SlurmCluster = await startSlurm(2);
      // An allocation, as sbatch or salloc would hold it; srun steps run inside it.
      execFileSync('salloc', ['--no-shell', '-N2', '--job-name=launcher-conformance'], {
        env: slurm.env,
        stdio: 'ignore',
      });
      const id = slurm.client('squeue', ['-h', '-o', '%i', '-n', 'launcher-conformance']).trim();
      const env = { ...slurm.env, SLURM_JOB_ID: id, SLURM_JOB_NODELIST: 'n[1-2]', SLURM_TASKS_PER_NODE: '1(x2)' };
      return {
        launcher: () => registry.makeLauncher('slurm', { env }),
        agents: () => registry.makeLauncher('slurm', { env, hostAgents: { perAgent: null } }),
        stop: () => slurm.stop(),
      };
    },
  },
};

beforeAll(async () => {
  registry = (await import(DIST)) as typeof Registry;
});

it('every registered launcher is covered here', async () => {
  expect(Object.keys(registry.LAUNCHERS).sort()).toEqual(Object.keys(ENVS).sort());
});

describe.each(Object.entries(ENVS))('launcher %s', (name, { skip, setup }) => {
  let env: Env | null = null;
  const dir = tempDir(`launcher-${name}`);
  const log = pino({ level: 'silent' });

  beforeAll(async () => {
    if (!skip) env = await setup();
  }, 90_000);
  afterAll(async () => {
    await env?.stop?.();
  });

  /** Start the workers against `address`; every run gets a unique port, the marker of its processes. */
  function start(
    address: string,
    token: string,
    onExit?: (e: Registry.WorkerExit) => void,
    workerFlags: string[] = [],
    launcher = env!.launcher(),
  ) {
    return launcher.start({
      address,
      token,
      backend: { name: 'cpu', allowSoftwareGpu: false },
      logDir: (n) => `${dir}/${n}.log`,
      log,
      workerFlags,
      onExit,
    });
  }

  it.skipIf(skip !== null)(`slots: ranks 0..n-1, unique names, a host each${skip ? ` (skipped: ${skip})` : ''}`, () => {
    const slots = env!.launcher().slots();
    expect(slots.length).toBeGreaterThan(1);
    expect(slots.map((s) => s.rank)).toEqual(slots.map((_, i) => i));
    expect(new Set(slots.map((s) => s.name)).size).toBe(slots.length);
    for (const s of slots) expect(s.host).not.toBe('');
  });

  it.skipIf(skip !== null)(
    'the token reaches every worker; each end is reported once, with host, rank and status',
    async () => {
      // A token too short to use: each worker says so and exits 2 (CONFIG_INVALID) — proof it got it.
      const seen: Registry.WorkerExit[] = [];
      const w = start(`ws://127.0.0.1:${await freePort()}`, 'short', (e) => seen.push(e));
      const ends = await w.ended;
      const slots = env!.launcher().slots();
      expect(ends.map((e) => e.rank).sort()).toEqual(slots.map((s) => s.rank));
      expect(seen).toHaveLength(slots.length);
      for (const e of ends) {
        const slot = slots[e.rank];
        expect({ host: e.host, name: e.name, code: e.code, signal: e.signal, stopped: e.stopped }).toEqual({
          host: slot.host,
          name: slot.name,
          code: 2,
          signal: null,
          stopped: false,
        });
        expect(readFileSync(`${dir}/${e.name}.log`, 'utf8')).toMatch(/the job token is 5 characters/);
      }
    },
    90_000,
  );

  it.skipIf(skip !== null)(
    'signal reaches the named worker only; stop ends the rest; nothing is left running',
    async () => {
      const port = await freePort(); // nothing listens: the workers keep retrying
      const token = 'conformance-token-0123456789abcdef';
      const seen: Registry.WorkerExit[] = [];
      const w = start(`ws://127.0.0.1:${port}`, token, (e) => seen.push(e), ['--connect-timeout', '300']);
      const marker = `ws://127.0.0.1:${port}`;
      const slots = w.slots;
      // Wait until every worker process runs (its log says it is retrying).
      const t0 = Date.now();
      while (!slots.every((s) => /cannot reach the coordinator/.test(safeRead(`${dir}/${s.name}.log`)))) {
        if (Date.now() - t0 > 60_000) throw new Error('the workers did not start within 60 s');
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(processesWith(marker).filter((l) => l.includes(token))).toEqual([]);
      const victim = slots[1].name;
      w.signal(victim, 'SIGKILL');
      const t1 = Date.now();
      while (!seen.some((e) => e.name === victim)) {
        if (Date.now() - t1 > 20_000) throw new Error(`${victim}: no end reported 20 s after SIGKILL`);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(seen).toHaveLength(1); // the others still run
      const ends = await w.stop(3000);
      const killed = ends.find((e) => e.name === victim)!;
      expect(killed.stopped).toBe(false);
      expect(killed.signal === 'SIGKILL' || (killed.code !== null && killed.code !== 0), JSON.stringify(killed)).toBe(
        true,
      );
      const rest = ends.filter((e) => e.name !== victim);
      expect(rest.every((e) => e.stopped)).toBe(true);
      await new Promise((r) => setTimeout(r, 500));
      expect(processesWith(marker)).toEqual([]);
    },
    120_000,
  );

  it.skipIf(skip !== null)(
    'host agents: a slot an agent, the token reaches each and no command line; stop ends the agents and their workers',
    async () => {
      const launcher = env!.agents();
      const slots = launcher.slots();
      expect(slots.length).toBeGreaterThan(1);
      expect(slots.map((a) => [a.rank, a.name])).toEqual(slots.map((a, i) => [i, `agent${i}@${a.host}`]));
      // A token too short to use: each agent says so and exits 2, before it starts any worker.
      const short = await start(`ws://127.0.0.1:${await freePort()}`, 'short', undefined, [], launcher).ended;
      expect(short.map((e) => [e.name, e.code, e.agentWorkers]).sort()).toEqual(
        slots.map((a) => [a.name, 2, a.agentWorkers]).sort(),
      );
      for (const a of slots) expect(safeRead(`${dir}/${a.name}.log`)).toMatch(/the job token is 5 characters/);
      const port = await freePort(); // nothing listens: the agents keep retrying
      const token = 'conformance-token-0123456789abcdef';
      const marker = `ws://127.0.0.1:${port}`;
      const w = start(marker, token, undefined, ['--connect-timeout', '300'], launcher);
      const t0 = Date.now();
      while (!slots.every((a) => /cannot reach the coordinator/.test(safeRead(`${dir}/${a.name}.log`)))) {
        if (Date.now() - t0 > 60_000) throw new Error('the agents did not start within 60 s');
        await new Promise((r) => setTimeout(r, 200));
      }
      // The agents' node processes (not the ssh or srun client, nor the remote wrapper, that carry them).
      const agents = processesWith(marker).filter(
        (l) => / host-agent --workers \d+ /.test(l) && l.trim().split(/\s+/)[1] === process.execPath,
      );
      expect(agents.length).toBe(slots.length);
      expect(processesWith(token)).toEqual([]);
      // The agents' own workers: the processes whose parent is an agent's node process.
      const pids = agents.map((l) => Number(l.trim().split(/\s+/)[0]));
      const workers = childrenOf(pids);
      expect(workers.length).toBe(slots.reduce((k, a) => k + a.agentWorkers!, 0));
      const ends = await w.stop(3000);
      expect(ends.every((e) => e.stopped)).toBe(true);
      const t1 = Date.now();
      while ([...pids, ...workers].some(alive) && Date.now() - t1 < 10_000)
        await new Promise((r) => setTimeout(r, 100));
      expect([...pids, ...workers].filter(alive)).toEqual([]);
    },
    180_000,
  );
});

/** The pids of the processes whose parent is one of `parents`. */
function childrenOf(parents: number[]): number[] {
  return execFileSync('ps', ['-eo', 'pid=,ppid='], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number))
    .filter(([, ppid]) => parents.includes(ppid))
    .map(([pid]) => pid);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function safeRead(f: string): string {
  try {
    return readFileSync(f, 'utf8');
  } catch {
    return '';
  }
}
