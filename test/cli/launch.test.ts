/** What the launch commands parse and check before anything starts, and the worker's preflight. */
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { advertisedHost, checkAdvertise, resolveAdvertise, workerAddress } from '../../cli/advertise.js';
import { launchSection, refuseOtherLaunchers, sshOptions } from '../../cli/launch-cmd.js';
import { idleBehindAgents } from '../../cli/launch/agent-checks.js';
import { describeSlot } from '../../cli/launch/contract.js';
import { hostAgentSlots, memberArgs, workerSlots } from '../../cli/launch/members.js';
import { parseHostList, readHostfile, shellQuote, sshCommandArgs } from '../../cli/launch/ssh.js';
import { slurmTask, tasksPerNode } from '../../cli/launch/slurm.js';
import {
  givenJobFlags,
  slurmAgentWorkers,
  slurmMembers,
  slurmPort,
  slurmToken,
  slurmWorkerNames,
} from '../../cli/slurm-cmd.js';
import {
  checkStartFailure,
  clearStartFailure,
  startFailureFile,
  writeStartFailure,
} from '../../cli/launch/slurm-start.js';
import { DptrainError } from '../../shared/util/errors.js';
import { parseConfig } from '../../shared/job/config.js';
import { preflight } from '../../worker/preflight.js';
import { freePort, runCli, tempDir } from '../helpers/cli.js';
import { expectCode } from '../helpers/expect-code.js';

describe('host lists', () => {
  it('--hosts and hostfiles in the forms MPI and DeepSpeed write', () => {
    expect(parseHostList('host1:2,host2:4,host3')).toEqual([
      { host: 'host1', slots: 2 },
      { host: 'host2', slots: 4 },
      { host: 'host3', slots: 1 },
    ]);
    const f = join(tempDir('hostfile'), 'hosts');
    writeFileSync(f, '# workers\nnode-a slots=2\nnode-b:3\n\nuser@node-c  # one\n');
    expect(readHostfile(f)).toEqual([
      { host: 'node-a', slots: 2 },
      { host: 'node-b', slots: 3 },
      { host: 'user@node-c', slots: 1 },
    ]);
  });

  it.each(['host1:0', 'host 1', 'host1:x', 'a;rm -rf /'])('refuses %s in one line', (v) => {
    expect(expectCode(() => parseHostList(v), 'CONFIG_INVALID')).toMatch(/--hosts .*expected HOST or HOST:SLOTS/);
  });

  it("a hostfile's bad line names the forms a hostfile takes", () => {
    const f = join(tempDir('hostfile-bad'), 'hosts');
    writeFileSync(f, 'node-a slots=0\n');
    expect(expectCode(() => readHostfile(f), 'CONFIG_INVALID')).toBe(
      `--hostfile ${f}: "node-a slots=0": expected a line HOST, HOST:SLOTS or HOST slots=SLOTS, with SLOTS ≥ 1`,
    );
    // The line as the file has it, not as rewritten for parsing (host:2:3).
    writeFileSync(f, 'node-a\nlocalhost:2 slots=3  # two counts\n');
    expect(expectCode(() => readHostfile(f), 'CONFIG_INVALID')).toBe(
      `--hostfile ${f}: "localhost:2 slots=3": expected a line HOST, HOST:SLOTS or HOST slots=SLOTS, with SLOTS ≥ 1`,
    );
  });

  it('ssh gets a ConnectTimeout unless --ssh-option sets one', () => {
    const args = sshCommandArgs({ hosts: [], options: ['StrictHostKeyChecking=no'] }, 'h1');
    expect(args.join(' ')).toBe('-o BatchMode=yes -o ConnectTimeout=10 -o StrictHostKeyChecking=no h1');
    const own = sshCommandArgs({ hosts: [], options: ['ConnectTimeout=3'] }, 'h1');
    expect(own.filter((a) => /ConnectTimeout/i.test(a))).toEqual(['ConnectTimeout=3']);
  });

  it('quotes words for the remote shell', () => {
    expect(shellQuote('/usr/bin/node')).toBe('/usr/bin/node');
    expect(shellQuote("it's a b")).toBe(`'it'\\''s a b'`);
  });
});

