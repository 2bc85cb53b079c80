/** What the launch commands parse and check before anything starts, and the worker's preflight. */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveAdvertise, workerAddress } from '../../cli/advertise.js';
import { parseHostList, readHostfile, shellQuote } from '../../cli/launch/ssh.js';
import { slurmTask, tasksPerNode } from '../../cli/launch/slurm.js';
import { slurmPort, slurmToken, slurmWorkerNames } from '../../cli/slurm-cmd.js';
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
