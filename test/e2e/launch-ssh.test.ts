/**
 * `dptrain launch` over a real sshd on loopback (two "hosts": 127.0.0.1 and localhost): the
 * run equals the local one, every worker line comes back prefixed with host and rank, the token
 * is on no command line; a remote worker killed mid-run is named and nothing is left running;
 * with --host-agents, one agent per host, the token on no command line, the bits of 4 workers.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSummary, readWeights, runCli, stepsReached, type CliResult } from '../helpers/cli.js';
import { equivalenceSetup, EQUIV_JOB } from '../helpers/equivalence-job.js';
import { tensorRelDiff } from '../helpers/reference.js';
import { processesWith, sshdSkip, sshFlags, startSshd, type Sshd } from '../helpers/sshd.js';

const TOKEN = 'launch-test-token-0123456789abcdef';
const HOSTS = '127.0.0.1:1,localhost:1';

/** The coordinator's port once RUN/coordinator.json is written (port 0 at launch). */
async function coordinatorPort(out: string, timeoutMs = 60_000): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    try {
      return (JSON.parse(readFileSync(join(out, 'coordinator.json'), 'utf8')) as { port: number }).port;
    } catch {
      if (Date.now() - t0 > timeoutMs) throw new Error(`no ${out}/coordinator.json within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

describe.skipIf(sshdSkip !== null)(`dptrain launch over ssh${sshdSkip ? ` (skipped: ${sshdSkip})` : ''}`, () => {
  let sshd: Sshd;
  const job = equivalenceSetup('launch-ssh');
  const tokenFile = join(job.dir, 'token');
  writeFileSync(tokenFile, TOKEN, { mode: 0o600 });

  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(async () => {
    await sshd?.stop();
  });

  /** `dptrain launch` of `config` on `hosts` over the test's sshd into `out`, with `flags`. */
  const launchOverSsh = (hosts: string, config: string, out: string, flags: string[] = []) =>
    runCli([
      'launch',
      '--hosts',
      hosts,
      ...sshFlags(sshd),
      '--token-file',
      tokenFile,
      '--config',
      config,
      '--backend',
      'cpu',
      ...flags,
      '--listen',
      '127.0.0.1:0',
      '--out',
      out,
    ]);

  it('trains to the parameters of dptrain train with as many local workers; output prefixed; no token on any command line', async () => {
    const local = join(job.dir, 'local');
    const remote = join(job.dir, 'ssh');
    const rl = await runCli(['train', '--config', job.file, '--workers', '2', '--backend', 'cpu', '--out', local]);
    expect(rl.code, rl.stderr).toBe(0);
    const launched = launchOverSsh(HOSTS, job.file, remote);
    const port = await coordinatorPort(remote);
    const seen: string[] = [];
    // While the workers run: their command lines, and that none of them holds the token.
    await stepsReached(remote, 1, 120_000).catch(() => {});
    seen.push(...processesWith(`ws://127.0.0.1:${port}`));
    const r: CliResult = await launched;
    expect(r.code, r.stderr).toBe(0);
    expect(seen.some((l) => l.includes('--name rank1@localhost'))).toBe(true);
    expect(seen.filter((l) => l.includes(TOKEN))).toEqual([]);
    expect(r.stderr).toMatch(/^\[127\.0\.0\.1 0\] /m);
    expect(r.stderr).toMatch(/^\[localhost 1\] /m);
    expect(readSummary(remote).workers).toBe(2);
    const diff = tensorRelDiff(readWeights(remote), readWeights(local), job.slots);
    console.log(`ssh launch vs local train, 2 workers: tensor-relative max diff ${diff.toExponential(2)}`);
    expect(diff).toBeLessThanOrEqual(1e-5);
  }, 240_000);

  it('--host-agents: one agent per host for its workers, started over ssh with the token on stdin; the bits of 4 workers', async () => {
    const local = join(job.dir, 'local4');
    const remote = join(job.dir, 'agents');
    const shards = ['--shards', '10']; // virtual shards: through agents, the bits of direct workers
    const rl = await runCli([
      'train',
      '--config',
      job.file,
      '--workers',
      '4',
      '--backend',
      'cpu',
      ...shards,
      '--out',
      local,
    ]);
    expect(rl.code, rl.stderr).toBe(0);
    const launched = launchOverSsh('127.0.0.1:2,localhost:2', job.file, remote, ['--host-agents', ...shards]);
    const port = await coordinatorPort(remote);
    await stepsReached(remote, 1, 120_000).catch(() => {});
    const seen = processesWith(`ws://127.0.0.1:${port}`);
    const withToken = processesWith(TOKEN);
    const r: CliResult = await launched;
    expect(r.code, r.stderr).toBe(0);
    const agents = seen.filter(
      (l) => / host-agent --workers 2 /.test(l) && l.trim().split(/\s+/)[1] === process.execPath,
    );
    expect(agents.map((l) => /--name (\S+)/.exec(l)![1]).sort()).toEqual(['agent0@127.0.0.1', 'agent1@localhost']);
    expect(seen.filter((l) => / worker /.test(l))).toEqual([]); // no worker dials the coordinator itself
    expect(withToken).toEqual([]);
    expect(r.stderr).toMatch(/^\[localhost 1\] .*host agent ready workers=2/m);
    // The launcher's TERM after the coordinator's goodbye is no warning: the job finished.
    expect(r.stderr).not.toMatch(/WARN .*SIGTERM: stopping the host's workers/);
    expect(readSummary(remote)).toMatchObject({ workers: 4, members: 2 });
    expect(Buffer.from(readWeights(remote).buffer).equals(Buffer.from(readWeights(local).buffer))).toBe(true);
    await new Promise((res) => setTimeout(res, 500));
    expect(processesWith(`ws://127.0.0.1:${port}`)).toEqual([]);
  }, 240_000);

  it('a remote worker killed mid-run: the run ends naming its host, rank and signal, and no worker is left', async () => {
    const out = join(job.dir, 'fail');
    const long = join(job.dir, 'long.json');
    writeFileSync(long, JSON.stringify({ ...EQUIV_JOB, steps: 5000 }));
    const launched = launchOverSsh(HOSTS, long, out);
    const port = await coordinatorPort(out);
    await stepsReached(out, 3, 120_000);
    const victim = processesWith(`ws://127.0.0.1:${port}`).find(
      (l) => l.includes('--name rank1@localhost') && l.trim().split(/\s+/)[1] === process.execPath,
    );
    expect(victim, 'the remote worker process').toBeDefined();
    process.kill(Number(victim!.trim().split(/\s+/)[0]), 'SIGKILL');
    const r = await launched;
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/worker rank 1 on localhost \(rank1@localhost\) failed: killed by SIGKILL/);
    // The launcher has returned: the other worker, the wrappers and the ssh clients are gone.
    await new Promise((res) => setTimeout(res, 500));
    expect(processesWith(`ws://127.0.0.1:${port}`)).toEqual([]);
  }, 240_000);

  it('a host that does not answer ssh is named with its exit status', async () => {
    const out = join(job.dir, 'nohost');
    const r = await launchOverSsh('127.0.0.1:1,no-such-host.invalid:1', job.file, out);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      /worker rank 1 on no-such-host\.invalid \(rank1@no-such-host\.invalid\) failed: exit status 255/,
    );
    expect(r.stderr).toMatch(/^\[no-such-host\.invalid 1\] .*(Could not resolve|Name or service not known)/m);
  }, 240_000);
});
