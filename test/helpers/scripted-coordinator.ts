/**
 * The coordinator's end of one in-process link, scripted by a test: it records what the other
 * end (a worker, or a host agent) sends, in order, and how the link closed.
 */
import { coordinatorProof } from '../../shared/wire/auth.js';
import { encodeFrame } from '../../shared/wire/codec.js';
import { type JobConfig, parseConfig } from '../../shared/job/config.js';
import { PROTOCOL_VERSION, type Message, type ToCoordinator } from '../../shared/wire/protocol.js';
import { createLocalNetwork } from '../../shared/transport/local.js';
import type { CloseKind, Link } from '../../shared/transport/transport.js';
import { readFromWorker } from '../../shared/wire/validate.js';
import type { GradientCompressor } from '../../shared/compress/index.js';
import type { WorkerOutcome } from '../../worker/coordinator-session.js';

/** A job small enough to load at once: xor through 4 tanh units, TINY_TOTAL parameters. */
export const TINY = parseConfig({
  data: { name: 'xor' },
  model: { layers: [{ units: 4, activation: 'tanh' }, { units: 1 }], loss: 'binaryCrossEntropy' },
});
export const TINY_TOTAL = 2 * 4 + 4 + 4 + 1;
export const TOKEN = 'a-test-token-of-enough-length';

/** `start` runs the session under test on the link it is given. */
export async function scriptedCoordinator(
  start: (link: Link) => Promise<WorkerOutcome>,
  totalParams: number,
  compressor?: GradientCompressor,
) {
  const net = createLocalNetwork();
  const server = new Promise<Link>((r) => net.listener.onLink(r));
  const outcome = start(await net.dial());
  return { ...scriptLink(await server, totalParams, compressor), outcome, net };
}

/** The script over a link the test already has (the coordinator's end). */
export function scriptLink(coord: Link, totalParams: number, compressor?: GradientCompressor) {
  const got: ToCoordinator[] = [];
  /** Each message's payload, as it came (a compressor's words stay words). */
  const payloads: Array<Float32Array | null> = [];
  const waiting: Array<() => void> = [];
  coord.onFrame((f) => {
    const frame = readFromWorker(f, { totalParams, compressor });
    got.push(frame.msg);
    payloads.push(frame.payload);
    for (const w of waiting.splice(0)) w();
  });
  const closed = new Promise<CloseKind>((r) => coord.onClose((_x, k) => r(k)));
  /** The n-th message of type t (0-based), once it has come. */
  const nth = async (t: ToCoordinator['t'], n: number) => {
    while (got.filter((m) => m.t === t).length <= n) await new Promise<void>((r) => waiting.push(r));
    return got.filter((m) => m.t === t)[n];
  };
  const next = (t: ToCoordinator['t']) => nth(t, 0);
  const send = (m: Message, p: Float32Array | null = null) => coord.send(encodeFrame(m, p));
  /**
   * Challenge, then welcome the hello with `job` (proved with `token`, or forged); the hello.
   * `shm`: the welcome grants shared memory.
   */
  const join = async (job: JobConfig, token: string | null, shm = false) => {
    send({ t: 'challenge', protocol: PROTOCOL_VERSION, jobId: 'job-test', nonce: 'n1' });
    const hello = await next('hello');
    if (hello.t !== 'hello') throw new Error('unreachable');
    const proof = token === null ? 'forged' : coordinatorProof(token, 'job-test', hello.cnonce, 'n1');
    send({ t: 'welcome', protocol: PROTOCOL_VERSION, workerId: 'w1', jobId: 'job-test', job, proof, shm });
    return hello;
  };
  return { send, next, nth, join, closed, got, payloads };
}
