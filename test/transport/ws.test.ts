import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { CLOSE_GRACE_MS, HANDSHAKE_MAX_FRAME, listenWs } from '../../coordinator/ws-listener.js';
import { isDptrainError } from '../../shared/util/errors.js';
import { dialWs } from '../../worker/ws-dialer.js';
import { heldFor, holdPing, setFrameLimit } from '../../shared/transport/ws-link.js';
import { hasOpenssl, selfSignedCert } from '../helpers/cli.js';
import type { Link } from '../../shared/transport/transport.js';
import { transportConformance } from './conformance.js';
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

/** A worker process that holds its thread for a shard (test/helpers/busy-worker.mjs). */
const BUSY_WORKER = resolve(__dirname, '../helpers/busy-worker.mjs');
const HOLDING_COORDINATOR = resolve(__dirname, '../helpers/holding-coordinator.mjs');

const MAX = 64 << 20;

transportConformance({
  name: 'websocket',
  open: async () => {
    // The contract's own frame sizes: no handshake cap (that is a separate test below).
    const listener = await listenWs({ host: '127.0.0.1', port: 0, maxPayload: MAX, handshakeMaxFrame: 0 });
    return { listener, dial: () => dialWs(listener.address, MAX) };
  },
});

describe('websocket transport specifics', () => {
  it('refuses a frame over maxPayload by closing the connection', async () => {
    const listener = await listenWs({ host: '127.0.0.1', port: 0, maxPayload: 1024 });
    const got: Uint8Array[] = [];
    const serverClosed = new Promise<string>((resolve) =>
      listener.onLink((l) => {
        l.onFrame((f) => got.push(f));
        l.onClose(resolve);
      }),
    );
    const client = await dialWs(listener.address, MAX);
    client.send(new Uint8Array(4096));
    expect(await serverClosed).toMatch(/max|payload|1009/i);
    expect(got).toHaveLength(0);
    await listener.close();
  });

  it('closes a peer that sends a text frame', async () => {
    const listener = await listenWs({ host: '127.0.0.1', port: 0, maxPayload: MAX });
    const reason = new Promise<string>((resolve) => listener.onLink((l) => l.onClose(resolve)));
    const ws = new WebSocket(listener.address);
    await new Promise((r) => ws.once('open', r));
    ws.send('hello as text');
    expect(await reason).toMatch(/text frames/);
    await listener.close();
  });

  it('a text frame ends the link on our side at once (kind invalid), not when the peer answers the close', async () => {
    const listener = await listenWs({ host: '127.0.0.1', port: 0, maxPayload: MAX });
    const closedAt = new Promise<[number, string]>((resolve) =>
      listener.onLink((l) => l.onClose((_r, k) => resolve([Date.now(), k]))),
    );
    const ws = new WebSocket(listener.address);
    await new Promise((r) => ws.once('open', r));
    // A peer that never completes the close handshake: its socket stops reading.
    const raw = (ws as unknown as { _socket: import('node:net').Socket })._socket;
    const sent = Date.now();
    ws.send('text', () => raw.pause());
    const [at, kind] = await closedAt;
    expect(kind).toBe('invalid');
    expect(at - sent).toBeLessThan(500); // the peer's close would take up to 2 s (then terminate)
    ws.terminate();
    await listener.close();
  });

  it('close() ends within its grace period while a peer ignores the close and new clients trickle bytes', async () => {
    const listener = await listenWs({ host: '127.0.0.1', port: 0, maxPayload: MAX });
    listener.onLink(() => {});
    const port = Number(listener.address.split(':').pop());
    const stuck = new WebSocket(listener.address);
    await new Promise((r) => stuck.once('open', r));
    (stuck as unknown as { _socket: Socket })._socket.pause(); // never answers the close handshake
    const req = `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`;
    const socks: Socket[] = [];
    const flood = setInterval(() => {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => {});
      socks.push(s);
      let i = 0;
      const drip = setInterval(() => (s.destroyed || i >= req.length ? clearInterval(drip) : s.write(req[i++])), 100);
    }, 5);
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    const closing = listener.close();
    setTimeout(() => clearInterval(flood), 1500); // clients keep coming during the close
    await closing;
    const took = Date.now() - t0;
    clearInterval(flood);
    expect(took).toBeLessThan(CLOSE_GRACE_MS + 1000); // before the fix: as long as the trickling lasted
    const refused = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => r(true));
      s.on('connect', () => {
        s.destroy();
        r(false);
      });
    });
    expect(refused).toBe(true); // nothing accepted any more
    for (const s of socks) s.destroy();
    stuck.terminate();
  });

  it('before liftFrameCap a frame over the handshake cap closes the link; after it, model-sized frames pass', async () => {
    const listener = await listenWs({ host: '127.0.0.1', port: 0, maxPayload: MAX });
    const links: Link[] = [];
    listener.onLink((l) => links.push(l));
    const stranger = await dialWs(listener.address, MAX);
    const member = await dialWs(listener.address, MAX);
    await new Promise((r) => setTimeout(r, 50));
    const [strangerSide, memberSide] = links;
    const strangerClosed = new Promise<string>((r) => strangerSide.onClose(r));
    strangerSide.onFrame(() => {});
    stranger.send(new Uint8Array(HANDSHAKE_MAX_FRAME + 1));
    expect(await strangerClosed).toMatch(/max|payload|1009/i);
    memberSide.liftFrameCap!();
    const got = new Promise<number>((r) => memberSide.onFrame((f) => r(f.length)));
    member.send(new Uint8Array(4 << 20));
    expect(await got).toBe(4 << 20);
    await listener.close();
  });

  it("ws still keeps its frame limit where setFrameLimit expects it (ws's receiver internals)", async () => {
    const listener = await listenWs({ host: '127.0.0.1', port: 0, maxPayload: MAX });
    listener.onLink(() => {});
    const ws = new WebSocket(listener.address);
    await new Promise((r) => ws.once('open', r));
    expect(setFrameLimit(ws, 1234)).toBe(true);
    expect((ws as unknown as { _receiver: { _maxPayload: number } })._receiver._maxPayload).toBe(1234);
    ws.terminate();
    await listener.close();
  });

  it.skipIf(!hasOpenssl)(
    'over TLS, a client that never finishes its handshake is cut at the same deadline',
    async () => {
      const { cert, key } = selfSignedCert('tls', 1, false);
      const listener = await listenWs({
        host: '127.0.0.1',
        port: 0,
        maxPayload: MAX,
        headersTimeoutMs: 1000,
        tls: { cert: readFileSync(cert), key: readFileSync(key) },
      });
      listener.onLink(() => {});
      const port = Number(listener.address.split(':').pop());
      const sock = connect(port, '127.0.0.1');
      sock.on('error', () => {});
      sock.resume();
      const t0 = Date.now();
      sock.on('connect', () => sock.write(Buffer.from('160301020001', 'hex'))); // a ClientHello record header, and no more
      await new Promise((r) => sock.on('close', r));
      expect(Date.now() - t0).toBeLessThan(3000); // Node's own TLS handshake deadline is 120 s
      await listener.close();
    },
  );

  it('an unknown close code is a lost connection', async () => {
    const listener = await listenWs({ host: '127.0.0.1', port: 0, maxPayload: MAX });
    const kind = new Promise<string>((resolve) => listener.onLink((l) => l.onClose((_r, k) => resolve(k))));
    const ws = new WebSocket(listener.address);
    await new Promise((r) => ws.once('open', r));
    ws.close(4999, 'not one of ours');
    expect(await kind).toBe('lost');
    await listener.close();
  });

  it('a worker cuts a connection whose coordinator has gone silent (no pings), so it can reconnect', async () => {
    const listener = await listenWs({ host: '127.0.0.1', port: 0, maxPayload: MAX, heartbeatMs: 60_000 });
    listener.onLink(() => {});
    const client = await dialWs(listener.address, MAX, { silenceMs: 300 });
    const t0 = Date.now();
    const reason = await new Promise<string>((resolve) => client.onClose(resolve));
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(reason).toMatch(/1006/); // abnormal closure: terminated, not a close handshake
    await listener.close();
  });

  it('pings keep a quiet connection open', async () => {
    const listener = await listenWs({ host: '127.0.0.1', port: 0, maxPayload: MAX, heartbeatMs: 100 });
    listener.onLink(() => {});
    const client = await dialWs(listener.address, MAX, { silenceMs: 400 });
    let closed = false;
    client.onClose(() => (closed = true));
    await new Promise((r) => setTimeout(r, 1200));
    expect(closed).toBe(false);
    await listener.close();
  });

  // A worker process holds its thread for a whole shard and answers no ping meanwhile. The
  // coordinator pings every 100 ms here (so silence of ~400 ms is the idle limit).
  it.each([
    ['owes an answer: the coordinator waits for it', true, 90_000, true],
    ["owes nothing: the coordinator cuts it (a dead peer's silence)", false, 90_000, false],
    [
      'owes an answer, its own silence limit shorter than the shard: the pings read after the shard count',
      true,
      400,
      true,
    ],
  ])('a worker busy 1.5 s that %s', { timeout: 20_000 }, async (_, busy, silenceMs, kept) => {
    const listener = await listenWs({ host: '127.0.0.1', port: 0, maxPayload: MAX, heartbeatMs: 100 });
    let frames = 0;
    let cut = false;
    listener.onLink((l) => {
      if (busy) l.setBusy?.(true);
      l.onFrame(() => frames++);
      l.onClose(() => {
        cut ||= frames === 0;
      });
    });
    const child = spawn(process.execPath, [BUSY_WORKER, listener.address, '1500', String(silenceMs)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    await new Promise((r) => child.once('exit', r));
    expect(out.trim()).toBe(`open after the shard: ${kept}`);
    expect(frames).toBe(kept ? 1 : 0);
    expect(cut).toBe(!kept);
    await listener.close();
  });

  // The coordinator computes a shard of its own (--coordinator-worker) and sends no pings for
  // 1.5 s, against a worker's silence limit of 400 ms here.
  it.each([
    ['announced: the worker waits for it', true],
    ['not announced: the worker takes it for gone', false],
  ])('a coordinator holding its thread 1.5 s, %s', { timeout: 20_000 }, async (_, announce) => {
    const child = spawn(process.execPath, [HOLDING_COORDINATOR, String(announce), '1500'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const address = await new Promise<string>((resolve) =>
      child.stdout!.once('data', (b: Buffer) => resolve(b.toString().trim())),
    );
    const exited = new Promise((r) => child.once('exit', r));
    const link = await dialWs(address, MAX, { silenceMs: 400 });
    let frames = 0;
    link.onFrame(() => frames++);
    const reason = await new Promise<string>((resolve) => link.onClose(resolve));
    await exited;
    expect(frames).toBe(announce ? 1 : 0);
    if (announce) expect(reason).toMatch(/coordinator shut down/);
    else expect(reason).toMatch(/1006/); // cut by the worker, not closed by the coordinator
  });

  it('a hold ping carries its length; other ping data carries none', () => {
    expect(heldFor(holdPing(1_800_000))).toBe(1_800_000);
    expect(heldFor(Buffer.alloc(0))).toBe(0);
    expect(heldFor(Buffer.from('hold soon'))).toBe(0);
    expect(heldFor(Buffer.from('hold -5'))).toBe(0);
    expect(heldFor(Buffer.from('held 100'))).toBe(0);
  });

  it('an unreachable coordinator is one CONNECT_FAILED error naming the address', async () => {
    const listener = await listenWs({ host: '127.0.0.1', port: 0, maxPayload: MAX });
    const addr = listener.address;
    await listener.close();
    const err = await dialWs(addr, MAX).catch((e: unknown) => e);
    expect(isDptrainError(err, 'CONNECT_FAILED')).toBe(true);
    expect((err as Error).message).toContain(addr);
    expect((err as Error).message).not.toContain('\n');
  });
});
