/**
 * A TCP proxy for network faults tc cannot make here (this kernel has no netem): it forwards
 * one port to a target and can add a delay (and jitter) to every chunk each way, stall all
 * traffic (pause/resume: the bytes wait, the connections stay open) and reset every connection
 * (an RST to both ends, as a middlebox that lost its state). Order within a connection is kept:
 * a chunk never overtakes an earlier one, jitter or not.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface ProxyOptions {
  /** Address to listen on (port 0: any free port). */
  listenHost: string;
  listenPort?: number;
  targetHost: string;
  targetPort: number;
  /** Added to every chunk, each way, in ms. */
  delayMs?: number;
  /** Up to this much more, uniformly at random, per chunk (still in order). */
  jitterMs?: number;
}

interface Pipe {
  client: Socket;
  server: Socket;
  /** Restart each direction's queue (after a pause). */
  pumps: Array<() => void>;
}

export interface ProxyStats {
  connections: number;
  /** Connections cut by reset(). */
  resets: number;
  bytesUp: number;
  bytesDown: number;
}

export class FaultProxy {
  delayMs: number;
  jitterMs: number;
  readonly stats: ProxyStats = { connections: 0, resets: 0, bytesUp: 0, bytesDown: 0 };
  private readonly pipes = new Set<Pipe>();
  private paused = false;
  private server: Server | null = null;
  private port = 0;

  constructor(private readonly opts: ProxyOptions) {
    this.delayMs = opts.delayMs ?? 0;
    this.jitterMs = opts.jitterMs ?? 0;
  }

  async listen(): Promise<number> {
    const server = createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.listenPort ?? 0, this.opts.listenHost, resolve);
    });
    this.server = server;
    this.port = (server.address() as { port: number }).port;
    return this.port;
  }

  /** ws:// address of the proxy. */
  get address(): string {
    return `ws://${this.opts.listenHost}:${this.port}`;
  }

  /** Stop forwarding: bytes wait in the proxy (and, once its reads stop, in the senders' buffers). */
  pause(): void {
    this.paused = true;
    for (const p of this.pipes) {
      p.client.pause();
      p.server.pause();
    }
  }

  resume(): void {
    this.paused = false;
    for (const p of this.pipes) {
      p.client.resume();
      p.server.resume();
    }
    for (const p of this.pipes) for (const pump of p.pumps) pump();
  }

  /** Reset every open connection (RST both ways). */
  reset(): void {
    for (const p of this.pipes) {
      this.stats.resets++;
      this.drop(p);
    }
  }

  async close(): Promise<void> {
    this.reset();
    const s = this.server;
    this.server = null;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }

  private accept(client: Socket): void {
    this.stats.connections++;
    const server = connect(this.opts.targetPort, this.opts.targetHost);
    const pipe: Pipe = { client, server, pumps: [] };
    this.pipes.add(pipe);
    client.setNoDelay(true);
    server.setNoDelay(true);
    pipe.pumps.push(this.forward(client, server, 'bytesUp'), this.forward(server, client, 'bytesDown'));
    for (const s of [client, server]) {
      s.on('error', () => this.drop(pipe));
      s.on('close', () => {
        if (client.destroyed && server.destroyed) this.pipes.delete(pipe);
      });
    }
    if (this.paused) {
      client.pause();
      server.pause();
    }
  }

  /**
   * Chunks from `from` to `to`, each after its delay, none before the one ahead of it; the end
   * of the stream (a half-close) queues behind the last chunk. Returns the queue's pump.
   */
  private forward(from: Socket, to: Socket, counter: 'bytesUp' | 'bytesDown'): () => void {
    const queue: Array<{ due: number; chunk: Buffer | null }> = [];
    let timer: NodeJS.Timeout | null = null;
    const pump = () => {
      timer = null;
      while (queue.length > 0 && !this.paused) {
        const head = queue[0];
        const wait = head.due - Date.now();
        if (wait > 0) {
          timer = setTimeout(pump, wait);
          return;
        }
        queue.shift();
        if (to.destroyed) continue;
        if (head.chunk === null) {
          to.end();
        } else {
          this.stats[counter] += head.chunk.length;
          to.write(head.chunk);
        }
      }
    };
    const push = (chunk: Buffer | null) => {
      const last = queue.length > 0 ? queue[queue.length - 1].due : 0;
      queue.push({ due: Math.max(last, Date.now() + this.delayMs + Math.random() * this.jitterMs), chunk });
      if (timer === null) pump();
    };
    from.on('data', (chunk: Buffer) => push(chunk));
    from.on('end', () => push(null));
    return () => {
      if (timer !== null) clearTimeout(timer);
      pump();
    };
  }

  /** An error on either side, or reset(): both ends get an RST. */
  private drop(pipe: Pipe): void {
    if (!this.pipes.delete(pipe)) return;
    for (const s of [pipe.client, pipe.server]) if (!s.destroyed) s.resetAndDestroy();
  }
}
