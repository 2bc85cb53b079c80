/**
 * The flags of a training run, in one table: each row names the flag, its help, its parser, the
 * config field it overrides and whether it defines the job. The commander options of `train` and
 * `coordinator`, the config overrides and the rule "a resumed run keeps its job" are all built
 * from these rows, so a flag is named once.
 */
import { Option } from 'commander';
import { deviceNames, PRECISIONS } from '../shared/accounting/devices.js';
import { BACKENDS, BUDGET_POLICIES } from '../shared/job/config.js';
import { WIRE_DTYPES } from '../shared/wire/wire-dtype.js';
import { COMPRESSION_KINDS, compressionFlag } from '../shared/compress/index.js';
import { LAUNCHER_NAMES } from '../shared/job/launch.js';
import { countFlag, intFlag, numFlag } from './parse-flags.js';

/**
 * `job`: changes the optimization, so the checkpoint fixes it on --resume.
 * `launch`: how this run executes; may change when resuming.
 * `run`: read by the command itself, not a config field (files, tracing, faults).
 */
export type FlagRole = 'job' | 'launch' | 'run';

/**
 * Which commands take the flag: `run` every training command (train, coordinator, launch, slurm);
 * `local` the commands that start local workers (train, launch); `join` those that wait for
 * workers to join (coordinator, launch, slurm); `advertise` those that tell workers an address
 * (coordinator, launch); `agents` those that can start host agents (launch, slurm); `computes`
 * those whose coordinator can run a worker in its own process (train, coordinator); `launch` and
 * `slurm` one command each.
 */
export type FlagScope = 'run' | 'local' | 'join' | 'advertise' | 'agents' | 'computes' | 'launch' | 'slurm';

/** The scopes each training command takes. */
export const COMMAND_SCOPES = {
  train: ['run', 'local', 'computes'],
  coordinator: ['run', 'join', 'advertise', 'computes'],
  launch: ['run', 'local', 'join', 'advertise', 'agents', 'launch'],
  slurm: ['run', 'join', 'agents', 'slurm'],
} as const satisfies Record<string, readonly FlagScope[]>;

export interface FlagRow {
  /** Commander's attribute name. */
  key: string;
  /** Commander's flag syntax, e.g. `--batch-size <n>`. */
  flags: string;
  help: string;
  parse?: (v: string) => number | string;
  choices?: readonly string[];
  /** The config path the flag overrides (`optimizer.lr`: a field of a section); omitted for `run` flags. */
  field?: string;
  /** The field's value from the flag's, where they differ (a section from a short spec); default the same. */
  toField?: (v: string) => unknown;
  role: FlagRole;
  scope: FlagScope;
}

