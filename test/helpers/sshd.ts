/**
 * A real OpenSSH server on loopback for the ssh launcher's tests: a generated host key, one
 * authorized client key, root login by key only. `sshdSkip` says why the tests cannot run here
 * (no /usr/sbin/sshd: Debian's openssh-server; not root), or is null.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort, tempDir } from './cli.js';

const SSHD = '/usr/sbin/sshd';

export const sshdSkip: string | null = !existsSync(SSHD)
  ? `no ${SSHD} (apt-get install -y openssh-server)`
  : process.getuid?.() !== 0
    ? 'sshd must run as root to log in as this user'
    : null;

export interface Sshd {
  port: number;
  identity: string;
  /** `--ssh-option` values: trust this throwaway host key without a known_hosts file. */
  options: string[];
  stop(): Promise<void>;
}

async function listening(port: number, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        r(true);
      });
      s.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() - t0 > timeoutMs) throw new Error(`sshd did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startSshd(): Promise<Sshd> {
  const dir = tempDir('sshd');
  const keygen = (file: string) =>
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file], { stdio: 'ignore' });
  keygen(join(dir, 'host_key'));
  keygen(join(dir, 'id'));
  const auth = join(dir, 'authorized_keys');
  writeFileSync(auth, readFileSync(join(dir, 'id.pub')));
  chmodSync(auth, 0o600);
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // privilege separation directory
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_key')}`,
      `AuthorizedKeysFile ${auth}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'MaxStartups 64',
      'MaxSessions 64',
      'LogLevel ERROR',
    ].join('\n') + '\n',
  );
  // Its log (-e: to stderr) goes to a file: the readiness probe below alone makes it complain.
  const log = openSync(join(dir, 'sshd.log'), 'a');
  const proc: ChildProcess = spawn(SSHD, ['-D', '-e', '-p', String(port), '-f', config], {
    stdio: ['ignore', 'ignore', log],
  });
  closeSync(log);
  await listening(port, 10_000);
  return {
    port,
    identity: join(dir, 'id'),
    options: ['StrictHostKeyChecking=no', `UserKnownHostsFile=/dev/null`, 'LogLevel=ERROR'],
    stop: () =>
      new Promise<void>((r) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return r();
        proc.once('exit', () => r());
        proc.kill('SIGTERM');
      }),
  };
}

/** `dptrain launch` flags that reach this server. */
export const sshFlags = (s: Sshd): string[] => [
  '--ssh-port',
  String(s.port),
  '--ssh-identity',
  s.identity,
  ...s.options.flatMap((o) => ['--ssh-option', o]),
];

/** Command lines of the processes running now whose argv contains `marker`. */
export function processesWith(marker: string): string[] {
  const out = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes(marker) && !l.includes('ps -eo'));
}
