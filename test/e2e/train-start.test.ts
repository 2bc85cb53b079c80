/**
 * What `dptrain train` settles at its start: a budget below one step is refused before a run
 * directory or a coordinator exists; config.json records the --fault faults the run injects;
 * a warm-up longer than the run is said in one warning.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, SPIRALS, tempDir } from '../helpers/cli.js';

describe('dptrain train, at its start', () => {
  it('a budget smaller than one step: one line, exit 2, nothing started and no run directory', async () => {
    const out = join(tempDir('budget-step'), 'run');
    const r = await runCli([
      'train',
      '--config',
      SPIRALS,
      '--steps',
      '100',
      '--workers',
      '1',
      '--budget',
      '1e5',
      '--out',
      out,
    ]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toBe(
      'dptrain: CONFIG_INVALID: the compute budget (1.000e+5 FLOPs) is less than one step: raise --budget\n',
    );
    expect(existsSync(out)).toBe(false);
  });

  it('config.json records the --fault faults, and a warm-up past the last step is warned of', async () => {
    const out = join(tempDir('start-faults'), 'run');
    // spirals.json warms up over 20 steps
    const r = await runCli([
      'train',
      '--config',
      SPIRALS,
      '--steps',
      '4',
      '--workers',
      '1',
      '--backend',
      'cpu',
      '--fault',
      'delay:worker-0@2:10',
      '--out',
      out,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { faults: string[] };
    expect(config.faults).toEqual(['delay:worker-0@2:10']);
    const warning = 'optimizer.warmupSteps (20) is more than steps (4): the learning rate never reaches its peak 0.01';
    expect(r.stderr.split(warning)).toHaveLength(2); // once
    expect(readFileSync(join(out, 'log.jsonl'), 'utf8')).toContain(warning);
  });
});