describe('the config launch section', () => {
  it('parses, and names an unknown field', () => {
    const c = parseConfig({ launch: { hosts: ['h1:2', 'h2'], sshPort: 2222, advertise: 'eth1' } });
    expect(c.launch).toMatchObject({
      launcher: 'ssh',
      hosts: 'h1:2,h2',
      sshPort: 2222,
      advertise: 'eth1',
      joinTimeoutSec: 120,
    });
    expect(parseConfig({}).launch).toBeNull();
    expect(expectCode(() => parseConfig({ launch: { host: 'h1' } }), 'CONFIG_INVALID')).toMatch(/launch\.host/);
    expect(expectCode(() => parseConfig({ launch: { launcher: 'pbs' } }), 'CONFIG_INVALID')).toMatch(
      /launch\.launcher/,
    );
  });
});

describe('host agents (--host-agents)', () => {
  const workers = ['h1', 'h1', 'h1', 'h2', 'h2'].map((host, rank) => ({ host, rank, name: `rank${rank}@${host}` }));
  const req = {
    address: 'ws://c:7070',
    token: 'not-on-argv-0123456789abcdef0123',
    backend: { name: 'cpu', allowSoftwareGpu: false },
    logDir: (n: string) => n,
    log: pino({ level: 'silent' }),
  };

  it("one agent per host for that host's workers, or agents of at most --agent-workers", () => {
    expect(hostAgentSlots(null)(workers)).toEqual([
      { host: 'h1', rank: 0, name: 'agent0@h1', agentWorkers: 3 },
      { host: 'h2', rank: 1, name: 'agent1@h2', agentWorkers: 2 },
    ]);
    expect(hostAgentSlots(2)(workers).map((a) => [a.name, a.agentWorkers])).toEqual([
      ['agent0@h1', 2],
      ['agent1@h1', 1],
      ['agent2@h2', 2],
    ]);
    expect(workerSlots(workers)).toEqual(workers);
  });

  it('an agent slot runs dptrain host-agent --workers K, a worker slot dptrain worker; the token on neither', () => {
    const agent = memberArgs(req, hostAgentSlots(null)(workers)[0]);
    expect(agent.slice(0, 3)).toEqual(['host-agent', '--workers', '3']);
    expect(agent).toEqual(expect.arrayContaining(['--connect', 'ws://c:7070', '--name', 'agent0@h1']));
    expect(memberArgs(req, workers[0])[0]).toBe('worker');
    expect([...agent, ...memberArgs(req, workers[0])].join(' ')).not.toContain(req.token);
    expect(describeSlot(hostAgentSlots(null)(workers)[1])).toBe('host agent 1 on h2 (agent1@h2, 2 workers)');
    expect(describeSlot({ host: 'h3', rank: 2, name: 'agent2@h3', agentWorkers: 1 })).toBe(
      'host agent 2 on h3 (agent2@h3, 1 worker)',
    );
    expect(describeSlot(workers[1])).toBe('worker rank 1 on h1 (rank1@h1)');
  });

  it('the config: launch.hostAgents and launch.agentWorkers', () => {
    expect(parseConfig({ launch: { hostAgents: true, agentWorkers: 4 } }).launch).toMatchObject({
      hostAgents: true,
      agentWorkers: 4,
    });
    expect(expectCode(() => parseConfig({ launch: { hostAgents: 'yes' } }), 'CONFIG_INVALID')).toMatch(
      /launch\.hostAgents must be true or false/,
    );
  });

  it('says when virtual shards leave workers behind the agents waiting', () => {
    const agents = hostAgentSlots(2)(['a', 'a', 'b', 'b'].map((host, rank) => ({ host, rank, name: `w${rank}` })));
    const job = {
      data: { name: 'spirals' },
      model: { layers: [{ units: 2 }], loss: 'softmaxCrossEntropy' },
      batchSize: 48,
    };
    expect(idleBehindAgents(parseConfig({ ...job, shards: 2 }), agents)).toMatch(
      /cut into 2 virtual shards, 1 for each of 2 host agents of 4 workers in all: up to 2 of the workers wait/,
    );
    expect(idleBehindAgents(parseConfig({ ...job, shards: 3 }), agents)).toMatch(
      /cut into 3 virtual shards, 1 or 2 for each of 2 host agents of 4 workers in all: up to 2 of the workers wait/,
    );
    expect(idleBehindAgents(parseConfig({ ...job, shards: 12 }), agents)).toBeNull();
    expect(idleBehindAgents(parseConfig({ ...job, shards: 'per-worker' }), agents)).toBeNull();
  });

  it.each([
    [
      ['--compress', 'topk:0.1'],
      /^dptrain: CONFIG_INVALID: --host-agents: compression topk is not supported behind a host agent/,
    ],
    [
      ['--min-workers', '3'],
      /^dptrain: CONFIG_INVALID: minWorkers \(3\) is above the 2 host agents started: .*set --min-workers 2 or less/,
    ],
  ])(
    'refuses %s before anything starts, in one line',
    async (flags, line) => {
      const dir = tempDir('agents-refused');
      const job = join(dir, 'job.json');
      writeFileSync(
        job,
        JSON.stringify({ data: { name: 'xor' }, model: { layers: [{ units: 1 }], loss: 'binaryCrossEntropy' } }),
      );
      const out = join(dir, 'run');
      const common = [
        'launch',
        '--launcher',
        'local',
        '--workers',
        '4',
        '--steps',
        '2',
        '-c',
        job,
        '--listen',
        '127.0.0.1:0',
      ];
      const r = await runCli([...common, '--out', out, '--host-agents', '--agent-workers', '2', ...flags]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(line);
      expect(existsSync(out)).toBe(false);
      // The same job without agents starts (and here finishes): the refusal is the agents'.
      const plain = await runCli([...common, '--out', join(dir, 'plain'), ...flags]);
      expect(plain.code, plain.stderr).toBe(0);
    },
    120_000,
  );

  it('agents of 0 workers: refused, never an endless split of a host', () => {
    expect(expectCode(() => hostAgentSlots(0), 'CONFIG_INVALID')).toBe('--agent-workers 0: expected an integer ≥ 1');
    expect(
      expectCode(
        () => slurmAgentWorkers({ hostAgents: true, agentWorkers: 0 }, { SLURM_TASKS_PER_NODE: '1(x2)' }),
        'CONFIG_INVALID',
      ),
    ).toBe('--agent-workers 0: expected an integer ≥ 1');
  });

  it('--agent-workers 0 on the command line: one line, exit 2, nothing started', async () => {
    const dir = tempDir('agents-zero');
    const job = join(dir, 'job.json');
    writeFileSync(job, JSON.stringify({ data: { name: 'xor' } }));
    const out = join(dir, 'run');
    const common = ['launch', '-c', job, '--out', out, '--host-agents', '--agent-workers', '0'];
    for (const where of [
      ['--launcher', 'local', '--workers', '2'],
      ['--hosts', 'localhost:2'],
    ]) {
      const r = await runCli([...common, ...where], 30_000);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(
        'dptrain: CONFIG_INVALID: --agent-workers 0: expected an integer ≥ 1 (see dptrain launch --help)\n',
      );
      expect(existsSync(out)).toBe(false);
    }
  }, 60_000);

  it('--agent-workers without --host-agents: one line', async () => {
    const dir = tempDir('agents-alone');
    const job = join(dir, 'job.json');
    writeFileSync(
      job,
      JSON.stringify({ data: { name: 'xor' }, model: { layers: [{ units: 1 }], loss: 'binaryCrossEntropy' } }),
    );
    const r = await runCli([
      'launch',
      '--launcher',
      'local',
      '-c',
      job,
      '--agent-workers',
      '2',
      '--out',
      join(dir, 'run'),
    ]);
    expect(r.code).toBe(2);
    expect(existsSync(join(dir, 'run'))).toBe(false);
    expect(r.stderr).toBe('dptrain: CONFIG_INVALID: --agent-workers goes with --host-agents (launch.hostAgents)\n');
  }, 60_000);

  it('--hosts or --hostfile with the local launcher: one line, not ignored', async () => {
    const dir = tempDir('local-hosts');
    const job = join(dir, 'job.json');
    writeFileSync(job, JSON.stringify({ data: { name: 'xor' } }));
    for (const [flag, value] of [
      ['--hosts', 'localhost:4'],
      ['--hostfile', join(dir, 'hosts')],
    ]) {
      const out = join(dir, flag.slice(2));
      const r = await runCli(['launch', '--launcher', 'local', '-c', job, flag, value, '--out', out]);
      expect(r.code).toBe(2);
      expect(existsSync(out)).toBe(false);
      expect(r.stderr).toBe(
        `dptrain: CONFIG_INVALID: ${flag} is for ssh hosts; the local launcher starts --workers N here\n`,
      );
    }
  }, 60_000);
});

describe('launch flags that would do nothing', () => {
  it('--ssh-port out of range, an --ssh-option that is no KEY=VALUE: one line each', () => {
    const section = (over: Partial<ReturnType<typeof launchSection>>) => ({
      ...launchSection({ hosts: 'a:1' }, parseConfig({})),
      ...over,
    });
    expect(expectCode(() => sshOptions(section({ sshPort: 0 })), 'CONFIG_INVALID')).toBe(
      '--ssh-port 0: a port from 1 to 65535',
    );
    expect(expectCode(() => sshOptions(section({ sshOptions: ['foo'] })), 'CONFIG_INVALID')).toBe(
      '--ssh-option foo: expected KEY=VALUE, e.g. StrictHostKeyChecking=no',
    );
    expect(sshOptions(section({ sshPort: 2222, sshOptions: ['StrictHostKeyChecking=no'] }))).toMatchObject({
      port: 2222,
      options: ['StrictHostKeyChecking=no'],
    });
  });

  it.each([
    ['hosts', '--hosts'],
    ['hostfile', '--hostfile'],
    ['sshUser', '--ssh-user'],
    ['sshPort', '--ssh-port'],
    ['sshIdentity', '--ssh-identity'],
    ['sshOption', '--ssh-option'],
    ['remoteDptrain', '--remote-dptrain'],
  ] as const)('%s with --launcher slurm, and (but the host list) with local: one line naming it', (key, flag) => {
    const value = key === 'sshPort' ? 22 : key === 'sshOption' ? ['ConnectTimeout=3'] : 'x';
    expect(expectCode(() => refuseOtherLaunchers({ [key]: value }, 'slurm'), 'CONFIG_INVALID')).toBe(
      `${flag} is for the ssh launcher; under slurm the workers run on the allocation's nodes (srun)`,
    );
    expect(expectCode(() => refuseOtherLaunchers({ [key]: value }, 'local'), 'CONFIG_INVALID')).toBe(
      `${flag} is for the ssh launcher; the local launcher starts --workers N here`,
    );
    refuseOtherLaunchers({ [key]: value }, 'ssh');
  });

  it('ssh flags with --launcher local on the command line: one line, nothing started', async () => {
    const dir = tempDir('local-ssh-flags');
    const job = join(dir, 'job.json');
    writeFileSync(job, JSON.stringify({ data: { name: 'xor' } }));
    const out = join(dir, 'run');
    const r = await runCli(
      ['launch', '--launcher', 'local', '--workers', '1', '--remote-dptrain', '/bin/false', '-c', job, '--out', out],
      30_000,
    );
    expect(r.code).toBe(2);
    expect(existsSync(out)).toBe(false);
    expect(r.stderr).toBe(
      'dptrain: CONFIG_INVALID: --remote-dptrain is for the ssh launcher; the local launcher starts --workers N here\n',
    );
  }, 60_000);

  it('an --ssh-identity that cannot be read is refused, not left to ssh to warn about', () => {
    const section = { ...launchSection({ hosts: 'a:1' }, parseConfig({})), sshIdentity: '/no/such/key' };
    expect(expectCode(() => sshOptions(section), 'CONFIG_UNREADABLE')).toBe(
      '--ssh-identity /no/such/key: cannot read it (ENOENT)',
    );
  });

  it('--launcher slurm outside an allocation: one line before a coordinator starts or a directory is written', async () => {
    const dir = tempDir('slurm-outside');
    const job = join(dir, 'job.json');
    writeFileSync(job, JSON.stringify({ data: { name: 'xor' } }));
    const out = join(dir, 'run');
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SLURM_')));
    const r = await runCli(['launch', '--launcher', 'slurm', '-c', job, '--out', out], 60_000, env);
    expect(r.code).toBe(2);
    expect(existsSync(out)).toBe(false);
    expect(r.stderr).toBe(
      'dptrain: CONFIG_INVALID: SLURM_JOB_NODELIST is not set: run this inside a Slurm allocation (sbatch, or srun within salloc)\n',
    );
  }, 60_000);

  it('--workers with ssh hosts: one line, not ignored', async () => {
    const dir = tempDir('ssh-workers');
    const job = join(dir, 'job.json');
    writeFileSync(job, JSON.stringify({ data: { name: 'xor' } }));
    const out = join(dir, 'run');
    const r = await runCli(['launch', '--hosts', 'localhost:2', '--workers', '5', '-c', job, '--out', out]);
    expect(r.code).toBe(2);
    expect(existsSync(out)).toBe(false);
    expect(r.stderr).toBe(
      'dptrain: CONFIG_INVALID: --workers 5 is for the local launcher; with ssh, the host list says how many (HOST:SLOTS)\n',
    );
  }, 60_000);
});

describe('advertised address', () => {
  it('an interface name becomes its IPv4 address; a host is kept', () => {
    const ifaces = {
      eth1: [
        { address: 'fe80::1', family: 'IPv6' },
        { address: '10.1.2.3', family: 'IPv4' },
      ],
    } as never;
    expect(resolveAdvertise('eth1', ifaces)).toBe('10.1.2.3');
    expect(resolveAdvertise('node7.cluster', ifaces)).toBe('node7.cluster');
  });

  it('no host at all, or neither an interface nor a name that resolves: refused naming --advertise', async () => {
    const ifaces = { eth1: [{ address: '10.1.2.3', family: 'IPv4' }] } as never;
    const notFound = async () => {
      throw Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' });
    };
    const dnsDown = async () => {
      throw Object.assign(new Error('getaddrinfo EAI_AGAIN'), { code: 'EAI_AGAIN' });
    };
    expect(expectCode(() => advertisedHost('a b', ifaces), 'CONFIG_INVALID')).toBe(
      '--advertise a b: not a host name, an address or an interface of this machine',
    );
    await expect(checkAdvertise('nosuchif0', ifaces, notFound)).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: '--advertise nosuchif0: neither an interface of this machine (eth1) nor a host name that resolves',
    });
    expect(await checkAdvertise('eth1', ifaces, notFound)).toBe('10.1.2.3');
    expect(await checkAdvertise('10.9.9.9', ifaces, notFound)).toBe('10.9.9.9');
    expect(await checkAdvertise('node7', ifaces, dnsDown)).toBe('node7'); // a resolver that is down proves nothing
    expect(await checkAdvertise('node7', ifaces, async () => ({}))).toBe('node7');
  });

  it('launch --advertise with a bad value: one line, exit 2, before anything starts', async () => {
    const dir = tempDir('advertise-bad');
    const job = join(dir, 'job.json');
    writeFileSync(job, JSON.stringify({ data: { name: 'xor' } }));
    const out = join(dir, 'run');
    for (const [value, line] of [
      ['a b', 'not a host name, an address or an interface of this machine'],
      ['nosuchif0.invalid', /neither an interface of this machine \(.*\) nor a host name that resolves/],
    ] as const) {
      const r = await runCli(['launch', '--hosts', 'localhost:1', '--advertise', value, '-c', job, '--out', out]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(`dptrain: CONFIG_INVALID: --advertise ${value}: `);
      expect(r.stderr).toMatch(line);
      expect(r.stderr).not.toMatch(/--listen/);
      expect(existsSync(out)).toBe(false);
    }
  }, 60_000);

  it('workers are told the advertised host, never a wildcard', () => {
    expect(workerAddress('ws://0.0.0.0:7070', '10.1.2.3')).toBe('ws://10.1.2.3:7070');
    expect(workerAddress('ws://127.0.0.1:41234')).toBe('ws://127.0.0.1:41234');
    expect(workerAddress('ws://0.0.0.0:7070')).not.toMatch(/0\.0\.0\.0/);
  });
});

