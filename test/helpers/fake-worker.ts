/**
 * A scripted worker for tests: it speaks the real protocol (challenge → hello with proof →
 * welcome → ready) and then does whatever the test says with each message.
 */
import { workerProof } from '../../shared/wire/auth.js';
import { encodeFrame } from '../../shared/wire/codec.js';
import { fingerprint, loadDataset } from '../../shared/datasets/index.js';
import { parseConfig } from '../../shared/job/config.js';
import { PROTOCOL_VERSION, type Message, type ToWorker } from '../../shared/wire/protocol.js';
import type { CloseKind, Dial, Link } from '../../shared/transport/transport.js';
import { readFromCoordinator } from '../../shared/wire/validate.js';
import { dialWs } from '../../worker/ws-dialer.js';

export interface FakeWorker {
  link: Link;
  send(msg: Message, payload?: Float32Array | readonly Float32Array[] | null): void;
  closed: Promise<string>;
  /** The kind of that close. */
  closedKind: Promise<CloseKind>;
  /** Whether the welcome granted shared memory. */
  granted: Promise<boolean>;
}

export interface FakeOptions {
  token?: string | null;
  name?: string;
  /** Send ready after the welcome (default true). */
  ready?: boolean;
  /** The hello's shared-memory proof for the challenge's nonce (default: none offered). */
  shm?: (nonce: string) => string;
  /** Announce this dataset fingerprint instead of the job's own. */
  fingerprint?: string;
  /** The ready's count of workers computing behind this link (default 1). */
  workers?: number;
  /** Called for every message after the handshake (work, evaluate, params, bye). */
  onMessage?: (msg: ToWorker, w: FakeWorker) => void;
}

/** Dial `target` (a ws:// address, or an in-process transport's dial) and run the handshake. */
export async function fakeWorker(target: string | Dial, totalParams: number, o: FakeOptions = {}): Promise<FakeWorker> {
  const link = typeof target === 'string' ? await dialWs(target, 1 << 26) : await target();
  const closing = new Promise<[string, CloseKind]>((resolve) => link.onClose((r, k) => resolve([r, k])));
  let grant: (g: boolean) => void = () => {};
  const granted = new Promise<boolean>((r) => (grant = r));
  const w: FakeWorker = {
    link,
    send: (m, p = null) => link.send(encodeFrame(m, p)),
    closed: closing.then(([r]) => r),
    closedKind: closing.then(([, k]) => k),
    granted,
  };
  link.onFrame((bytes) => {
    const { msg } = readFromCoordinator(bytes, { totalParams });
    if (msg.t === 'challenge') {
      const cnonce = 'test-cnonce';
      const proof = o.token ? workerProof(o.token, msg.jobId, msg.nonce, cnonce) : '';
      w.send({
        t: 'hello',
        protocol: PROTOCOL_VERSION,
        name: o.name ?? 'fake',
        host: 'test',
        pid: 1,
        jobId: '',
        cnonce,
        proof,
        shm: o.shm?.(msg.nonce) ?? '',
      });
    } else if (msg.t === 'welcome') {
      grant(msg.shm);
      if (o.ready === false) return;
      const cfg = parseConfig(msg.job);
      const ds = loadDataset(cfg.data, cfg.seed);
      w.send({
        t: 'ready',
        fingerprint: o.fingerprint ?? fingerprint(ds),
        backend: 'cpu',
        backendReason: 'test',
        peakFlops: 0,
        attainableFlops: 1e9,
        workers: o.workers ?? 1,
      });
    } else o.onMessage?.(msg, w);
  });
  return w;
}
