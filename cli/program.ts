/** The dptrain commands and their options (the training commands' flags come from the flag table). */
import { readFileSync } from 'node:fs';
import { Command, type CommanderError, InvalidArgumentError, Option } from 'commander';
import { parseTraceSteps } from '../coordinator/trace.js';
import { deviceNames, PRECISIONS } from '../shared/accounting/devices.js';
import { BACKENDS, type BackendName } from '../shared/job/config.js';
import { DptrainError } from '../shared/util/errors.js';
import { newToken } from '../shared/wire/auth.js';
import { COMMAND_SCOPES, FLAG_TABLE, optionOf, type FlagScope } from './flag-table.js';
import { joinOptions } from './join-flags.js';
import { launchCommand, type LaunchFlags } from './launch-cmd.js';
import { slurmCommand, type SlurmFlags } from './slurm-cmd.js';
import { inSlurmStep } from './launch/slurm.js';
import { countFlag, intFlag, numFlag, parseListen, positiveFlag } from './parse-flags.js';
import { coordinatorCommand, trainCommand, type TrainFlags } from './train-cmd.js';
import { workerCommand, type WorkerFlags } from './worker-cmd.js';
import { hostAgentCommand, type HostAgentFlags } from './host-agent-cmd.js';
import { shardCommand, type ShardFlags } from './slice-shard-cmd.js';
import { planCommand, planJson, preparePlan, type PlanFlags } from './plan-cmd.js';
import { parseBatchList, parseWorkerList, scaleCommand } from './scale-cmd.js';
import { reportCommand } from './report-cmd.js';
import { profileCommand, type ProfileFlags } from './profile-cmd.js';
import { sampleCommand, type SampleFlags } from './sample-cmd.js';
import type { JobFlags } from './flags.js';

/** The table's flags for a training command, then the tracing flags only the coordinator reads. */
function jobOptions(cmd: Command, scopes: readonly FlagScope[]): Command {
  for (const row of FLAG_TABLE) if (scopes.includes(row.scope)) cmd.addOption(optionOf(row));
  return cmd
    .option('--trace <file>', 'write a Chrome trace (chrome://tracing, Perfetto) of a window of steps')
    .option('--trace-steps <from:to>', 'the steps to trace (default 1:20)', (v: string) => {
      try {
        return parseTraceSteps(v);
      } catch (e) {
        throw new InvalidArgumentError(`${(e as Error).message}.`);
      }
    });
}

const backendOption = () => new Option('--backend <name>', 'TF.js backend for the workers').choices(BACKENDS);
const softwareGpuOption = () =>
  new Option('--allow-software-gpu', 'let webgpu run on a software adapter (SwiftShader, llvmpipe): slow, for tests');

/** dptrain's version from its package.json: two levels above dist/cli/, one above cli/ (tests run the sources). */
function packageVersion(): string {
  for (const rel of ['../../package.json', '../package.json']) {
    try {
      const p = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (p.name === 'dptrain' && p.version) return p.version;
    } catch {
      // not at this level
    }
  }
  return 'unknown';
}

/** Commander's exits that are not mistakes: --help, --version, and help shown for a missing command. */
const NOT_MISTAKES = new Set(['commander.helpDisplayed', 'commander.version', 'commander.help']);

/**
 * A refusal of commander's own (unknown flag or command, bad or missing value) as a flag error
 * of ours: CONFIG_INVALID, so exit 2 and one line like every other bad flag (README, Exit
 * status), naming the flag and where the usage is. Help and version go on as commander's.
 */
function usageError(cmd: Command, e: CommanderError): Error {
  if (NOT_MISTAKES.has(e.code)) return e;
  const text = e.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ');
  // "option '-w, --workers <n>' argument '-1' is invalid. expected …" → "--workers -1: expected …"
  const bad = /^option '(?:-\w, )?(--[\w-]+)[^']*' argument '(.*)' is invalid\. (.*?)\.?$/s.exec(text);
  const what = bad ? `${bad[1]} ${bad[2]}: ${bad[3].replace(/^Allowed/, 'allowed')}` : text;
  const path = cmd.parent ? `dptrain ${cmd.name()}` : 'dptrain';
  return new DptrainError('CONFIG_INVALID', `${what} (see ${path} --help)`);
}

