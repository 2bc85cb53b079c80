/**
 * Joining is by invitation: the job token (HMAC challenge-response, both ways), the job id,
 * the protocol version; a coordinator beyond loopback needs a token; TLS with a private CA.
 * Each refusal is one line on the worker with a documented exit status.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import WebSocket, { WebSocketServer } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { Coordinator } from '../../coordinator/coordinator.js';
import { listenWs, type WsListenerOptions } from '../../coordinator/ws-listener.js';
import { encodeFrame } from '../../shared/wire/codec.js';
import { parseConfig } from '../../shared/job/config.js';
import { PROTOCOL_VERSION } from '../../shared/wire/protocol.js';
import type { Listener } from '../../shared/transport/transport.js';
import { CLI, hasOpenssl, runCli, selfSignedCert, tempDir } from '../helpers/cli.js';

const TOKEN = 'a-test-token-of-sufficient-length-123';
const JOB = {
  data: { name: 'spirals', samples: 200 },
  model: { layers: [{ units: 8, activation: 'relu' }, { units: 2 }], loss: 'softmaxCrossEntropy' },
  steps: 5,
  batchSize: 20,
  evalEvery: 0,
  workers: 1,
};

interface Running {
  listener: Listener;
  coord: Coordinator;
  run: Promise<unknown>;
}

const open: Running[] = [];
afterEach(async () => {
  for (const r of open.splice(0)) {
    r.coord.abort(new Error('test over'));
    await r.run.catch(() => {});
    await r.listener.close();
  }
});

async function coordinator(
  token: string | null,
  extra: Partial<WsListenerOptions> = {},
  authTimeoutMs?: number,
): Promise<Running> {
  const listener = await listenWs({ host: '127.0.0.1', port: 0, maxPayload: 1 << 20, ...extra });
  const coord = new Coordinator({
    config: parseConfig(JOB),
    listener,
    log: pino({ level: 'silent' }),
    runDir: null,
    token,
    authTimeoutMs,
  });
  const r = { listener, coord, run: coord.run() };
  open.push(r);
  return r;
}

function worker(
  address: string,
  env: Record<string, string | undefined>,
  args: string[] = [],
): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const e = { ...process.env, ...env };
    if (env.DPTRAIN_TOKEN === undefined) delete e.DPTRAIN_TOKEN;
    const c = spawn(
      process.execPath,
      [CLI, 'worker', '--connect', address, '--backend', 'cpu', '--connect-timeout', '5', ...args],
      { env: e, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    c.stderr!.on('data', (d) => (stderr += String(d)));
    c.on('exit', (code) => resolve({ code, stderr }));
  });
}

const lastLine = (s: string) =>
  s
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('dptrain:'))
    .join('\n');

describe('job token', () => {
  it('a worker with the token trains; the run completes', async () => {
    const c = await coordinator(TOKEN);
    const w = await worker(c.listener.address, { DPTRAIN_TOKEN: TOKEN });
    expect(w.code).toBe(0);
    expect(((await c.run) as { steps: number }).steps).toBe(5);
  });

  it('a wrong token: exit 3, one line', async () => {
    const c = await coordinator(TOKEN);
    const w = await worker(c.listener.address, { DPTRAIN_TOKEN: 'not-the-right-token-at-all-000' });
    expect(w.code).toBe(3);
    expect(lastLine(w.stderr)).toBe(
      "dptrain: AUTH_FAILED: authentication failed: the job token does not match the coordinator's",
    );
  });

  it('no token at all: exit 3, saying the coordinator requires one', async () => {
    const c = await coordinator(TOKEN);
    const w = await worker(c.listener.address, { DPTRAIN_TOKEN: undefined });
    expect(w.code).toBe(3);
    expect(lastLine(w.stderr)).toBe(
      'dptrain: AUTH_FAILED: authentication failed: this coordinator requires the job token; the worker has none (--token-file FILE or DPTRAIN_TOKEN)',
    );
  });

  it('an empty --token-file: exit 2 before connecting, naming the file', async () => {
    const empty = join(tempDir('empty-token'), 'job.token');
    writeFileSync(empty, '\n');
    const w = await worker('ws://127.0.0.1:9', { DPTRAIN_TOKEN: undefined }, ['--token-file', empty]);
    expect(w.code).toBe(2);
    expect(lastLine(w.stderr)).toBe(
      `dptrain: CONFIG_INVALID: --token-file ${empty} is empty; put the job token in it (dptrain token > FILE)`,
    );
  });

  it('a coordinator without a token is refused by a worker that has one: exit 3, saying so', async () => {
    const c = await coordinator(null);
    const w = await worker(c.listener.address, { DPTRAIN_TOKEN: TOKEN });
    expect(w.code).toBe(3);
    expect(lastLine(w.stderr)).toMatch(/this worker has a job token, the coordinator runs without one/);
  });

  it('the wrong job: exit 5, naming both', async () => {
    const c = await coordinator(TOKEN);
    const w = await worker(c.listener.address, { DPTRAIN_TOKEN: TOKEN }, ['--job', 'job-other']);
    expect(w.code).toBe(5);
    expect(lastLine(w.stderr)).toMatch(
      /^dptrain: WRONG_JOB: wrong job: the coordinator runs job-[0-9a-f]{16}-s42, this worker was started for job-other$/,
    );
  });

  it('a coordinator speaking another protocol version: exit 4', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => wss.once('listening', r));
    wss.on('connection', (ws) => ws.send(encodeFrame({ t: 'challenge', protocol: 99, jobId: 'j', nonce: 'n' })));
    const w = await worker(`ws://127.0.0.1:${(wss.address() as { port: number }).port}`, { DPTRAIN_TOKEN: TOKEN });
    wss.close();
    expect(w.code).toBe(4);
    expect(lastLine(w.stderr)).toMatch(
      new RegExp(`protocol mismatch: the coordinator speaks v99, this worker v${PROTOCOL_VERSION};`),
    );
  });

  it('the token never crosses the wire', async () => {
    const c = await coordinator(TOKEN);
    // Record every byte a real worker sends by sitting between it and the coordinator.
    const seen: Buffer[] = [];
    const relay = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => relay.once('listening', r));
    relay.on('connection', (down) => {
      const up = new WebSocket(c.listener.address);
      const queue: Buffer[] = [];
      up.on('open', () =>
        queue.splice(0).forEach((b) => {
          up.send(b);
        }),
      );
      down.on('message', (b: Buffer) => {
        seen.push(b);
        if (up.readyState === up.OPEN) up.send(b);
        else queue.push(b);
      });
      up.on('message', (b: Buffer) => down.send(b));
      up.on('close', () => down.close());
      down.on('close', () => up.close());
    });
    const w = await worker(`ws://127.0.0.1:${(relay.address() as { port: number }).port}`, { DPTRAIN_TOKEN: TOKEN });
    relay.close();
    expect(w.code).toBe(0);
    const all = Buffer.concat(seen);
    expect(all.length).toBeGreaterThan(1000);
    expect(all.includes(Buffer.from(TOKEN))).toBe(false);
    expect(all.includes(Buffer.from(TOKEN.slice(0, 12)))).toBe(false);
  });

  it('dptrain token prints a fresh 256-bit token each time', async () => {
    const [a, b] = [await runCli(['token']), await runCli(['token'])];
    expect(a.stdout.trim()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(a.stdout).not.toBe(b.stdout);
  });
});

describe('listening', () => {
  it('beyond loopback without a token is refused before anything starts (exit 2)', async () => {
    const out = join(tempDir('listen'), 'run');
    const r = await runCli(['coordinator', '--listen', '0.0.0.0:0', '--out', out], 20_000);
    expect(r.code).toBe(2);
    expect(lastLine(r.stderr)).toBe(
      'dptrain: CONFIG_INVALID: --listen 0.0.0.0: listening beyond this machine needs a job token; set DPTRAIN_TOKEN or --token-file (dptrain token makes one)',
    );
    expect(existsSync(out)).toBe(false);
  });

  it('strangers cannot fill the job: maxWorkers counts authenticated workers only', async () => {
    const listener = await listenWs({ host: '127.0.0.1', port: 0, maxPayload: 1 << 20 });
    const coord = new Coordinator({
      config: parseConfig({ ...JOB, maxWorkers: 1 }),
      listener,
      log: pino({ level: 'silent' }),
      runDir: null,
      token: TOKEN,
    });
    const r = { listener, coord, run: coord.run() };
    open.push(r);
    const strangers = Array.from({ length: 3 }, () => new WebSocket(listener.address));
    await Promise.all(strangers.map((s) => new Promise((res) => s.once('open', res))));
    const w = await worker(listener.address, { DPTRAIN_TOKEN: TOKEN });
    expect(w.code).toBe(0);
    strangers.forEach((s) => {
      s.terminate();
    });
  });

  it('a connection that does not authenticate in time is closed; unauthenticated connections are capped', async () => {
    const c = await coordinator(TOKEN, {}, 400);
    const socks = Array.from({ length: 20 }, () => new WebSocket(c.listener.address));
    const reasons = await Promise.all(
      socks.map((s) => new Promise<string>((r) => s.on('close', (_code, why) => r(String(why))))),
    );
    expect(reasons.filter((r) => r.startsWith('too many unauthenticated connections'))).toHaveLength(4);
    expect(reasons.filter((r) => r.startsWith('authentication timeout'))).toHaveLength(16);
  });
});

describe('TLS', () => {
  it.skipIf(!hasOpenssl)(
    'wss:// with a self-signed certificate: a worker with --ca trains, one without is refused with a TLS line',
    async () => {
      // The command the README documents (a year's certificate).
      const { cert, key } = selfSignedCert('tls', 365);
      const c = await coordinator(TOKEN, { tls: { cert: readFileSync(cert), key: readFileSync(key) } });
      expect(c.listener.address).toMatch(/^wss:\/\//);
      const refused = await worker(c.listener.address, { DPTRAIN_TOKEN: TOKEN }, ['--connect-timeout', '1']);
      expect(refused.code).toBe(1);
      expect(lastLine(refused.stderr)).toMatch(/TLS: .*self.signed.*give the coordinator's certificate with --ca/i);
      const ok = await worker(c.listener.address, { DPTRAIN_TOKEN: TOKEN }, ['--ca', cert]);
      expect(ok.code).toBe(0);
    },
  );
});