export const FLAG_TABLE: readonly FlagRow[] = [
  {
    key: 'config',
    flags: '-c, --config <file>',
    help: 'job config (JSON); flags override its fields',
    role: 'job',
    scope: 'run',
  },
  {
    key: 'steps',
    flags: '--steps <n>',
    help: 'optimizer steps',
    parse: intFlag,
    field: 'steps',
    role: 'job',
    scope: 'run',
  },
  {
    key: 'batchSize',
    flags: '--batch-size <n>',
    help: 'global batch size, split across workers',
    parse: countFlag,
    field: 'batchSize',
    role: 'job',
    scope: 'run',
  },
  {
    key: 'accumulate',
    flags: '--accumulate <n>',
    help: 'micro-steps of --batch-size samples whose gradients make one optimizer step (gradient accumulation)',
    parse: countFlag,
    field: 'accumulate',
    role: 'job',
    scope: 'run',
  },
  {
    key: 'lr',
    flags: '--lr <x>',
    help: 'peak learning rate',
    parse: numFlag,
    field: 'optimizer.lr',
    role: 'job',
    scope: 'run',
  },
  {
    key: 'seed',
    flags: '--seed <n>',
    help: 'seed for initialization, data order and synthetic data',
    parse: intFlag,
    field: 'seed',
    role: 'job',
    scope: 'run',
  },
  {
    key: 'wireDtype',
    flags: '--wire-dtype <dtype>',
    help: 'how parameters and gradients travel: float32 (exact), or float16 / bfloat16 (half the bytes)',
    choices: WIRE_DTYPES,
    field: 'wireDtype',
    role: 'job',
    scope: 'run',
  },
  {
    key: 'compress',
    flags: '--compress <kind>',
    help: `lossy gradient compression with error feedback: ${COMPRESSION_KINDS.join(', ')}, or topk:<ratio> (default none)`,
    field: 'compression',
    toField: compressionFlag,
    role: 'job',
    scope: 'run',
  },
  {
    key: 'shards',
    flags: '--shards <n>',
    help: 'virtual shards per batch: a count or auto (results independent of the workers), or per-worker',
    parse: (v) => (/^\d+$/.test(v) ? Number(v) : v), // a name the config check names if wrong
    field: 'shards',
    role: 'job',
    scope: 'run',
  },
  {
    key: 'workers',
    flags: '-w, --workers <n>',
    help: 'local worker processes to spawn',
    parse: countFlag,
    field: 'workers',
    role: 'launch',
    scope: 'local',
  },
  {
    key: 'minWorkers',
    flags: '--min-workers <n>',
    help: 'pause training below this many ready workers (default 1)',
    parse: countFlag,
    field: 'minWorkers',
    role: 'launch',
    scope: 'run',
  },
  {
    key: 'maxWorkers',
    flags: '--max-workers <n>',
    help: 'refuse connections beyond this many workers (default 64)',
    parse: countFlag,
    field: 'maxWorkers',
    role: 'launch',
    scope: 'run',
  },
  {
    key: 'backend',
    flags: '--backend <name>',
    help: 'TF.js backend for the workers it starts (dptrain coordinator: for its --coordinator-worker)',
    choices: BACKENDS,
    field: 'backend',
    role: 'launch',
    scope: 'run',
  },
  {
    key: 'allowSoftwareGpu',
    flags: '--allow-software-gpu',
    help: 'let webgpu run on a software adapter (SwiftShader, llvmpipe): slow, for tests',
    field: 'allowSoftwareGpu',
    role: 'launch',
    scope: 'run',
  },
  {
    key: 'sharedMemory',
    flags: '--no-shared-memory',
    help: "send tensors to the local workers in their frames: not through /dev/shm files, nor the coordinator's memory for its --coordinator-worker",
    field: 'sharedMemory',
    role: 'launch',
    scope: 'computes',
  },
  {
    key: 'coordinatorWorker',
    flags: '--coordinator-worker',
    help: "run one of the workers inside the coordinator's process (one process fewer to wake each step)",
    field: 'coordinatorWorker',
    role: 'launch',
    scope: 'computes',
  },
  {
    key: 'checkpointEvery',
    flags: '--checkpoint-every <n>',
    help: 'checkpoint every N steps (0: only at the end and on SIGINT/SIGTERM; default 100)',
    parse: intFlag,
    field: 'checkpointEvery',
    role: 'launch',
    scope: 'run',
  },
  {
    key: 'stepTimeout',
    flags: '--step-timeout <sec>',
    help: 'reassign a shard not back in this many seconds (default: 10 × median step, at least 3 s)',
    parse: numFlag,
    field: 'stepTimeoutSec',
    role: 'launch',
    scope: 'run',
  },
  {
    key: 'pauseTimeout',
    flags: '--pause-timeout <sec>',
    help: 'how long to stay paused below --min-workers before checkpointing and exiting (default 300)',
    parse: numFlag,
    field: 'pauseTimeoutSec',
    role: 'launch',
    scope: 'run',
  },
  {
    key: 'rejectOutliers',
    flags: '--reject-outliers <k>',
    help: 'recompute a shard elsewhere if its gradient norm is over k × the recent median',
    parse: numFlag,
    field: 'outlierFactor',
    role: 'launch',
    scope: 'run',
  },
  {
    key: 'out',
    flags: '--out <dir>',
    help: 'run directory (default runs/<timestamp>)',
    field: 'out',
    role: 'launch',
    scope: 'run',
  },
  {
    key: 'budget',
    flags: '--budget <flops>',
    help: 'compute budget in model training FLOPs (e.g. 1e15)',
    parse: numFlag,
    field: 'compute.budget',
    role: 'launch',
    scope: 'run',
  },
  {
    key: 'budgetDeviceHours',
    flags: '--budget-device-hours <h>',
    help: 'compute budget in device-hours at the declared peak',
    parse: numFlag,
    field: 'compute.budgetDeviceHours',
    role: 'launch',
    scope: 'run',
  },
  {
    key: 'budgetPolicy',
    flags: '--budget-policy <p>',
    help: 'at the budget: stop (save, exit 0), warn, or continue',
    choices: BUDGET_POLICIES,
    field: 'compute.budgetPolicy',
    role: 'launch',
    scope: 'run',
  },
  {
    key: 'peakFlops',
    flags: '--peak-flops <flops>',
    help: 'declared peak FLOP/s per worker (default: measured at join)',
    parse: numFlag,
    field: 'compute.peakFlops',
    role: 'launch',
    scope: 'run',
  },
  {
    key: 'device',
    flags: '--device <name>',
    help: `take the peak from the device table (${deviceNames()})`,
    field: 'compute.device',
    role: 'launch',
    scope: 'run',
  },
  {
    key: 'precision',
    flags: '--precision <p>',
    help: 'datasheet column for --device',
    choices: PRECISIONS,
    field: 'compute.precision',
    role: 'launch',
    scope: 'run',
  },
  {
    key: 'resume',
    flags: '--resume <dir>',
    help: 'continue the run in DIR from its newest valid checkpoint',
    role: 'run',
    scope: 'run',
  },
  {
    key: 'tokenFile',
    flags: '--token-file <file>',
    help: 'job token workers must prove they hold (default: DPTRAIN_TOKEN)',
    role: 'run',
    scope: 'run',
  },
  {
    key: 'joinTimeout',
    flags: '--join-timeout <sec>',
    help: 'how long to wait for the workers at the start; then the missing ones are named (default 120)',
    parse: countFlag, // 0 s would end the run before any worker could join
    role: 'run',
    scope: 'join',
  },
  {
    key: 'advertise',
    flags: '--advertise <host>',
    help: 'the host or interface (eth0) workers are told to dial; bound unless --listen says otherwise',
    role: 'run',
    scope: 'advertise',
  },
  {
    key: 'hosts',
    flags: '--hosts <list>',
    help: 'worker hosts and workers on each, e.g. host1:2,host2:4',
    role: 'run',
    scope: 'launch',
  },
  {
    key: 'hostfile',
    flags: '--hostfile <file>',
    help: 'hosts one a line: host, host:4 or host slots=4',
    role: 'run',
    scope: 'launch',
  },
  {
    key: 'launcher',
    flags: '--launcher <name>',
    help: 'how the workers start: ssh (default), slurm (srun in an allocation) or local',
    choices: LAUNCHER_NAMES,
    role: 'run',
    scope: 'launch',
  },
  {
    key: 'sshPort',
    flags: '--ssh-port <n>',
    help: 'ssh port on the hosts',
    parse: intFlag,
    role: 'run',
    scope: 'launch',
  },
  { key: 'sshUser', flags: '--ssh-user <user>', help: 'ssh login name', role: 'run', scope: 'launch' },
  { key: 'sshIdentity', flags: '--ssh-identity <file>', help: 'ssh private key', role: 'run', scope: 'launch' },
  { key: 'sshOption', flags: '--ssh-option <key=value...>', help: 'more ssh -o options', role: 'run', scope: 'launch' },
  {
    key: 'remoteDptrain',
    flags: '--remote-dptrain <command>',
    help: 'the dptrain command on the hosts (default: this node and this dptrain, at the same paths)',
    role: 'run',
    scope: 'launch',
  },
  {
    key: 'hostAgents',
    flags: '--host-agents',
    help: "one dptrain host-agent per host for that host's workers: one link to the coordinator per host",
    role: 'run',
    scope: 'agents',
  },
  {
    key: 'agentWorkers',
    flags: '--agent-workers <n>',
    help: "with --host-agents: workers behind each agent (launch: at most, default all of a host's; slurm: required)",
    parse: countFlag, // an agent of 0 workers serves nothing (and 0 would split a host forever)
    role: 'run',
    scope: 'agents',
  },
  {
    key: 'port',
    flags: '--port <n>',
    help: 'coordinator port on the first node (default 20000 + job id mod 20000)',
    parse: intFlag,
    role: 'run',
    scope: 'slurm',
  },
];