/** Every command refuses through usageError; called once all exist, as commander copies settings only at creation. */
function refuseInOneLine(cmd: Command): void {
  cmd.exitOverride((e) => {
    throw usageError(cmd, e);
  });
  for (const sub of cmd.commands) refuseInOneLine(sub);
}

export function buildProgram(): Command {
  const program = new Command('dptrain')
    .description('Data-parallel training for TensorFlow.js: a coordinator, workers over WebSockets, central Adam')
    .version(packageVersion(), '-V, --version', "print dptrain's version")
    // The message goes out once, from main.ts, as one line with its code (usageError).
    .configureOutput({ outputError: () => {} });

  jobOptions(
    program.command('train').description('train on this machine: a coordinator and N local worker processes'),
    COMMAND_SCOPES.train,
  )
    .option(
      '--fault <spec...>',
      'inject a fault: kill:NAME@STEP, pause:NAME@STEP, resume:NAME@STEP, delay:NAME@STEP:MS',
    )
    .action(async (f: TrainFlags) => {
      // `srun dptrain train` over several tasks: each task is one worker of a Slurm job.
      if (inSlurmStep() && Number(process.env.SLURM_NTASKS ?? 1) > 1) {
        process.stderr.write(
          `dptrain: Slurm task ${process.env.SLURM_PROCID} of ${process.env.SLURM_NTASKS}: running as dptrain slurm\n`,
        );
        process.exitCode = await slurmCommand(f);
      } else process.exitCode = await trainCommand(f);
    });

  jobOptions(
    program.command('coordinator').description('run a coordinator that remote workers join'),
    COMMAND_SCOPES.coordinator,
  )
    .addOption(listenOption('address to listen on; beyond loopback needs a token', { host: '127.0.0.1', port: 7070 }))
    .option('--tls-cert <file>', 'serve wss:// with this certificate (PEM)')
    .option('--tls-key <file>', "the certificate's private key (PEM)")
    .option(
      '--slice-shard <url...>',
      'slice shards (dptrain slice-shard) that hold the parameters and run Adam, in slice order',
    )
    .action(async (f: TrainFlags) => {
      process.exitCode = await coordinatorCommand(f);
    });

  jobOptions(
    program
      .command('launch')
      .description(
        'train across machines from one command: the coordinator here, workers over ssh (or srun, or local)',
      ),
    COMMAND_SCOPES.launch,
  )
    .option(
      '--listen <host:port>',
      'address the coordinator binds (default 0.0.0.0:7070; port 0: any free port)',
      parseListen,
    )
    .action(async (f: LaunchFlags) => {
      process.exitCode = await launchCommand(f);
    });

  jobOptions(
    program
      .command('slurm')
      .description('one task of `srun dptrain slurm`: task 0 runs the coordinator and a worker, every task a worker'),
    COMMAND_SCOPES.slurm,
  ).action(async (f: SlurmFlags) => {
    process.exitCode = await slurmCommand(f);
  });

  program
    .command('slice-shard')
    .description('hold one slice of the parameters and optimizer state for a coordinator started with --slice-shard')
    .requiredOption('-c, --config <file>', "the coordinator's job config: its model's size sizes the shard's frames")
    .addOption(
      listenOption('address to listen on; beyond loopback needs the job token', { host: '127.0.0.1', port: 7071 }),
    )
    .option('--token-file <file>', 'the job token (default: DPTRAIN_TOKEN)')
    .action(async (f: ShardFlags) => {
      process.exitCode = await shardCommand(f);
    });

  // The joining commands' shared flags come from one table (join-flags.ts), then each one's own.
  joinOptions(program.command('worker').description('join a coordinator and compute gradients for it'), 'worker')
    .addOption(backendOption().default('auto'))
    .addOption(softwareGpuOption())
    .action(async (f: WorkerFlags) => {
      process.exitCode = await workerCommand({ ...f, backend: f.backend as BackendName });
    });
  joinOptions(
    program
      .command('host-agent')
      .description(
        "one link from this host to the coordinator: starts the host's workers behind it and sums their gradients here",
      ),
    'host-agent',
  )
    .option('-w, --workers <n>', 'worker processes to start on this host', countFlag, 1)
    .addOption(backendOption().default('auto'))
    .addOption(softwareGpuOption())
    .addOption(listenOption("loopback address the host's workers connect to", { host: '127.0.0.1', port: 0 }))
    .option('--no-shared-memory', "the host's workers send payloads through their sockets")
    .option(
      '--log-dir <dir>',
      "where the host's workers write their logs (default: a temporary directory, removed when the run finishes)",
    )
    .action(async (f: HostAgentFlags) => {
      process.exitCode = await hostAgentCommand(f);
    });

  program
    .command('scale')
    .description('scaling curves: throughput and efficiency against a single-process TF.js baseline, per worker count')
    .option('-c, --config <file>', 'job config (JSON)')
    .requiredOption('-w, --workers <list>', 'worker counts to measure, e.g. 1,2,4', parseWorkerList)
    .addOption(
      new Option('--mode <m>', 'strong: fixed global batch; weak: fixed batch per worker')
        .choices(['strong', 'weak'])
        .default('weak'),
    )
    .option(
      '--per-worker-batch <list>',
      'batches per worker to sweep in weak mode, e.g. 64,128 (default: the config batchSize)',
      parseBatchList,
    )
    .option('--steps <n>', 'steps per point (the first 10% are warm-up)', countFlag)
    .option('--batch-size <n>', 'global batch (strong) or default per-worker batch (weak)', countFlag)
    .addOption(backendOption())
    .addOption(softwareGpuOption())
    .option('--out <dir>', 'where scale.json, scale.md and the plots go (default runs/scale-<timestamp>)')
    .option('--listen <host:port>', "with a launcher: the address each point's coordinator binds", parseListen)
    .action(async (f: JobFlags & { workers: number[]; mode: 'strong' | 'weak'; perWorkerBatch?: number[] }) => {
      const { workers, ...rest } = f;
      process.exitCode = await scaleCommand({ ...rest, workerCounts: workers });
    });
  // Through a launcher: the flags of `dptrain launch` that say where the workers run.
  const scale = program.commands.find((c) => c.name() === 'scale')!;
  for (const row of FLAG_TABLE)
    if (['launch', 'advertise', 'join', 'agents'].includes(row.scope)) scale.addOption(optionOf(row));
  scale.addOption(optionOf(FLAG_TABLE.find((r) => r.key === 'tokenFile')!));
  scale.addOption(optionOf(FLAG_TABLE.find((r) => r.key === 'shards')!));
  // Local points run as `dptrain train`; through a launcher, `launch` refuses it in one line.
  scale.addOption(optionOf(FLAG_TABLE.find((r) => r.key === 'coordinatorWorker')!));

  program
    .command('report')
    .description(
      'one self-contained HTML page of finished runs: charts overlaid, summaries side by side, config differences',
    )
    .argument('<runs...>', 'run directories (the --out of dptrain train / coordinator)')
    .requiredOption('--out <file>', 'the HTML file to write, e.g. report.html')
    .option('--title <text>', 'page title')
    .action((runs: string[], f: { out: string; title?: string }) => {
      process.exitCode = reportCommand(runs, f);
    });

  program
    .command('profile')
    .description("per-kernel time of one worker training step (one shard's gradient) on a backend")
    .option('-c, --config <file>', 'job config (JSON): its model and data')
    .addOption(backendOption().default('auto'))
    .addOption(softwareGpuOption())
    .option('--batch <n>', 'samples in the profiled shard (default: the config batchSize)', countFlag)
    .option('--steps <n>', 'warm-up steps, then as many timed steps, then as many profiled', countFlag, 5)
    .addOption(
      new Option(
        '--matmul-grad <form>',
        "matMul gradient: the backend's measured default, TF.js's transpose flags, materialized transposes, or both to compare",
      ).choices(['flags', 'materialize', 'both']),
    )
    .option('--json', 'print JSON instead of tables')
    .action(async (f: ProfileFlags) => {
      const { profiles, text } = await profileCommand(f);
      process.stdout.write(f.json ? JSON.stringify(profiles, null, 2) + '\n' : text + '\n');
    });

  program
    .command('sample')
    .description("text generated by a run's saved gpt model, continuing a prompt")
    .argument('<run>', 'the run directory')
    .option('--prompt <text>', 'text to continue (required)') // checked after the run directory: a missing run is named first
    .option('--tokens <n>', 'tokens to generate', intFlag, 200)
    .option('--temperature <t>', 'softmax temperature (lower: more likely tokens; 0: always the likeliest)', numFlag, 1)
    .option('--seed <n>', 'seed of the sampling', intFlag, 0)
    .addOption(backendOption().default('auto'))
    .action(async (run: string, f: SampleFlags) => {
      await sampleCommand(run, f, (text) => process.stdout.write(text));
      process.stdout.write('\n');
    });

  program
    .command('token')
    .description('print a new random job token (32 bytes, base64url)')
    .action(() => {
      process.stdout.write(newToken() + '\n');
    });

  program
    .command('plan')
    .description('compute requirements: FLOPs, PF-days, device-hours, wall-clock, MFU, compute-optimal size')
    .option('--params <n>', 'model parameters (6·N FLOPs per token, or per sample with --samples)', positiveFlag)
    .option(
      '-c, --config <file>',
      'a dptrain job config: its model, and unless given otherwise its steps × batch, hardware and budget',
    )
    .addOption(new Option('--model <file>', 'the older name of --config').hideHelp())
    .option('--layers <n>', 'transformer layers L', countFlag)
    .option('--d-model <n>', 'transformer width d_model', countFlag)
    .option('--heads <n>', 'attention heads H', countFlag)
    .option('--head-dim <n>', 'per-head dimension Q (default d_model / heads)', countFlag)
    .option('--seq <n>', 'context length T', countFlag)
    .option('--vocab <n>', 'vocabulary size V', countFlag)
    .option('--no-bias', 'no biases in linear layers and LayerNorms (nanoGPT bias=False)')
    .option('--no-tied', 'untied output head (adds V·d parameters)')
    .option('--tokens <n>', 'training tokens per epoch', positiveFlag)
    .option('--samples <n>', 'training samples per epoch', positiveFlag)
    .option('--epochs <n>', 'epochs', positiveFlag, 1)
    .option('--devices <k>', 'devices training together', countFlag)
    .option('--device <name>', `device from the table (${deviceNames()})`)
    .addOption(new Option('--precision <p>', 'datasheet column for --device').choices(PRECISIONS).default('bf16'))
    .option('--peak <flops>', 'peak FLOP/s per device', positiveFlag)
    .option('--mfu <x>', 'assumed model FLOPs utilization, 0–1 (default 0.4)', numFlag)
    .option('--from-run <dir>', 'take MFU (and, unless given, the hardware) from a finished run')
    .option('--observed-tokens-per-sec <n>', 'derive MFU from an observed throughput (all devices)', positiveFlag)
    .option('--observed-samples-per-sec <n>', 'as above, for sample-based models', positiveFlag)
    .option('--budget <flops>', 'compute budget: share used and the compute-optimal model', positiveFlag)
    .option('--json', 'print JSON instead of a table')
    .action(async (f: PlanFlags) => {
      if (f.mfu !== undefined && !(f.mfu > 0 && f.mfu <= 1))
        throw new DptrainError('CONFIG_INVALID', `--mfu must be in (0, 1], got ${f.mfu}`);
      await preparePlan(f);
      const { result, text } = planCommand(f);
      process.stdout.write(f.json ? JSON.stringify(planJson(result), null, 2) + '\n' : text + '\n');
    });
  refuseInOneLine(program);
  return program;
}

/** --listen with its default shown as an address (host:port), not as the object it parses to. */
function listenOption(help: string, def: { host: string; port: number }): Option {
  return new Option('--listen <host:port>', help).argParser(parseListen).default(def, `${def.host}:${def.port}`);
}
