/**
 * Worker processes this machine owns (the workers themselves, or the ssh / srun client that
 * carries each one): spawn, route their output, record how each ended, stop them all. The
 * launchers differ only in the command line per worker and in how a signal reaches it.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, createWriteStream, openSync, type WriteStream } from 'node:fs';
import { constants } from 'node:os';
import { createInterface } from 'node:readline';
import type { LaunchedWorkers, LaunchRequest, WorkerExit, WorkerSlot } from './contract.js';

export interface ProcSpec {
  slot: WorkerSlot;
  argv: string[];
  env: NodeJS.ProcessEnv;
  /** Written to the process's stdin, which then stays open (a remote wrapper's lifeline). */
  stdin?: string;
}

export interface Proc {
  slot: WorkerSlot;
  child: ChildProcess;
  /** The worker's pid on its host, when the launcher learns it (ssh prints it first). */
  remotePid?: number;
}

export interface ProcControl {
  /** 'file': output straight into the worker's log file; 'prefix': each line as "[host rank] line" on stderr too. */
  output: 'file' | 'prefix';
  /** An IPC channel: a local worker exits when its parent does. */
  ipc?: boolean;
  /** A line the launcher itself consumes (a remote pid), before it is printed. */
  onLine?: (p: Proc, line: string) => boolean;
  signal?: (p: Proc, sig: NodeJS.Signals) => void;
  /** Ask a worker to end (default SIGTERM). */
  terminate?: (p: Proc) => void;
  /** End it for good after the grace period (default SIGKILL to the child). */
  kill?: (p: Proc) => void;
  /** A remote exit status of 128+N is signal N (a shell's report of a killed child). */
  statusCarriesSignal?: boolean;
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(
  Object.entries(constants.signals).map(([k, v]) => [v, k as NodeJS.Signals]),
);

function exitOf(
  slot: WorkerSlot,
  code: number | null,
  signal: NodeJS.Signals | null,
  stopped: boolean,
  viaStatus: boolean,
): WorkerExit {
  if (viaStatus && code !== null && code > 128 && SIGNAL_NAMES.has(code - 128))
    return { ...slot, code: null, signal: SIGNAL_NAMES.get(code - 128)!, stopped };
  return { ...slot, code, signal, stopped };
}

function pipeLines(p: Proc, file: WriteStream, control: ProcControl): void {
  const prefix = `[${p.slot.host} ${p.slot.rank}] `;
  for (const stream of [p.child.stdout, p.child.stderr]) {
    if (!stream) continue;
    createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
      if (control.onLine?.(p, line)) return;
      file.write(line + '\n');
      process.stderr.write(prefix + line + '\n');
    });
  }
}

export function startProcs(specs: ProcSpec[], req: LaunchRequest, control: ProcControl): LaunchedWorkers {
  const procs: Proc[] = [];
  const exits: WorkerExit[] = [];
  let stopping = false;
  let resolveEnded!: (e: WorkerExit[]) => void;
  const ended = new Promise<WorkerExit[]>((r) => (resolveEnded = r));
  const waits: Promise<void>[] = [];
  for (const spec of specs) {
    const logFile = req.logDir(spec.slot.name);
    const direct = control.output === 'file';
    const fd = direct ? openSync(logFile, 'a') : null;
    const out: number | 'pipe' = fd ?? 'pipe';
    const stdio: StdioOptions = [
      spec.stdin !== undefined ? 'pipe' : 'ignore',
      out,
      out,
      ...(control.ipc ? ['ipc' as const] : []),
    ];
    const child: ChildProcess = spawn(spec.argv[0], spec.argv.slice(1), { stdio, env: spec.env });
    if (fd !== null) closeSync(fd);
    const p: Proc = { slot: spec.slot, child };
    if (spec.stdin !== undefined) {
      child.stdin!.on('error', () => {}); // the process may be gone before it reads
      child.stdin!.write(spec.stdin);
    }
    const file = direct ? null : createWriteStream(logFile, { flags: 'a' });
    if (file) pipeLines(p, file, control);
    waits.push(
      new Promise<void>((res) => {
        // Whether we stopped it is decided when it exits; the report waits for its output to end.
        let stoppedAtExit = false;
        child.once('exit', () => (stoppedAtExit = stopping));
        child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
          file?.end();
          const e = exitOf(spec.slot, code, signal, stoppedAtExit, control.statusCarriesSignal ?? false);
          exits.push(e);
          req.onExit?.(e);
          res();
        });
        child.once('error', (err: Error) =>
          req.log.error({ worker: spec.slot.name, error: err.message }, 'cannot start the worker process'),
        );
      }),
    );
    procs.push(p);
  }
  void Promise.all(waits).then(() => resolveEnded(exits));
  const byName = new Map(procs.map((p) => [p.slot.name, p]));
  const running = (p: Proc) => p.child.exitCode === null && p.child.signalCode === null;
  return {
    slots: specs.map((s) => s.slot),
    ended,
    signal(name, sig) {
      const p = byName.get(name);
      if (!p || !running(p)) return;
      if (control.signal) control.signal(p, sig);
      else p.child.kill(sig);
    },
    async stop(graceMs = 5000) {
      stopping = true;
      const live = procs.filter(running);
      for (const p of live) (control.terminate ?? ((q: Proc) => q.child.kill('SIGTERM')))(p);
      const timer = setTimeout(() => {
        for (const p of procs.filter(running)) (control.kill ?? ((q: Proc) => q.child.kill('SIGKILL')))(p);
      }, graceMs);
      const all = await ended;
      clearTimeout(timer);
      return all;
    },
  };
}