describe('Slurm tasks', () => {
  it('reads the task from the environment srun sets, or says to run inside an allocation', () => {
    expect(
      slurmTask({
        SLURM_JOB_ID: '42',
        SLURM_PROCID: '2',
        SLURM_NTASKS: '3',
        SLURM_JOB_NODELIST: 'n[1-3]',
        SLURMD_NODENAME: 'n3',
      }),
    ).toEqual({ jobId: '42', rank: 2, ntasks: 3, nodelist: 'n[1-3]', restarts: 0, node: 'n3' });
    expect(expectCode(() => slurmTask({}), 'CONFIG_INVALID')).toMatch(
      /SLURM_JOB_ID is not set: run this inside a Slurm allocation/,
    );
  });

  it('SLURM_TASKS_PER_NODE and the names of a block distribution', () => {
    expect(tasksPerNode('2(x3),1')).toEqual([2, 2, 2, 1]);
    const t = { jobId: '7', rank: 0, ntasks: 5, nodelist: '', restarts: 0, node: 'a' };
    expect(slurmWorkerNames(t, ['a', 'b', 'c'], '2(x2),1')).toEqual([
      'rank0@a',
      'rank1@a',
      'rank2@b',
      'rank3@b',
      'rank4@c',
    ]);
    expect(slurmPort('12345')).toBe(32345);
  });

  it('--host-agents: an agent a task, one task a node, --agent-workers required; each refusal in one line', () => {
    const t = { jobId: '7', rank: 0, ntasks: 2, nodelist: '', restarts: 0, node: 'a' };
    expect(slurmMembers(t, ['a', 'b'], '1(x2)', 3)).toEqual([
      { host: 'a', rank: 0, name: 'agent0@a', agentWorkers: 3 },
      { host: 'b', rank: 1, name: 'agent1@b', agentWorkers: 3 },
    ]);
    expect(slurmMembers(t, ['a', 'b'], '1(x2)', null).map((m) => m.name)).toEqual(['rank0@a', 'rank1@b']);
    const env = { SLURM_TASKS_PER_NODE: '1(x2)' };
    expect(slurmAgentWorkers({ hostAgents: true, agentWorkers: 3 }, env)).toBe(3);
    expect(slurmAgentWorkers({}, env)).toBeNull();
    expect(expectCode(() => slurmAgentWorkers({ hostAgents: true }, env), 'CONFIG_INVALID')).toMatch(
      /--host-agents under Slurm needs --agent-workers K/,
    );
    expect(
      expectCode(
        () => slurmAgentWorkers({ hostAgents: true, agentWorkers: 2 }, { SLURM_TASKS_PER_NODE: '2(x2)' }),
        'CONFIG_INVALID',
      ),
    ).toMatch(/submit with --ntasks-per-node=1 \(SLURM_TASKS_PER_NODE is 2\(x2\)\)/);
    expect(expectCode(() => slurmAgentWorkers({ agentWorkers: 2 }, env), 'CONFIG_INVALID')).toMatch(
      /--agent-workers goes with --host-agents/,
    );
  });

  it('job flags a run continued from its checkpoint does not read, as typed', () => {
    expect(givenJobFlags({ config: 'job.json', steps: 80, lr: 0.5, port: 20001, joinTimeout: 30 })).toEqual([
      '--config',
      '--steps',
      '--lr',
    ]);
    expect(givenJobFlags({ port: 20001 })).toEqual([]);
  });

  it("task 0's start failure ends the other tasks of the same step with its code; another step's is not read", () => {
    const out = join(tempDir('slurm-start'), 'runs', 'slurm-9');
    const env = { SLURM_JOB_ID: '9', SLURM_STEP_ID: '1', SLURM_RESTART_COUNT: '0' };
    checkStartFailure(out, env); // nothing written: keep trying
    writeStartFailure(out, env, new DptrainError('CONFIG_INVALID', '--steps 0: expected an integer ≥ 1'));
    expect(existsSync(startFailureFile(out))).toBe(true);
    expect(expectCode(() => checkStartFailure(out, env), 'CONFIG_INVALID')).toBe(
      'task 0 did not start the coordinator: --steps 0: expected an integer ≥ 1',
    );
    checkStartFailure(out, { ...env, SLURM_STEP_ID: '2' }); // a later srun in the allocation
    checkStartFailure(out, { ...env, SLURM_RESTART_COUNT: '1' }); // the job requeued
    clearStartFailure(out);
    checkStartFailure(out, env);
  });

  it('a token file others can read is refused; no token at all says how to give one', () => {
    const f = join(tempDir('slurm-token'), 'token');
    writeFileSync(f, 'abcdefghijklmnopqrstuvwxyz012345');
    chmodSync(f, 0o644);
    expect(expectCode(() => slurmToken(f), 'CONFIG_INVALID')).toMatch(/readable by others \(mode 644\); chmod 600 it/);
    chmodSync(f, 0o600);
    expect(slurmToken(f)).toBe('abcdefghijklmnopqrstuvwxyz012345');
    const saved = process.env.DPTRAIN_TOKEN;
    delete process.env.DPTRAIN_TOKEN;
    try {
      expect(expectCode(() => slurmToken(undefined), 'CONFIG_INVALID')).toMatch(
        /export DPTRAIN_TOKEN=\$\(dptrain token\)/,
      );
    } finally {
      if (saved !== undefined) process.env.DPTRAIN_TOKEN = saved;
    }
  });
});

