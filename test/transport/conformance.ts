/**
 * The transport contract, run against every implementation (local, WebSocket). The training
 * loops rely on exactly this: frames arrive whole and in order, a close reaches the other
 * side once with its reason, and nothing throws after a close.
 */
import { describe, expect, it } from 'vitest';
import { CLOSE_CODES, type CloseKind, type Dial, type Link, type Listener } from '../../shared/transport/transport.js';

export interface TransportUnderTest {
  name: string;
  open(): Promise<{ listener: Listener; dial: Dial }>;
}

function nextLink(listener: Listener): Promise<Link> {
  return new Promise((resolve) => listener.onLink(resolve));
}

function collect(link: Link, n: number): Promise<Uint8Array[]> {
  const got: Uint8Array[] = [];
  return new Promise((resolve) =>
    link.onFrame((f) => {
      got.push(new Uint8Array(f)); // own copy
      if (got.length === n) resolve(got);
    }),
  );
}

function closed(link: Link): Promise<string> {
  return new Promise((resolve) => link.onClose(resolve));
}

function frameOf(i: number, size: number): Uint8Array {
  const f = new Uint8Array(size);
  for (let k = 0; k < size; k++) f[k] = (i * 31 + k) & 0xff;
  return f;
}

async function pair(t: TransportUnderTest) {
  const { listener, dial } = await t.open();
  const serverSide = nextLink(listener);
  const client = await dial();
  const server = await serverSide;
  return { listener, client, server };
}

export function transportConformance(t: TransportUnderTest): void {
  describe(`transport conformance: ${t.name}`, () => {
    it('delivers frames whole, byte-exact and in order, both ways', async () => {
      const { listener, client, server } = await pair(t);
      const sizes = [1, 7, 8, 4096, 65537, 3, 100_000];
      const atServer = collect(server, sizes.length);
      const atClient = collect(client, sizes.length);
      sizes.forEach((s, i) => {
        client.send(frameOf(i, s));
      });
      sizes.forEach((s, i) => {
        server.send(frameOf(i + 100, s));
      });
      const [a, b] = await Promise.all([atServer, atClient]);
      expect(a.map((f) => f.length)).toEqual(sizes);
      a.forEach((f, i) => {
        expect(f).toEqual(frameOf(i, sizes[i]));
      });
      b.forEach((f, i) => {
        expect(f).toEqual(frameOf(i + 100, sizes[i]));
      });
      await listener.close();
    });

    it('delivers a 16 MiB frame', async () => {
      const { listener, client, server } = await pair(t);
      const big = frameOf(5, 16 << 20);
      const got = collect(server, 1);
      client.send(big);
      const [f] = await got;
      expect(f.length).toBe(big.length);
      expect(Buffer.compare(Buffer.from(f), Buffer.from(big))).toBe(0);
      await listener.close();
    });

    it('a close reaches the other side once, with its reason; frames sent before it arrive first', async () => {
      const { listener, client, server } = await pair(t);
      const got = collect(server, 2);
      let serverCloses = 0;
      const reason = new Promise<string>((resolve) =>
        server.onClose((r) => {
          serverCloses++;
          resolve(r);
        }),
      );
      const clientReason = closed(client);
      client.send(frameOf(1, 10));
      client.send(frameOf(2, 10));
      const frames = await got;
      client.close('worker leaving');
      client.close('twice');
      expect(frames).toHaveLength(2);
      expect(await reason).toBe('worker leaving');
      expect(await clientReason).toBe('worker leaving');
      await new Promise((r) => setTimeout(r, 50));
      expect(serverCloses).toBe(1);
      await listener.close();
    });

    it('server-side close carries its reason to the client', async () => {
      const { listener, client, server } = await pair(t);
      const reason = closed(client);
      server.close('invalid message: bad frame');
      expect(await reason).toBe('invalid message: bad frame');
      await listener.close();
    });

    it('every close kind reaches the other side as sent; the closing side sees its own at once', async () => {
      const kinds = Object.keys(CLOSE_CODES) as CloseKind[];
      for (const kind of kinds) {
        const { listener, client, server } = await pair(t);
        const atClient = new Promise<[string, CloseKind]>((resolve) => client.onClose((r, k) => resolve([r, k])));
        let mine: CloseKind | null = null;
        server.onClose((_r, k) => (mine = k));
        server.close(`closing as ${kind}`, kind);
        expect(mine).toBe(kind); // synchronously, before any handshake
        expect(await atClient).toEqual([`closing as ${kind}`, kind]);
        await listener.close();
      }
    });

    it('a close without a kind is normal', async () => {
      const { listener, client, server } = await pair(t);
      const atServer = new Promise<CloseKind>((resolve) => server.onClose((_r, k) => resolve(k)));
      client.close('done');
      expect(await atServer).toBe('normal');
      await listener.close();
    });

    it('send after close is a silent no-op', async () => {
      const { listener, client, server } = await pair(t);
      const done = closed(server);
      client.close('bye');
      await done;
      expect(() => client.send(frameOf(0, 4))).not.toThrow();
      expect(() => server.send(frameOf(0, 4))).not.toThrow();
      await listener.close();
    });

    it('closing the listener closes open links', async () => {
      const { listener, client } = await pair(t);
      const reason = closed(client);
      await listener.close();
      expect(typeof (await reason)).toBe('string');
    });

    it('serves several links independently', async () => {
      const { listener, dial } = await t.open();
      const links: Link[] = [];
      listener.onLink((l) => {
        links.push(l);
        l.onFrame((f) => l.send(f)); // echo
      });
      const clients = await Promise.all([dial(), dial(), dial()]);
      const echoes = clients.map((c) => collect(c, 1));
      clients.forEach((c, i) => {
        c.send(frameOf(i, 10 + i));
      });
      const got = await Promise.all(echoes);
      got.forEach(([f], i) => {
        expect(f).toEqual(frameOf(i, 10 + i));
      });
      expect(links).toHaveLength(3);
      await listener.close();
    });
  });
}
