/**
 * `dptrain scale` through a launcher: each point runs as `dptrain launch` on the first N slots of
 * the hosts, here over a real sshd on loopback (two "hosts": 127.0.0.1 and localhost).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { firstSlots } from '../../cli/scale-cmd.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { sshdSkip, sshFlags, startSshd, type Sshd } from '../helpers/sshd.js';

describe('firstSlots', () => {
  it('fills hosts in order', () => {
    const hosts = [
      { host: 'a', slots: 2 },
      { host: 'b', slots: 2 },
      { host: '::1', slots: 1 },
    ];
    expect(firstSlots(hosts, 1)).toBe('a:1');
    expect(firstSlots(hosts, 3)).toBe('a:2,b:1');
    expect(firstSlots(hosts, 5)).toBe('a:2,b:2,[::1]:1');
  });
});

describe('dptrain scale through a launcher', () => {
  it('more workers than the hosts have slots is one line', async () => {
    const r = await runCli(['scale', '--workers', '1,3', '--hosts', 'a:1,b:1']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('dptrain: CONFIG_INVALID: --workers 1,3: 3 workers need 3 slots; the hosts give 2');
  });
});

describe.skipIf(sshdSkip !== null)(`dptrain scale over ssh${sshdSkip ? ` (skipped: ${sshdSkip})` : ''}`, () => {
  let sshd: Sshd;
  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(async () => {
    await sshd?.stop();
  });

  it('runs each point as dptrain launch on the first N slots, and writes the curve', async () => {
    const dir = tempDir('scale-ssh');
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'scale-launch-token-0123456789abcdef', { mode: 0o600 });
    const out = join(dir, 'out');
    const r = await runCli(
      [
        'scale',
        '--config',
        join(__dirname, '../../examples/spirals.json'),
        '--workers',
        '1,2',
        '--steps',
        '20',
        '--backend',
        'cpu',
        '--hosts',
        '127.0.0.1:1,localhost:1',
        ...sshFlags(sshd),
        '--token-file',
        tokenFile,
        '--listen',
        '127.0.0.1:0',
        '--out',
        out,
      ],
      240_000,
    );
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(readFileSync(join(out, 'scale.json'), 'utf8')) as {
      rows: Array<{ workers: number; samplesPerSec: number }>;
    };
    expect(s.rows.map((x) => x.workers)).toEqual([1, 2]);
    for (const row of s.rows) expect(row.samplesPerSec).toBeGreaterThan(0);
    // The points ran through ssh: the second one's workers are the two hosts' ranks.
    const log = readFileSync(join(out, 'workers-2', 'log.jsonl'), 'utf8');
    expect(log).toContain('"launcher":"ssh"');
    expect(log).toContain('rank1@localhost');
  }, 300_000);
});
