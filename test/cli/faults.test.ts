import { describe, expect, it } from 'vitest';
import { checkFaultNames, localWorkerNames, parseFault } from '../../cli/faults.js';
import { expectCode } from '../helpers/expect-code.js';

describe('--fault specs', () => {
  it('parses each action', () => {
    expect(parseFault('kill:worker-1@40')).toEqual({ action: 'kill', worker: 'worker-1', step: 40, ms: 0 });
    expect(parseFault('pause:worker-0@3')).toMatchObject({ action: 'pause', step: 3 });
    expect(parseFault('resume:worker-0@9')).toMatchObject({ action: 'resume', step: 9 });
    expect(parseFault('delay:worker-2@5:1500')).toEqual({ action: 'delay', worker: 'worker-2', step: 5, ms: 1500 });
  });

  it.each(['boom', 'kill:worker-1', 'kill:worker-1@x', 'delay:worker-1@5', 'kill:worker-1@5:100', 'stop:worker-1@2'])(
    'refuses %s with the forms it takes',
    (spec) => {
      expect(expectCode(() => parseFault(spec), 'CONFIG_INVALID')).toMatch(/expected kill:NAME@STEP/);
    },
  );

  it('a fault names a local worker process, at a step the run reaches', () => {
    const names = localWorkerNames(3, true);
    expect(names).toEqual(['worker-1', 'worker-2']);
    expect(() => checkFaultNames([parseFault('kill:worker-2@10')], names, 10)).not.toThrow();
    expect(expectCode(() => checkFaultNames([parseFault('kill:worker-2@11')], names, 10), 'CONFIG_INVALID')).toBe(
      "fault kill:worker-2@11: step 11 is past the run's 10 steps",
    );
    expect(expectCode(() => checkFaultNames([parseFault('kill:worker-1@2')], [], 10), 'CONFIG_INVALID')).toBe(
      'fault kill:worker-1@2 names worker-1, but the worker processes are none (the one worker runs inside the coordinator)',
    );
  });
});
