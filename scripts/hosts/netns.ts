/**
 * Simulated hosts on one machine: each host is a Linux network namespace with one interface on
 * a bridge, as separate machines on one switch. Per host: a bandwidth cap (tbf on both ends of
 * its link, so upload and download each get the rate), random packet loss (nftables, both
 * directions) and the link pulled and plugged back (the switch port down/up). Processes run
 * inside with `ip netns exec`. The machine's own namespace also sits on the bridge (the first
 * address), so a process here — a fault proxy, the test itself — can reach every host.
 *
 * Needs root, iproute2 (ip, tc) and nftables for loss. Everything is named after this process's
 * pid, and `destroy()` (also run at exit) removes it; `sweepStale()` removes what a killed
 * process left behind.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';

const PREFIX = 'dph';
const LOSS_TABLE = 'dptrainloss';

function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, {
    encoding: 'utf8',
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    input,
  });
}

function quiet(cmd: string, args: string[]): boolean {
  try {
    sh(cmd, args);
    return true;
  } catch {
    return false;
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** Why hosts cannot be simulated here (one line), or null when they can. */
export function hostsUnavailable(opts: { loss?: boolean } = {}): string | null {
  if (process.platform !== 'linux') return 'simulated hosts need Linux network namespaces';
  if (process.getuid?.() !== 0) return 'simulated hosts need root (ip netns, tc, nft)';
  for (const tool of ['ip', 'tc', ...(opts.loss ? ['nft'] : [])]) {
    if (!quiet(tool, ['-V'])) return `simulated hosts need the ${tool} command (apt-get install -y iproute2 nftables)`;
  }
  const probe = `${PREFIX}probe${process.pid}`;
  if (!quiet('ip', ['netns', 'add', probe])) return 'cannot create a network namespace here (ip netns add failed)';
  quiet('ip', ['netns', 'del', probe]);
  return null;
}

