// A coordinator process for the heartbeat tests (test/transport/ws.test.ts): once a worker has
// joined, it holds its thread for BUSY_MS as a shard computed inside the coordinator does
// (announcing it first when ANNOUNCE is "true"), then sends one frame. Prints its address.
import { listenWs } from '../../dist/coordinator/ws-listener.js';

const [announce, busyMs] = process.argv.slice(2);
const listener = await listenWs({ host: '127.0.0.1', port: 0, maxPayload: 1 << 20, heartbeatMs: 100 });
listener.onLink((link) => {
  link.onFrame(() => {});
  setTimeout(() => {
    if (announce === 'true') listener.holdingThread();
    const t = Date.now();
    while (Date.now() - t < Number(busyMs)) {} // the shard
    link.send(new Uint8Array([1, 2, 3]));
    setTimeout(async () => {
      await listener.close();
      process.exit(0);
    }, 300);
  }, 300);
});
process.stdout.write(`${listener.address}\n`);
