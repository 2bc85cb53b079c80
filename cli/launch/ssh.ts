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

/** "host1:2,host2:4" (a host without a count has 1 slot). */
export function parseHostList(v: string, where = '--hosts'): SshOptions['hosts'] {
  return v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((item) => {
      const m = /^([\w.@-]+|\[[0-9a-fA-F:]+\])(?::(\d+))?$/.exec(item);
      if (!m || m[2] === '0')
        fail(
          'CONFIG_INVALID',
          where === '--hosts'
            ? `--hosts ${item}: expected HOST or HOST:SLOTS with SLOTS ≥ 1, e.g. host1:2,host2:4`
            : `${where} ${item}: expected a line HOST, HOST:SLOTS or HOST slots=SLOTS, with SLOTS ≥ 1`,
        );
      return { host: m[1].replace(/^\[(.*)\]$/, '$1'), slots: Number(m[2] ?? 1) };
    });
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
  const items = text
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean)
    .map((l) => l.replace(/\s+slots\s*=\s*(\d+)$/, ':$1'));
  if (items.length === 0) fail('CONFIG_INVALID', `--hostfile ${file}: no hosts in it`);
  return parseHostList(items.join(','), `--hostfile ${file}:`);
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

export function sshLauncher(o: SshOptions, shape: SlotShape = workerSlots): Launcher {
  if (o.hosts.length === 0)
    fail('CONFIG_INVALID', 'launch: no hosts given (--hosts host1:2,host2:4 or --hostfile FILE)');
  const sshArgs = (host: string): string[] => [
    ...(o.port ? ['-p', String(o.port)] : []),
    ...(o.user ? ['-l', o.user] : []),
    ...(o.identity ? ['-i', o.identity] : []),
    '-o',
    'BatchMode=yes', // never prompt: a password prompt would hang the launch
    ...(o.options ?? []).flatMap((kv) => ['-o', kv]),
    host,
  ];
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