describe('worker preflight', () => {
  it('names the address tried and why: refused, DNS; ok when something listens', async () => {
    const port = await freePort();
    expect(await preflight(`ws://127.0.0.1:${port}`)).toMatchObject({
      ok: false,
      tried: `127.0.0.1:${port}`,
      why: expect.stringMatching(/^connection refused/),
    });
    expect(await preflight('ws://no-such-host.invalid:7070')).toMatchObject({
      ok: false,
      why: expect.stringMatching(/^DNS: cannot resolve no-such-host\.invalid \(ENOTFOUND|EAI_AGAIN\)/),
    });
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const open = (server.address() as { port: number }).port;
    expect(await preflight(`ws://localhost:${open}`)).toMatchObject({ ok: true, why: '' });
    server.close();
  });

  it('a worker that cannot reach its coordinator says which address it tried and why, in one line', async () => {
    const port = await freePort();
    const r = await runCli([
      'worker',
      '--connect',
      `ws://127.0.0.1:${port}`,
      '--backend',
      'cpu',
      '--connect-timeout',
      '1',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(
        `dptrain: CONNECT_FAILED: cannot reach the coordinator at ws://127\\.0\\.0\\.1:${port}: tried 127\\.0\\.0\\.1:${port}: ` +
          `connection refused .*; gave up after 1 s\\n$`,
      ),
    );
  }, 60_000);
});

describe('coordinator port', () => {
  it('a port in use: one line; port 0: a free port, printed and written to RUN/coordinator.json, where a worker finds it', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const busy = (server.address() as { port: number }).port;
    const dir = tempDir('port');
    const job = join(dir, 'job.json');
    writeFileSync(
      job,
      JSON.stringify({
        data: { name: 'xor' },
        model: { layers: [{ units: 1 }], loss: 'binaryCrossEntropy' },
        steps: 1,
      }),
    );
    const r = await runCli([
      'coordinator',
      '--config',
      job,
      '--listen',
      `127.0.0.1:${busy}`,
      '--out',
      join(dir, 'busy'),
    ]);
    server.close();
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').pop()).toBe(
      `dptrain: RUN_FAILED: --listen 127.0.0.1:${busy}: the port is in use; pick another port (or 0: any free one)`,
    );
    // Port 0: the coordinator writes the port it got; a worker given only that file finds it.
    const out = join(dir, 'free');
    const token = 'port-test-token-0123456789abcdef';
    const env = { ...process.env, DPTRAIN_TOKEN: token };
    const c = runCli(['coordinator', '--config', job, '--listen', '127.0.0.1:0', '--out', out], 60_000, env);
    const w = runCli(['worker', '--connect-file', join(out, 'coordinator.json'), '--backend', 'cpu'], 60_000, env);
    const [done, worker] = await Promise.all([c, w]);
    expect(done.code, done.stderr).toBe(0);
    expect(worker.code, worker.stderr).toBe(0);
    const file = JSON.parse(readFileSync(join(out, 'coordinator.json'), 'utf8')) as { address: string; port: number };
    expect(file.port).toBeGreaterThan(0);
    expect(file.address).toBe(`ws://127.0.0.1:${file.port}`);
    expect(done.stderr).toContain(`dptrain worker --connect ws://127.0.0.1:${file.port}`);
  }, 60_000);
});
