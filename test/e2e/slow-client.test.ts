/**
 * Clients that trickle bytes or announce huge frames cannot hold the coordinator or make it
 * buffer: the HTTP upgrade has a deadline, authentication has a deadline, and a frame longer
 * than maxPayload is refused from its header, before any of it is buffered.
 */
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Coordinator } from '../../coordinator/coordinator.js';
import { listenWs } from '../../coordinator/ws-listener.js';
import { parseConfig } from '../../shared/job/config.js';
import { CLI } from '../helpers/cli.js';

const cfg = parseConfig({
  data: { name: 'spirals', samples: 300 },
  model: { layers: [{ units: 8, activation: 'relu' }, { units: 2 }], loss: 'softmaxCrossEntropy' },
  steps: 150,
  batchSize: 30,
  evalEvery: 0,
  workers: 1,
});

const UPGRADE = (port: number) =>
  `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ` +
  `dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;

/** Resolves with ms until the server closed the socket. */
function closedAfter(sock: Socket): Promise<number> {
  const t0 = Date.now();
  sock.on('error', () => {}); // EPIPE/ECONNRESET once the server has cut us: expected
  sock.resume(); // read (and drop) what the server sends, so its end of the stream is seen
  return new Promise((r) => sock.on('close', () => r(Date.now() - t0)));
}

/** Write `bytes` one at a time, `gapMs` apart, until done or the socket closes. */
function trickle(sock: Socket, bytes: Buffer, gapMs: number): void {
  let i = 0;
  const t = setInterval(() => {
    if (i >= bytes.length || sock.destroyed) return clearInterval(t);
    sock.write(bytes.subarray(i, ++i));
  }, gapMs);
}

describe('slow and greedy clients', () => {
  it('one byte at a time, before and after the upgrade, and a 1 TB frame header: all cut, the run unaffected', async () => {
    const listener = await listenWs({ host: '127.0.0.1', port: 0, maxPayload: 1 << 20, headersTimeoutMs: 1000 });
    const port = Number(listener.address.split(':').pop());
    const coord = new Coordinator({
      config: cfg,
      listener,
      log: pino({ level: 'silent' }),
      runDir: null,
      authTimeoutMs: 1000,
    });
    const run = coord.run();
    const worker = spawn(process.execPath, [CLI, 'worker', '--connect', listener.address, '--backend', 'cpu'], {
      stdio: 'ignore',
    });
    const workerExit = new Promise((r) => worker.on('exit', r));
    const rssBefore = process.memoryUsage().rss;

    // 1. Slow-loris on the HTTP upgrade: a byte every 100 ms would take ~20 s.
    const loris = connect(port, '127.0.0.1');
    const lorisClosed = closedAfter(loris);
    loris.on('connect', () => trickle(loris, Buffer.from(UPGRADE(port)), 100));

    // 2. Upgraded at once, then a frame one byte at a time: never authenticates.
    const drip = connect(port, '127.0.0.1');
    const dripClosed = closedAfter(drip);
    drip.on('connect', () => {
      drip.write(UPGRADE(port));
      // A masked binary frame announcing 65,535 bytes, delivered one byte per 50 ms.
      const head = Buffer.from([0x82, 0xfe, 0xff, 0xff, 1, 2, 3, 4]);
      setTimeout(() => trickle(drip, Buffer.concat([head, Buffer.alloc(1000)]), 50), 50);
    });

    // 3. A frame header claiming 2^40 bytes: refused from the header alone.
    const greedy = connect(port, '127.0.0.1');
    const greedyClosed = closedAfter(greedy);
    greedy.on('connect', () => {
      greedy.write(UPGRADE(port));
      const len = Buffer.alloc(8);
      len.writeBigUInt64BE(1n << 40n);
      setTimeout(
        () =>
          greedy.write(Buffer.concat([Buffer.from([0x82, 0xff]), len, Buffer.from([1, 2, 3, 4]), Buffer.alloc(4096)])),
        50,
      );
    });

    const [lorisMs, dripMs, greedyMs] = await Promise.all([lorisClosed, dripClosed, greedyClosed]);
    expect(lorisMs).toBeLessThan(5000); // headers deadline 1 s (+ Node's check interval)
    expect(dripMs).toBeLessThan(5000); // authentication deadline 1 s, then 2 s for a close handshake it never answers
    expect(greedyMs).toBeLessThan(1000); // maxPayload checked on the header
    const summary = await run;
    await listener.close();
    expect(await workerExit).toBe(0);
    expect(summary.steps).toBe(150);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(200 << 20); // nothing near 1 TB was buffered
  }, 60_000);
});
