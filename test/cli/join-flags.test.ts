/** A joining worker's declared peak: one of --peak-flops or --device, a precision only with a device. */
import { describe, expect, it } from 'vitest';
import { checkJoinUrls, joinPeak } from '../../cli/join-flags.js';
import { runCli } from '../helpers/cli.js';
import { expectCode } from '../helpers/expect-code.js';

describe('joinPeak', () => {
  it('takes --peak-flops, or the device table at its precision, or nothing', () => {
    expect(joinPeak({ peakFlops: 2e12, precision: 'fp32' })).toBe(2e12);
    expect(joinPeak({ device: 'a100', precision: 'bf16' })).toBeGreaterThan(
      joinPeak({ device: 'a100', precision: 'fp32' })!,
    );
    expect(joinPeak({ precision: 'fp32' })).toBeUndefined();
  });

  it('refuses both at once, a precision without a device, and a peak ≤ 0', () => {
    expect(expectCode(() => joinPeak({ peakFlops: 1e12, device: 'a100', precision: 'fp32' }), 'CONFIG_INVALID')).toBe(
      '--peak-flops and --device: give one, not both',
    );
    expect(expectCode(() => joinPeak({ precision: 'bf16' }), 'CONFIG_INVALID')).toBe(
      "--precision bf16 goes with --device (it picks a column of the device's datasheet)",
    );
    expect(expectCode(() => joinPeak({ peakFlops: -5, precision: 'fp32' }), 'CONFIG_INVALID')).toBe(
      '--peak-flops must be a number > 0, got -5',
    );
  });
});

describe('the addresses a joining command dials', () => {
  it.each(['ws://127.0.0.1:99999', 'ws://:17050', 'ws://a b:7070', 'ws://h:0'])(
    '--connect %s: one line naming the flag and the value',
    (url) => {
      expect(expectCode(() => checkJoinUrls({ connect: url }), 'CONFIG_INVALID')).toBe(
        `--connect ${url}: not a valid address; expected ws://HOST:PORT with a port from 1 to 65535`,
      );
    },
  );

  it('--slice-shard addresses too; good ones pass', () => {
    expect(
      expectCode(
        () => checkJoinUrls({ connect: 'ws://h:7070', sliceShard: ['ws://s1:7071', 'ws://s2:99999'] }),
        'CONFIG_INVALID',
      ),
    ).toBe('--slice-shard ws://s2:99999: not a valid address; expected ws://HOST:PORT with a port from 1 to 65535');
    expect(expectCode(() => checkJoinUrls({ connect: 'http://h:7070' }), 'CONFIG_INVALID')).toMatch(
      /^--connect http:\/\/h:7070: use a ws:\/\/ or wss:\/\/ address/,
    );
    checkJoinUrls({ connect: 'wss://[::1]:7070', sliceShard: ['ws://s1:7071'] });
    checkJoinUrls({});
  });

  it('worker and host-agent: exit 2 with that line, before a backend loads or a host worker starts', async () => {
    for (const cmd of [['worker'], ['host-agent', '--workers', '1']]) {
      const r = await runCli([...cmd, '--connect', 'ws://127.0.0.1:99999', '--backend', 'cpu'], 30_000);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(
        'dptrain: CONFIG_INVALID: --connect ws://127.0.0.1:99999: not a valid address; expected ws://HOST:PORT with a port from 1 to 65535\n',
      );
    }
  }, 60_000);
});
