/**
 * Scripted faults for local runs, to rehearse failures before a long multi-machine job:
 *   kill:NAME@STEP         SIGKILL the worker when step STEP starts (mid-step)
 *   pause:NAME@STEP        SIGSTOP it (a stalled worker, a hung GPU)
 *   resume:NAME@STEP       SIGCONT it
 *   delay:NAME@STEP:MS     SIGSTOP it for MS milliseconds, then SIGCONT
 * NAME is a local worker's name (worker-0, worker-1, …).
 */
import { fail } from '../shared/util/errors.js';
import type { Logger } from '../shared/util/log.js';
import type { LaunchedWorkers } from './launch/contract.js';

export interface Fault {
  action: 'kill' | 'pause' | 'resume' | 'delay';
  worker: string;
  step: number;
  ms: number;
}

const SPEC = /^(kill|pause|resume|delay):([\w.-]+)@(\d+)(?::(\d+))?$/;

export function parseFault(spec: string): Fault {
  const m = SPEC.exec(spec);
  if (!m || (m[1] === 'delay') !== (m[4] !== undefined)) {
    fail(
      'CONFIG_INVALID',
      `--fault ${spec}: expected kill:NAME@STEP, pause:NAME@STEP, resume:NAME@STEP or delay:NAME@STEP:MS`,
    );
  }
  return { action: m[1] as Fault['action'], worker: m[2], step: Number(m[3]), ms: Number(m[4] ?? 0) };
}

/**
 * Every fault names one of the local worker processes: checked before the run directory is
 * touched (and again by the injector, against the processes started).
 */
export function checkFaultNames(faults: readonly Fault[], names: readonly string[], steps = Infinity): void {
  for (const f of faults) {
    if (f.step > steps)
      fail(
        'CONFIG_INVALID',
        `fault ${f.action}:${f.worker}@${f.step}: step ${f.step} is past the run's ${steps} steps`,
      );
    if (!names.includes(f.worker))
      fail(
        'CONFIG_INVALID',
        `fault ${f.action}:${f.worker}@${f.step} names ${f.worker}, but the worker processes are ${names.length ? names.join(', ') : 'none (the one worker runs inside the coordinator)'}`,
      );
  }
}

/** The names of `dptrain train`'s local worker processes (worker-0 is inside the coordinator when one is). */
export function localWorkerNames(workers: number, coordinatorWorker: boolean): string[] {
  const first = coordinatorWorker ? 1 : 0;
  return Array.from({ length: workers - first }, (_, i) => `worker-${first + i}`);
}

/** Returns the hook the coordinator calls when a step starts. */
export function faultInjector(
  faults: Fault[],
  workers: Pick<LaunchedWorkers, 'slots' | 'signal'>,
  log: Logger,
): (step: number) => void {
  checkFaultNames(
    faults,
    workers.slots.map((s) => s.name),
  );
  return (step) => {
    for (const f of faults.filter((x) => x.step === step)) {
      const signal = (sig: NodeJS.Signals) => workers.signal(f.worker, sig);
      log.warn({ fault: f.action, worker: f.worker, step, ms: f.ms || undefined }, 'injecting fault');
      if (f.action === 'kill') signal('SIGKILL');
      if (f.action === 'pause' || f.action === 'delay') signal('SIGSTOP');
      if (f.action === 'resume') signal('SIGCONT');
      if (f.action === 'delay') setTimeout(() => signal('SIGCONT'), f.ms).unref();
    }
  };
}
