import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../cli/program.js';
import { argsOf, COMMAND_SCOPES, FLAG_TABLE, flagName, overridesOf } from '../../cli/flag-table.js';
import { JOIN_TABLE } from '../../cli/join-flags.js';
import { unusedFields } from '../../cli/flags.js';
import { DEFAULT_CONFIG, jobOf, mergeOverrides, parseConfig } from '../../shared/job/config.js';

describe('the flag table', () => {
  it('names every flag and key once', () => {
    const keys = FLAG_TABLE.map((r) => r.key);
    const names = FLAG_TABLE.map(flagName);
    expect(new Set(keys).size).toBe(keys.length);
    expect(new Set(names).size).toBe(names.length);
  });

  it('points every field at a config path that exists', () => {
    const defaults = DEFAULT_CONFIG as unknown as Record<string, unknown>;
    for (const row of FLAG_TABLE.filter((r) => r.field)) {
      const [section, field] = row.field!.split('.');
      expect(section in defaults, `${row.key} → ${row.field}`).toBe(true);
      if (field)
        expect(field in (defaults[section] as Record<string, unknown>), `${row.key} → ${row.field}`).toBe(true);
    }
  });

  it('marks as job flags exactly those whose fields belong to the job', () => {
    const jobFields = new Set(Object.keys(jobOf(parseConfig({}))));
    for (const row of FLAG_TABLE.filter((r) => r.field)) {
      const section = row.field!.split('.')[0];
      expect(row.role === 'job', `${row.key}`).toBe(jobFields.has(section));
    }
  });

  it('turns parsed flags into overrides that parseConfig takes', () => {
    const flags = { steps: 7, lr: 0.25, budget: 1e12, workers: 3, stepTimeout: 9, tokenFile: 'x', accumulate: 4 };
    const o = overridesOf(flags, ['job', 'launch']);
    expect(o).toMatchObject({ steps: 7, 'optimizer.lr': 0.25, 'compute.budget': 1e12, workers: 3, stepTimeoutSec: 9 });
    expect(Object.values(o)).not.toContain('x');
    const c = parseConfig(mergeOverrides({}, o));
    expect([c.steps, c.optimizer.lr, c.compute.budget, c.workers, c.stepTimeoutSec, c.accumulate]).toEqual([
      7, 0.25, 1e12, 3, 9, 4,
    ]);
    expect(overridesOf(flags, ['launch'])).not.toHaveProperty('steps');
  });

  it('gives each training command exactly the rows of its scopes', () => {
    const program = buildProgram();
    const longs = (name: string) => program.commands.find((c) => c.name() === name)!.options.map((o) => o.long);
    for (const [command, scopes] of Object.entries(COMMAND_SCOPES)) {
      for (const row of FLAG_TABLE) {
        const long = row.flags.replace(/^-\w, /, '').split(' ')[0];
        expect(longs(command).includes(long), `${command} ${long}`).toBe(
          (scopes as readonly string[]).includes(row.scope),
        );
      }
    }
    // Every row reaches some command, and `train` has every row of the config's fields but the remote ones.
    for (const row of FLAG_TABLE)
      expect(Object.values(COMMAND_SCOPES).some((s) => (s as readonly string[]).includes(row.scope))).toBe(true);
    for (const row of FLAG_TABLE.filter((r) => r.field))
      expect(longs('train'), row.key).toContain(row.flags.replace(/^-\w, /, '').split(' ')[0]);
  });

  it("a --no- flag left out overrides nothing: a config file's false stays", async () => {
    const program = buildProgram();
    let parsed: Record<string, unknown> = {};
    for (const c of program.commands)
      c.action((f: Record<string, unknown>) => {
        parsed = f;
      });
    const configOf = async (...args: string[]) => {
      await program.parseAsync(['node', 'dptrain', 'train', ...args]);
      return parseConfig(mergeOverrides({ sharedMemory: false }, overridesOf(parsed, ['job', 'launch'])));
    };
    expect((await configOf()).sharedMemory).toBe(false);
    expect((await configOf('--no-shared-memory')).sharedMemory).toBe(false);
    expect(parseConfig(mergeOverrides({}, overridesOf({ sharedMemory: true }, ['launch']))).sharedMemory).toBe(true);
  });

  it('gives flags back as a command line: lists repeat their flag, unset and other scopes stay out', () => {
    const given = { sshPort: 2222, sshOption: ['A=1', 'B=2'], advertise: 'eth1', steps: 9, hosts: undefined };
    expect(argsOf(given, ['launch', 'advertise'])).toEqual([
      '--advertise',
      'eth1',
      '--ssh-port',
      '2222',
      '--ssh-option',
      'A=1',
      '--ssh-option',
      'B=2',
    ]);
  });
});

describe('config fields a command does not read', () => {
  it('are named, with the commands that read them, when the file sets them to other than the default', () => {
    const file = { workers: 4, sharedMemory: false, coordinatorWorker: false, steps: 9, optimizer: { lr: 0.5 } };
    expect(unusedFields(file, 'train')).toEqual([]);
    expect(unusedFields(file, 'coordinator')).toEqual([
      'config field workers (4) is not used by dptrain coordinator; dptrain train and dptrain launch read it',
    ]);
    expect(unusedFields(file, 'slurm')).toEqual([
      'config field workers (4) is not used by dptrain slurm; dptrain train and dptrain launch read it',
      'config field sharedMemory (false) is not used by dptrain slurm; dptrain train and dptrain coordinator read it',
    ]);
    // A default spelled out is no mistake: one file may serve several commands.
    expect(unusedFields({ workers: 2, sharedMemory: true }, 'slurm')).toEqual([]);
  });
});

describe("the joining commands' table", () => {
  it('gives worker and host-agent every row, each flag and key once', () => {
    const keys = JOIN_TABLE.map((r) => r.key);
    expect(new Set(keys).size).toBe(keys.length);
    const program = buildProgram();
    for (const command of ['worker', 'host-agent']) {
      const options = program.commands.find((c) => c.name() === command)!.options;
      const longs = options.map((o) => o.long);
      expect(new Set(longs).size, command).toBe(longs.length);
      for (const row of JOIN_TABLE) expect(longs, `${command} ${row.flags}`).toContain(row.flags.split(' ')[0]);
      // A row's help per command reaches that command.
      const help = (flag: string) => options.find((o) => o.long === flag)!.description;
      expect(help('--peak-flops')).toMatch(command === 'worker' ? /this worker's device/ : /each worker's device/);
    }
  });
});
