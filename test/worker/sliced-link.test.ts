/**
 * The worker loop's link when slice shards hold the parameters (worker/sliced-link.ts), over the
 * in-process transport: a version goes to the worker loop as soon as every slice of it is in,
 * before the work that needs it; work for an older version gets its parameters again first;
 * a result's gradients go to the shards from the parts given, the coordinator gets the header.
 */
import { describe, expect, it } from 'vitest';
import type { AdamHyper } from '../../coordinator/optimizers/adam.js';
import { sliceCluster } from '../../coordinator/slices/local-cluster.js';
import { DEFAULT_CONFIG, jobOf } from '../../shared/job/config.js';
import { jobLayout } from '../../shared/job/job-layout.js';
import { treeNode } from '../../shared/job/shard-tree.js';
import { createLocalNetwork } from '../../shared/transport/local.js';
import type { Link } from '../../shared/transport/transport.js';
import { decodeFrame, encodeFrame } from '../../shared/wire/codec.js';
import type { Message } from '../../shared/wire/protocol.js';
import { slicedLink } from '../../worker/sliced-link.js';
import { resultMsg } from '../helpers/result-msg.js';

const HYPER: AdamHyper = { beta1: 0.9, beta2: 0.99, epsilon: 1e-7, weightDecay: 0 };
const JOB = jobOf(DEFAULT_CONFIG);
const N = jobLayout(JOB).totalParams;

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Frames the worker loop is handed, as "t vN" (or just t). */
class Seen {
  readonly frames: string[] = [];
  readonly payloads: Array<Float32Array | null> = [];
  private wake: (() => void) | null = null;

  add(f: Uint8Array): void {
    const { header, payload } = decodeFrame(f);
    const h = header as { t: string; version?: number };
    this.frames.push(h.version === undefined ? h.t : `${h.t} v${h.version}`);
    this.payloads.push(payload);
    this.wake?.();
  }

  async until(n: number): Promise<void> {
    while (this.frames.length < n) await new Promise<void>((r) => (this.wake = r));
  }
}

describe('slicedLink', () => {
  it('passes each version on as soon as it is complete, before its work; stale work gets its version again', {
    timeout: 10_000,
  }, async () => {
    const c = await sliceCluster({ totalParams: N, shards: 2, workers: 0, hyper: HYPER });
    const net = createLocalNetwork();
    let coordinator: Link | null = null;
    const headers: Message[] = [];
    net.listener.onLink((l) => {
      coordinator = l;
      l.onFrame((f) => headers.push(decodeFrame(f).header as Message));
    });
    const link = slicedLink(await net.dial(), () => c.dial('worker 0'), null);
    const seen = new Seen();
    link.onFrame((f) => seen.add(f));
    const welcome: Message = {
      t: 'welcome',
      protocol: 1,
      workerId: 'w-1',
      jobId: 'j',
      job: JOB,
      proof: '',
      shm: false,
    };
    coordinator!.send(encodeFrame(welcome));
    const params0 = Float32Array.from({ length: N }, (_, i) => Math.sin(i) * 0.1);
    const adam = { m: new Float32Array(N), v: new Float32Array(N), accBeta1: 0.9, accBeta2: 0.99, step: 0 };
    await c.loop.assign(params0, adam, 0);
    await seen.until(2);
    expect(seen.frames).toEqual(['welcome', 'params v0']);
    expect(bytes(seen.payloads[1]!).equals(bytes(params0))).toBe(true);

    // One step: the gradient handed over in parts, Adam early on both shards.
    const grads = Float32Array.from({ length: N }, (_, i) => Math.cos(i));
    const result = resultMsg(1, 4);
    expect(link.sendResult(result, [grads.subarray(0, 1000), grads.subarray(1000)])).toBe(true);
    c.loop.commit(0, 0, 0, 1, [treeNode(0, 0, 1)], 'w-1', false);
    const r = await c.loop.update(0, 4, 1, 0, 0.01, 1);
    expect(r.early).toBe(true);
    await seen.until(3);
    expect(seen.frames[2]).toBe('params v1'); // no work for it has been sent yet
    expect(headers.map((h) => h.t)).toEqual(['result']); // the coordinator got the header, no payload

    const work = (version: number): Message => ({
      t: 'work',
      step: 1,
      micro: 0,
      shard: 0,
      version,
      from: 0,
      to: 4,
      leaves: 1,
      first: 0,
      last: 1,
      batch: 4,
      shmRead: 0,
    });
    coordinator!.send(encodeFrame(work(0))); // late work for the old version
    coordinator!.send(encodeFrame(work(1)));
    await seen.until(7);
    expect(seen.frames.slice(3)).toEqual(['params v0', 'work v0', 'params v1', 'work v1']);
    expect(bytes(seen.payloads[3]!).equals(bytes(params0))).toBe(true);
    link.close('done');
  });
});
