/**
 * dptrain on simulated hosts: a coordinator on one host, workers on others, the built CLI
 * (dist/cli/main.js) started in each namespace as a user would start it on each machine.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { BUILT_CLI } from '../lib/dptrain-child.js';
import type { SimulatedHosts } from './netns.js';

export interface Proc {
  child: ChildProcess;
  /** Resolves with the exit code (a signal counts as 128 + its number's stand-in, -1). */
  exit: Promise<number>;
  output(): string;
}

/** A child whose output is kept, for the line an error quotes. */
export function track(child: ChildProcess): Proc {
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number>((r) => child.once('exit', (code) => r(code ?? -1)));
  return { child, exit, output: () => out };
}

export class Cluster {
  readonly token = randomBytes(24).toString('hex');
  readonly port = 7070;

  constructor(
    readonly net: SimulatedHosts,
    readonly coordinatorHost: string,
  ) {}

  /** ws:// address of the coordinator as the other hosts see it. */
  get address(): string {
    return `ws://${this.net.host(this.coordinatorHost).ip}:${this.port}`;
  }

  private start(host: string, args: string[]): Proc {
    const env = { ...process.env, DPTRAIN_TOKEN: this.token };
    return track(
      this.net.spawn(host, process.execPath, [BUILT_CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] }),
    );
  }

  /** `dptrain coordinator` listening on its host's address; `args` adds --config, --out, flags. */
  coordinator(args: string[]): Proc {
    return this.start(this.coordinatorHost, [
      'coordinator',
      '--listen',
      `${this.net.host(this.coordinatorHost).ip}:${this.port}`,
      ...args,
    ]);
  }

  /** `dptrain host-agent` on `host`: its workers behind one link to the coordinator; `args` adds --workers, flags. */
  hostAgent(host: string, args: string[] = []): Proc {
    return this.start(host, ['host-agent', '--connect', this.address, '--name', host, ...args]);
  }

  /** `dptrain worker` on `host`, connecting to `address` (default: the coordinator directly). */
  worker(host: string, args: string[] = [], address = this.address): Proc {
    return this.start(host, ['worker', '--connect', address, '--name', host, ...args]);
  }
}
