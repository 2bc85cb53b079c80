/**
 * `ssh`: workers on other machines, each started by one `ssh HOST sh -c WRAPPER node main.js
 * worker …`. The token travels on the ssh session's stdin (never argv, never the remote
 * environment of sshd's AcceptEnv). The wrapper prints the worker's remote pid, and ends the
 * worker when its stdin closes: when this side stops it, or when the ssh connection drops, so
 * no worker outlives its launcher. A signal (faults, a hard stop) goes over a second ssh.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fail } from '../../shared/util/errors.js';
import type { Launcher, WorkerSlot } from './contract.js';
import { MAIN } from './local.js';
import { memberArgs, type SlotShape, workerSlots } from './members.js';
import { startProcs, type Proc } from './procs.js';

export interface SshOptions {
  /** host → workers on it, in rank order. */
  hosts: Array<{ host: string; slots: number }>;
  port?: number;
  user?: string;
  identity?: string;
  /** Extra `-o KEY=VALUE` options. */
  options?: string[];
  /** The remote dptrain command (default: this node and this main.js, the same paths on every host). */
  command?: string[];
}

/** "host2:4", "host3", "[::1]:2" → its entry; null when it is none of these. */
function parseHost(item: string): SshOptions['hosts'][number] | null {
  const m = /^([\w.@-]+|\[[0-9a-fA-F:]+\])(?::(\d+))?$/.exec(item);
  if (!m || m[2] === '0') return null;
  return { host: m[1].replace(/^\[(.*)\]$/, '$1'), slots: Number(m[2] ?? 1) };
}

/** "host1:2,host2:4" (a host without a count has 1 slot). */
export function parseHostList(v: string): SshOptions['hosts'] {
  return v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(
      (item) =>
        parseHost(item) ??
        fail('CONFIG_INVALID', `--hosts ${item}: expected HOST or HOST:SLOTS with SLOTS ≥ 1, e.g. host1:2,host2:4`),
    );
}

/** A hostfile: one host a line, `host`, `host:4` or `host slots=4` (as MPI and DeepSpeed write it); # comments. */
export function readHostfile(file: string): SshOptions['hosts'] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return fail(
      'CONFIG_UNREADABLE',
      `--hostfile ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
    );
  }
  const hosts = text
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean)
    .map(
      // A refusal quotes the line as the file has it (less its comment), not as rewritten here.
      (line) =>
        parseHost(line.replace(/\s+slots\s*=\s*(\d+)$/, ':$1')) ??
        fail(
          'CONFIG_INVALID',
          `--hostfile ${file}: "${line}": expected a line HOST, HOST:SLOTS or HOST slots=SLOTS, with SLOTS ≥ 1`,
        ),
    );
  if (hosts.length === 0) fail('CONFIG_INVALID', `--hostfile ${file}: no hosts in it`);
  return hosts;
}

/** Single-quote one word for a POSIX shell. */
export const shellQuote = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** Reads the token from stdin, runs the worker, reports its pid, ends it when stdin closes. */
const WRAPPER = [
  'IFS= read -r DPTRAIN_TOKEN || exit 97',
  'export DPTRAIN_TOKEN',
  // fd 3: the session's stdin for the watcher (a background job's own stdin is /dev/null).
  'exec 3<&0',
  '"$@" </dev/null 3<&- & pid=$!',
  'echo "dptrain-remote-pid $pid"',
  '(cat <&3 >/dev/null 2>&1; kill -TERM $pid 2>/dev/null) & watch=$!',
  'exec 3<&-',
  'wait $pid; rc=$?',
  'kill $watch 2>/dev/null',
  'exit $rc',
].join('\n');

const PID_LINE = /^dptrain-remote-pid (\d+)$/;

/** ssh's ConnectTimeout unless --ssh-option sets one (seconds). */
export const SSH_CONNECT_TIMEOUT_SEC = 10;

/** ssh's options and the host, for one host of `o`. */
export function sshCommandArgs(o: SshOptions, host: string): string[] {
  const options = o.options ?? [];
  return [
    ...(o.port ? ['-p', String(o.port)] : []),
    ...(o.user ? ['-l', o.user] : []),
    ...(o.identity ? ['-i', o.identity] : []),
    '-o',
    'BatchMode=yes', // never prompt: a password prompt would hang the launch
    // A host that takes the TCP connection but never answers ends ssh (exit 255, naming the
    // host) instead of waiting out the join timeout; the user's own ConnectTimeout wins.
    ...(options.some((kv) => /^ConnectTimeout[= ]/i.test(kv))
      ? []
      : ['-o', `ConnectTimeout=${SSH_CONNECT_TIMEOUT_SEC}`]),
    ...options.flatMap((kv) => ['-o', kv]),
    host,
  ];
}

export function sshLauncher(o: SshOptions, shape: SlotShape = workerSlots): Launcher {
  if (o.hosts.length === 0)
    fail('CONFIG_INVALID', 'launch: no hosts given (--hosts host1:2,host2:4 or --hostfile FILE)');
  const sshArgs = (host: string): string[] => sshCommandArgs(o, host);
  const slots = (): WorkerSlot[] => {
    let rank = 0;
    return shape(
      o.hosts.flatMap(({ host, slots: k }) =>
        Array.from({ length: k }, () => ({ host, rank: rank, name: `rank${rank++}@${host}` })),
      ),
    );
  };
  const remote = (p: Proc, what: string[]) => {
    const r = spawn('ssh', [...sshArgs(p.slot.host), ...what], { stdio: 'ignore' });
    r.on('error', () => {});
  };
  return {
    name: 'ssh',
    slots,
    start(req) {
      const base = o.command ?? [process.execPath, MAIN];
      const specs = slots().map((slot) => {
        const cmd = [...base, ...memberArgs(req, slot)];
        const line = `exec sh -c ${shellQuote(WRAPPER)} dptrain-worker ${cmd.map(shellQuote).join(' ')}`;
        return { slot, argv: ['ssh', ...sshArgs(slot.host), line], env: { ...process.env }, stdin: `${req.token}\n` };
      });
      return startProcs(specs, req, {
        output: 'prefix',
        statusCarriesSignal: true,
        onLine: (p, line) => {
          const m = PID_LINE.exec(line);
          if (m && p.remotePid === undefined) p.remotePid = Number(m[1]);
          return m !== null;
        },
        signal: (p, sig) => {
          if (p.remotePid !== undefined) remote(p, ['kill', `-${sig.replace(/^SIG/, '')}`, String(p.remotePid)]);
        },
        terminate: (p) => p.child.stdin?.end(),
        kill: (p) => {
          if (p.remotePid !== undefined) remote(p, ['kill', '-KILL', String(p.remotePid)]);
          p.child.kill('SIGKILL');
        },
      });
    },
  };
}
