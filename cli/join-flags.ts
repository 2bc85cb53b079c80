/**
 * The flags of the commands that join a coordinator (`worker`, `host-agent`), in one table:
 * where the coordinator is, how long to keep trying, the token, and the declared peak. Both
 * commands take their options from these rows, so a flag is named once; a row's help may say
 * it per command where it means something else for an agent of several workers.
 */
import { type Command, Option } from 'commander';
import { deviceNames, devicePeak, PRECISIONS, type Precision } from '../shared/accounting/devices.js';
import { fail } from '../shared/util/errors.js';
import { checkWsUrl } from '../worker/ws-dialer.js';
import { intFlag, numFlag } from './parse-flags.js';

export type JoinCommand = 'worker' | 'host-agent';

/** What both joining commands parse from the rows below. */
export interface JoinFlags {
  connect?: string;
  /** RUN/coordinator.json of a coordinator (e.g. on a shared filesystem, listening on port 0). */
  connectFile?: string;
  name?: string;
  connectTimeout: number;
  reconnectTimeout: number;
  tokenFile?: string;
  ca?: string;
  job?: string;
  peakFlops?: number;
  device?: string;
  precision: Precision;
  /** The coordinator's slice shards, in its order (coordinator --slice-shard). */
  sliceShard?: string[];
  /** No flag: called before each try to connect; throws to stop trying (dptrain slurm: task 0 did not start). */
  beforeTry?: () => void;
}

export interface JoinRow {
  /** Commander's attribute name. */
  key: keyof JoinFlags;
  /** Commander's flag syntax, e.g. `--connect <url>`. */
  flags: string;
  help: string | Readonly<Record<JoinCommand, string>>;
  parse?: (v: string) => number;
  choices?: readonly string[];
  default?: number | string;
}

export const JOIN_TABLE: readonly JoinRow[] = [
  { key: 'connect', flags: '--connect <url>', help: 'coordinator address, e.g. ws://host:7070' },
  {
    key: 'connectFile',
    flags: '--connect-file <file>',
    help: "read the address from a coordinator's RUN/coordinator.json (a shared run directory)",
  },
  {
    key: 'name',
    flags: '--name <name>',
    help: {
      worker: 'name in the coordinator log (default host-pid; rankN@host in an Indexed Job)',
      'host-agent': 'name in the coordinator log (default host-agent@HOST)',
    },
  },
  {
    key: 'connectTimeout',
    flags: '--connect-timeout <sec>',
    help: 'keep retrying the first connection this long',
    parse: intFlag,
    default: 60,
  },
  {
    key: 'reconnectTimeout',
    flags: '--reconnect-timeout <sec>',
    help: 'after losing the coordinator, keep trying to reconnect this long',
    parse: intFlag,
    default: 300,
  },
  { key: 'tokenFile', flags: '--token-file <file>', help: 'the job token (default: DPTRAIN_TOKEN)' },
  { key: 'ca', flags: '--ca <file>', help: "trust this certificate for wss:// (a self-signed coordinator's)" },
  { key: 'job', flags: '--job <id>', help: 'only join this job id (the coordinator logs it)' },
  {
    key: 'peakFlops',
    flags: '--peak-flops <flops>',
    help: {
      worker: "declared peak FLOP/s of this worker's device",
      'host-agent': "declared peak FLOP/s of each worker's device",
    },
    parse: numFlag,
  },
  {
    key: 'device',
    flags: '--device <name>',
    help: {
      worker: `take the peak from the device table (${deviceNames()})`,
      'host-agent': `take each worker's peak from the device table (${deviceNames()})`,
    },
  },
  {
    key: 'precision',
    flags: '--precision <p>',
    help: 'datasheet column for --device',
    choices: PRECISIONS,
    default: 'fp32',
  },
  {
    key: 'sliceShard',
    flags: '--slice-shard <url...>',
    help: {
      worker: "the coordinator's slice shards, in its --slice-shard order",
      'host-agent': "the coordinator's slice shards, in its --slice-shard order (the host's sums go to them)",
    },
  },
];

/** The table's options on a joining command. */
export function joinOptions(cmd: Command, command: JoinCommand): Command {
  for (const row of JOIN_TABLE) {
    const opt = new Option(row.flags, typeof row.help === 'string' ? row.help : row.help[command]);
    if (row.choices) opt.choices(row.choices);
    if (row.parse) opt.argParser(row.parse);
    if (row.default !== undefined) opt.default(row.default);
    cmd.addOption(opt);
  }
  return cmd;
}

/**
 * The addresses a joining command dials (--connect, --slice-shard), refused in one line before
 * anything starts: a host agent would otherwise start its workers first.
 */
export function checkJoinUrls(f: Pick<JoinFlags, 'connect' | 'sliceShard'>): void {
  if (f.connect) checkWsUrl(f.connect, '--connect');
  for (const u of f.sliceShard ?? []) checkWsUrl(u, '--slice-shard');
}

/**
 * The peak FLOP/s a joining command declares (--peak-flops, or --device's datasheet figure),
 * refused before anything starts where train would refuse compute.peakFlops: a peak ≤ 0 would
 * make every MFU meaningless (negative, or infinite).
 */
export function joinPeak(f: Pick<JoinFlags, 'peakFlops' | 'device' | 'precision'>): number | undefined {
  if (f.peakFlops !== undefined && !(f.peakFlops > 0))
    fail('CONFIG_INVALID', `--peak-flops must be a number > 0, got ${f.peakFlops}`);
  if (f.peakFlops !== undefined && f.device) fail('CONFIG_INVALID', '--peak-flops and --device: give one, not both');
  if (f.precision !== undefined && f.precision !== 'fp32' && !f.device)
    fail(
      'CONFIG_INVALID',
      `--precision ${f.precision} goes with --device (it picks a column of the device's datasheet)`,
    );
  return f.peakFlops ?? (f.device ? devicePeak(f.device, f.precision) : undefined);
}