/** The table's row for a flag key. */
export function flagRow(key: string): FlagRow {
  const row = FLAG_TABLE.find((r) => r.key === key);
  if (!row) throw new Error(`no flag row for ${key}`);
  return row;
}

/** `--batch-size` for the row of `batchSize`: how the user typed it. */
export function flagName(row: FlagRow): string {
  return row.flags
    .replace(/^-\w, /, '')
    .split(' ')[0]
    .replace(/^--no-/, '--');
}

/**
 * The command line that gives a command these flags again: `--name value` for each row in
 * `scopes` that `flags` sets (a list repeats its flag; true is the flag alone).
 */
export function argsOf(flags: Record<string, unknown>, scopes: readonly FlagScope[]): string[] {
  const out: string[] = [];
  for (const row of FLAG_TABLE) {
    const v = flags[row.key];
    if (!scopes.includes(row.scope) || v === undefined || v === false || row.flags.includes('--no-')) continue;
    const name = flagName(row);
    if (v === true) out.push(name);
    else for (const x of Array.isArray(v) ? v : [v]) out.push(name, String(x));
  }
  return out;
}

/** A commander Option for one row. */
export function optionOf(row: FlagRow): Option {
  const opt = new Option(row.flags, row.help);
  if (row.choices) opt.choices(row.choices);
  if (row.parse) opt.argParser(row.parse);
  return opt;
}

/** Config overrides from parsed flags, for the rows with the given roles (undefined: not given). */
export function overridesOf(flags: Record<string, unknown>, roles: readonly FlagRole[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const row of FLAG_TABLE) {
    if (!row.field || !roles.includes(row.role)) continue;
    const v = flags[row.key];
    // Commander gives a `--no-` flag left out the value true: that is no override, or a config
    // file's `false` would be lost.
    if (v === true && row.flags.startsWith('--no-')) continue;
    out[row.field] = row.toField && typeof v === 'string' ? row.toField(v) : v;
  }
  return out;
}