/** Remove namespaces, links and bridges left by harness processes that no longer run. */
export function sweepStale(): void {
  const names = sh('ip', ['netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0]);
  const links = sh('ip', ['-o', 'link', 'show'])
    .split('\n')
    .map((l) => l.split(': ')[1]?.split('@')[0] ?? '');
  for (const name of [...names, ...links]) {
    const m = new RegExp(`^${PREFIX}(\\d+)`).exec(name);
    if (!m || alive(Number(m[1]))) continue;
    if (names.includes(name)) quiet('ip', ['netns', 'del', name]);
    else quiet('ip', ['link', 'del', name]);
  }
}

export interface Host {
  name: string;
  /** The namespace, for `ip netns exec`. */
  netns: string;
  /** This host's address on the bridge. */
  ip: string;
  /** The interface inside the namespace. */
  dev: string;
  /** The bridge's end of the link (the switch port), in the machine's namespace. */
  port: string;
}

export interface LinkCounters {
  /** Bytes the host sent and received on its link. */
  txBytes: number;
  rxBytes: number;
  packets: number;
}

let instances = 0;

export class SimulatedHosts {
  readonly hosts = new Map<string, Host>();
  /** The machine's own address on the bridge. */
  readonly gatewayIp: string;
  private readonly id: string;
  private readonly bridge: string;
  private readonly subnet: string;
  private readonly children = new Set<ChildProcess>();
  private destroyed = false;
  private readonly onExit = () => this.destroy();

  /** Create the bridge and one namespace per name. */
  constructor(names: string[]) {
    if (names.length > 200) throw new Error('at most 200 simulated hosts');
    sweepStale();
    // pid, then two letters: unique among this process's harnesses (tests may run side by side);
    // interface names stay within Linux's 15 characters.
    const taken = sh('ip', ['netns', 'list']) + sh('ip', ['-o', 'link', 'show']);
    const letter = () => String.fromCharCode(97 + Math.floor(Math.random() * 26));
    let id: string;
    do id = `${PREFIX}${process.pid}${letter()}${letter()}`;
    while (taken.includes(id));
    this.id = id;
    instances++;
    // A /24 picked from the pid, clear of the machine's own addresses.
    const used = sh('ip', ['-4', '-o', 'addr', 'show']);
    let third = (process.pid * 7 + instances * 13) % 250;
    while (used.includes(`10.77.${third}.`)) third = (third + 1) % 250;
    this.subnet = `10.77.${third}`;
    this.gatewayIp = `${this.subnet}.1`;
    this.bridge = `${this.id}br`;
    process.once('exit', this.onExit);
    try {
      sh('ip', ['link', 'add', this.bridge, 'type', 'bridge']);
      sh('ip', ['addr', 'add', `${this.gatewayIp}/24`, 'dev', this.bridge]);
      sh('ip', ['link', 'set', this.bridge, 'up']);
      names.forEach((name, i) => {
        this.addHost(name, i);
      });
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  private addHost(name: string, i: number): void {
    const netns = `${this.id}-${name}`;
    const port = `${this.id}${i}`;
    const host: Host = { name, netns, ip: `${this.subnet}.${i + 10}`, dev: 'eth0', port };
    sh('ip', ['netns', 'add', netns]);
    this.hosts.set(name, host);
    sh('ip', ['link', 'add', port, 'type', 'veth', 'peer', 'name', host.dev, 'netns', netns]);
    sh('ip', ['link', 'set', port, 'master', this.bridge]);
    sh('ip', ['link', 'set', port, 'up']);
    const inNs = (...args: string[]) => sh('ip', ['-n', netns, ...args]);
    inNs('addr', 'add', `${host.ip}/24`, 'dev', host.dev);
    inNs('link', 'set', host.dev, 'up');
    inNs('link', 'set', 'lo', 'up');
  }

  host(name: string): Host {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`no simulated host ${name}`);
    return h;
  }

  /** Run a command inside a host's namespace (killed by destroy() if still running). */
  spawn(name: string, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const c = spawn('ip', ['netns', 'exec', this.host(name).netns, cmd, ...args], opts);
    this.children.add(c);
    c.once('exit', () => this.children.delete(c));
    return c;
  }

  /**
   * Cap the host's link at `rate` (tc syntax: 100mbit, 1gbit) each way: tbf on the egress of
   * the host's interface (upload) and of the switch port (download). null removes the cap.
   */
  cap(name: string, rate: string | null): void {
    const h = this.host(name);
    const bitsPerSec = rate === null ? 0 : parseRate(rate);
    // Burst: 2 ms at the rate, and at least one 64 KiB segment (veth passes GSO packets).
    const burst = String(Math.max(64 << 10, Math.ceil((bitsPerSec / 8) * 0.002)));
    for (const [ns, dev] of [
      [h.netns, h.dev],
      [null, h.port],
    ] as const) {
      if (rate === null) runTc(ns, ['qdisc', 'del', 'dev', dev, 'root'], true);
      else
        runTc(
          ns,
          ['qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', rate, 'burst', burst, 'latency', '50ms'],
          false,
        );
    }
  }

  /** Drop `percent` of the packets the host sends and receives, at random (0 removes the rule). */
  loss(name: string, percent: number): void {
    const h = this.host(name);
    const table = LOSS_TABLE;
    quiet('ip', ['netns', 'exec', h.netns, 'nft', 'delete', 'table', 'inet', table]);
    if (percent <= 0) return;
    const p = Math.round(percent);
    const rules = [
      `table inet ${table} {`,
      `  chain in { type filter hook input priority 0; policy accept; numgen random mod 100 < ${p} counter drop; }`,
      `  chain out { type filter hook output priority 0; policy accept; numgen random mod 100 < ${p} counter drop; }`,
      '}',
    ].join('\n');
    sh('ip', ['netns', 'exec', h.netns, 'nft', '-f', '-'], rules);
  }

  /** Packets the loss rules have dropped so far (both directions). */
  dropped(name: string): number {
    const table = quietOut('ip', ['netns', 'exec', this.host(name).netns, 'nft', 'list', 'table', 'inet', LOSS_TABLE]);
    return [...table.matchAll(/counter packets (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
  }

  /** Pull the host's cable (its switch port goes down: nothing passes, nobody is told). */
  unplug(name: string): void {
    sh('ip', ['link', 'set', this.host(name).port, 'down']);
  }

  plug(name: string): void {
    sh('ip', ['link', 'set', this.host(name).port, 'up']);
  }

  /** Bytes on the host's link so far (read from its interface inside the namespace). */
  counters(name: string): LinkCounters {
    const h = this.host(name);
    const read = (what: string) =>
      Number(sh('ip', ['netns', 'exec', h.netns, 'cat', `/sys/class/net/${h.dev}/statistics/${what}`]).trim());
    return { txBytes: read('tx_bytes'), rxBytes: read('rx_bytes'), packets: read('tx_packets') + read('rx_packets') };
  }

  /** Kill what runs in the hosts, remove the namespaces, links and bridge. Idempotent. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    process.off('exit', this.onExit);
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const h of this.hosts.values()) {
      // Processes still in a namespace (started by others) keep it alive after `netns del`.
      const pids = quietOut('ip', ['netns', 'pids', h.netns]).split('\n').filter(Boolean).map(Number);
      for (const pid of pids) if (pid !== process.pid) quietKill(pid);
      quiet('ip', ['link', 'del', h.port]);
      quiet('ip', ['netns', 'del', h.netns]);
    }
    quiet('ip', ['link', 'del', this.bridge]);
  }
}

function runTc(ns: string | null, args: string[], tolerant: boolean): void {
  const full = ns ? ['netns', 'exec', ns, 'tc', ...args] : args;
  const cmd = ns ? 'ip' : 'tc';
  if (tolerant) quiet(cmd, full);
  else sh(cmd, full);
}

function quietOut(cmd: string, args: string[]): string {
  try {
    return sh(cmd, args);
  } catch {
    return '';
  }
}

function quietKill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone already
  }
}

/** tc rate syntax (kbit, mbit, gbit; bits per second) to bits per second. */
export function parseRate(rate: string): number {
  const m = /^(\d+(?:\.\d+)?)(kbit|mbit|gbit|bit)$/.exec(rate);
  if (!m) throw new Error(`rate ${rate}: use e.g. 100mbit or 1gbit`);
  return Number(m[1]) * { bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9 }[m[2] as 'bit' | 'kbit' | 'mbit' | 'gbit'];
}

/** The machine's load average over the last minute (for reports: figures taken under load). */
export function loadAverage(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}
