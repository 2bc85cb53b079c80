/** The fault proxy of the simulated-host tests, on loopback: delay, order, stalls, resets. */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { FaultProxy } from '../../scripts/hosts/proxy.js';

let echo: Server;
let proxy: FaultProxy;
const clients: Socket[] = [];

async function setup(delayMs: number, jitterMs = 0): Promise<number> {
  echo = createServer((s) => {
    s.on('error', () => {}); // the proxy resets its side when a test ends
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const targetPort = (echo.address() as { port: number }).port;
  proxy = new FaultProxy({ listenHost: '127.0.0.1', targetHost: '127.0.0.1', targetPort, delayMs, jitterMs });
  return proxy.listen();
}

function client(port: number): Promise<Socket> {
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1', () => resolve(c));
    c.setNoDelay(true);
    clients.push(c);
  });
}

/** Bytes echoed back until `n` have arrived. */
function received(c: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let got = 0;
    const on = (d: Buffer) => {
      parts.push(d);
      got += d.length;
      if (got >= n) {
        c.off('data', on);
        resolve(Buffer.concat(parts));
      }
    };
    c.on('data', on);
  });
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await proxy?.close();
  await new Promise((r) => echo?.close(r));
});

describe('FaultProxy', () => {
  it('adds its delay each way: an echo takes at least twice the delay', async () => {
    const port = await setup(60);
    const c = await client(port);
    const t0 = Date.now();
    const back = received(c, 5);
    c.write('hello');
    expect((await back).toString()).toBe('hello');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(115);
    expect(proxy.stats).toMatchObject({ connections: 1, bytesUp: 5, bytesDown: 5 });
  });

  it('keeps order under jitter', async () => {
    const port = await setup(5, 40);
    const c = await client(port);
    const chunks = Array.from({ length: 40 }, (_, i) => `<${i}>`);
    const expected = chunks.join('');
    const back = received(c, expected.length);
    for (const ch of chunks) {
      c.write(ch);
      await new Promise((r) => setTimeout(r, 2));
    }
    expect((await back).toString()).toBe(expected);
  });

  it('holds bytes while paused and delivers them on resume; the connection stays open', async () => {
    const port = await setup(0);
    const c = await client(port);
    proxy.pause();
    let got = '';
    c.on('data', (d: Buffer) => (got += d.toString()));
    c.write('stalled');
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toBe('');
    proxy.resume();
    await new Promise((r) => setTimeout(r, 200));
    expect(got).toBe('stalled');
    expect(c.destroyed).toBe(false);
  });

  it('reset cuts every connection with an RST', async () => {
    const port = await setup(0);
    const c = await client(port);
    const echoed = received(c, 2);
    c.write('hi');
    await echoed;
    const error = new Promise<NodeJS.ErrnoException>((r) => c.once('error', r));
    proxy.reset();
    expect((await error).code).toBe('ECONNRESET');
    expect(proxy.stats.resets).toBe(1);
  });
});
