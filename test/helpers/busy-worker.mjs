// A worker process for the heartbeat tests (test/transport/ws.test.ts): it dials, holds its
// thread for BUSY_MS as a long shard does, then sends one frame and says on stdout whether its
// link was still open. Loads the build (dist/), as a worker process runs.
import { dialWs } from '../../dist/worker/ws-dialer.js';

const [url, busyMs, silenceMs] = process.argv.slice(2);
const link = await dialWs(url, 1 << 20, { silenceMs: Number(silenceMs) });
let closed = false;
link.onClose(() => {
  closed = true;
});
link.onFrame(() => {});
await new Promise((r) => setTimeout(r, 300));
const t = Date.now();
while (Date.now() - t < Number(busyMs)) {} // the shard
await new Promise((r) => setTimeout(r, 300));
if (!closed) link.send(new Uint8Array([1, 2, 3]));
process.stdout.write(`open after the shard: ${!closed}\n`);
await new Promise((r) => setTimeout(r, 300));
process.exit(0);
