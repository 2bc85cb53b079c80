/**
 * The floor under dptrain's wire time on this machine: a payload of `bytes` sent between two
 * processes over loopback TCP with plain sockets (no WebSocket framing, no codec). Medians of
 * 20 transfers each way, timed on the one clock both processes share (performance.timeOrigin).
 */
import { fork } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const ROUNDS = 20;
const now = () => performance.timeOrigin + performance.now();

/** Child side: receive `bytes`, stamp the time the last byte came, send a payload back. */
function echoChild(port: number, bytes: number): void {
  const s = net.connect(port, '127.0.0.1');
  s.setNoDelay(true);
  const reply = Buffer.alloc(bytes, 2);
  let got = 0;
  s.on('data', (d) => {
    got += d.length;
    if (got < bytes) return;
    got = 0;
    reply.writeDoubleLE(now(), 0); // when the whole payload was in
    reply.writeDoubleLE(now(), 8); // when the reply leaves
    s.write(reply);
  });
}

export function loopbackFloorMs(bytes: number): Promise<{ down: number; roundTrip: number }> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((s) => {
      s.setNoDelay(true);
      const payload = Buffer.alloc(bytes, 1);
      const down: number[] = [];
      const trips: number[] = [];
      let t0 = 0;
      let got = 0;
      let head: Buffer | null = null;
      const send = () => {
        t0 = now();
        s.write(payload);
      };
      s.on('data', (d) => {
        head ??= d;
        got += d.length;
        if (got < bytes) return;
        const t = now();
        down.push(head.readDoubleLE(0) - t0);
        trips.push(t - t0);
        got = 0;
        head = null;
        if (down.length < ROUNDS) return send();
        const med = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1];
        child.kill();
        server.close();
        resolve({ down: med(down), roundTrip: med(trips) });
      });
      send();
    });
    let child: ReturnType<typeof fork>;
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      child = fork(fileURLToPath(import.meta.url), ['--loopback-child', String(port), String(bytes)]);
      child.on('error', reject);
    });
  });
}

if (process.argv[2] === '--loopback-child') echoChild(Number(process.argv[3]), Number(process.argv[4]));
