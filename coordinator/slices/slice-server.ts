/**
 * A slice shard: owns one slice of the parameters and optimizer state (slice-owner.ts) and
 * serves it. Workers send it their slice of each data shard's gradient sum and get from it
 * the slice of each new parameter version; the loop (shard 0's training loop) tells it which
 * results to fold (so that duplicates, stale and reassigned shards are decided in one place),
 * when the sums are complete, and the global norm to clip by. Control messages are handled
 * strictly in order; a commit whose gradient has not arrived yet holds the ones behind it.
 * Without clipping (reduceApply) the shard applies Adam and publishes its slice as soon as its
 * own sums are complete, without waiting for the other shards; if another slice's gradient
 * turns out not finite, the loop's revert undoes it and the shard publishes the old version
 * again (a worker takes a lower version from a shard as retracting its higher one).
 *
 * The first frame on a link says who is at the other end: `claim` (or `assign`) the loop,
 * `sliceHello` a worker. Every link opens with the shard's challenge, which names the parameter
 * count it was started for: a loop or worker of another job refuses it before sending anything.
 */
import type { Link } from '../../shared/transport/transport.js';
import { WIRE_DTYPES, type WireDtype } from '../../shared/wire/wire-dtype.js';
import { newNonce, proofsEqual, shardProof, sliceProof } from '../../shared/wire/auth.js';
import { DptrainError } from '../../shared/util/errors.js';
import {
  encodeSliceFrame,
  LOOP_TO_SHARD,
  readSliceFrame,
  WORKER_TO_SHARD,
  type Assign,
  type Claim,
  type Commit,
  type Norms,
  type Reduce,
  type ReduceApply,
  type ToShard,
} from '../../shared/wire/slice-protocol.js';
import { MAX_LEAVES, maxResultNodes, treeNode } from '../../shared/job/shard-tree.js';
import type { Reduction } from '../reducer.js';
import { SliceOwner } from './slice-owner.js';

/** The most floats a slice-link frame carries: a result's nodes, or a slice's params, m and v. */
export function sliceFrameValues(totalParams: number): number {
  mostNodes ??= Math.max(3, maxResultNodes(MAX_LEAVES, false));
  return mostNodes * totalParams;
}
let mostNodes: number | undefined;

const key = (step: number, micro: number, shard: number, worker: string) => `${step}/${micro}/${shard}/${worker}`;

export class SliceServer {
  private owner: SliceOwner | null = null;
  private slice = -1;
  /** The slice count of the loop's claim; 0 while no loop holds this shard. */
  private slices = 0;
  /** How gradient and parameter slices travel (the loop's assign says: the job's wireDtype). */
  private wireDtype: WireDtype = 'float32';
  private loop: Link | null = null;
  private readonly workers = new Map<string, Link>();
  /** Gradient slices by step/micro/shard/worker, until committed or outdated. */
  private readonly arrived = new Map<string, { step: number; grads: Float32Array }>();
  private readonly control: ToShard[] = [];
  private reducer: { step: number; micro: number; r: Reduction } | null = null;
  /** The answer to the loop's nonce, sent with `joined`. */
  private loopProof = '';
  /** The current version's slice frame, encoded once, sent to every worker. */
  private sliceFrame: Uint8Array | null = null;
  /** The step's figures for its norms: bytes on every link since the last, when its gradients came. */
  private readonly bytes = { in: 0, out: 0 };
  private lastReduced = -1;
  private firstGrad: number | null = null;
  private lastFold: number | null = null;

  /**
   * `maxValues`: the model's parameter count (frames are sized from it). `token`: the job's;
   * null = none (loopback only).
   */
  constructor(
    private readonly maxValues: number,
    private readonly o: { simd?: boolean; token?: string | null } = {},
  ) {}

  /** A new link: the loop or a worker, as its first frame says, with the token's proof over our nonce. */
  accept(link: Link): void {
    let role: 'unknown' | 'loop' | 'worker' = 'unknown';
    let worker = '';
    const nonce = newNonce();
    this.send(link, encodeSliceFrame({ t: 'sliceChallenge', nonce, params: this.maxValues }));
    link.onFrame((bytes) => {
      this.bytes.in += bytes.byteLength;
      try {
        const allowed =
          role === 'loop'
            ? LOOP_TO_SHARD
            : role === 'worker'
              ? WORKER_TO_SHARD
              : new Set([...LOOP_TO_SHARD, ...WORKER_TO_SHARD]);
        const most = sliceFrameValues(this.maxValues);
        const { msg, payload } = readSliceFrame<ToShard>(bytes, allowed, most, this.wireDtype);
        if (role === 'unknown') {
          const proof = msg.t === 'claim' || msg.t === 'assign' || msg.t === 'sliceHello' ? msg.proof : '';
          if (this.o.token && !proofsEqual(proof, sliceProof(this.o.token, nonce, msg.t))) {
            return link.close("authentication failed: the job token does not match this shard's", 'authFailed');
          }
          if ((msg.t === 'claim' || msg.t === 'assign') && !this.loop) {
            role = 'loop';
            this.loop = link;
            this.loopProof = this.o.token ? shardProof(this.o.token, nonce, msg.nonce) : '';
          } else if (msg.t === 'sliceHello' && !this.workers.has(msg.worker)) {
            role = 'worker';
            worker = msg.worker;
            this.workers.set(worker, link);
            const proof = this.o.token ? shardProof(this.o.token, nonce, msg.nonce) : '';
            // Where this shard stands in the coordinator's order: the worker checks its own list by it.
            this.send(
              link,
              encodeSliceFrame({ t: 'sliceWelcome', proof, slice: Math.max(0, this.slice), slices: this.slices }),
            );
            if (this.sliceFrame) this.send(link, this.sliceFrame);
            return;
          } else
            throw new DptrainError(
              'MESSAGE_INVALID',
              `a slice link must open with claim or assign (the loop, once) or sliceHello (a new worker), not ${msg.t}`,
            );
        }
        if (msg.t === 'grad') this.gradient(worker, msg.step, msg.micro, msg.shard, payload!);
        else {
          if (msg.t === 'claim') this.claim(msg);
          else if (msg.t === 'assign') this.assign(msg, payload!);
          else this.control.push(msg);
          this.pump();
        }
      } catch (e) {
        link.close(e instanceof Error ? e.message : String(e), 'invalid');
      }
    });
    link.onClose(() => {
      if (role === 'worker' && this.workers.get(worker) === link) this.workers.delete(worker);
      if (role === 'loop') {
        this.loop = null; // the run is over (or failed): the loop resumes from its checkpoint
        this.slices = 0; // and the next loop claims this shard again, perhaps as another slice
      }
    });
  }

  /** This shard is slice `slice` of `slices` (the loop's order): tell workers that join from now on. */
  private claim(c: Claim): void {
    if (c.slices < 1 || c.slice >= c.slices)
      throw new DptrainError('MESSAGE_INVALID', `claim of slice ${c.slice} of ${c.slices}`);
    this.slice = c.slice;
    this.slices = c.slices;
    this.send(this.loop, encodeSliceFrame({ t: 'joined', slice: c.slice, proof: this.loopProof }));
  }

  /** Close every link, saying why (the shard is stopping): the loop's run fails with this reason. */
  close(reason: string): void {
    this.loop?.close(reason, 'goingAway');
    for (const w of [...this.workers.values()]) w.close(reason, 'goingAway');
  }

  private assign(a: Assign, state: Float32Array): void {
    const n = a.to - a.from;
    if (a.to <= a.from || state.length !== 3 * n)
      throw new DptrainError(
        'MESSAGE_INVALID',
        `assign of [${a.from}, ${a.to}) carries ${state.length} floats, not 3 × ${n}`,
      );
    if (!(WIRE_DTYPES as readonly string[]).includes(a.wireDtype))
      throw new DptrainError('MESSAGE_INVALID', `assign.wireDtype ${JSON.stringify(a.wireDtype)} is not a wire dtype`);
    this.wireDtype = a.wireDtype as WireDtype;
    const hyper = { beta1: a.beta1, beta2: a.beta2, epsilon: a.epsilon, weightDecay: a.weightDecay };
    this.owner = new SliceOwner({ from: a.from, to: a.to }, hyper, { simd: this.o.simd });
    // A new run (or a resume) starts clean: nothing of an earlier loop's steps is folded.
    this.reducer = null;
    this.arrived.clear();
    this.control.length = 0;
    this.slice = a.slice;
    const adam = {
      m: state.subarray(n, 2 * n),
      v: state.subarray(2 * n),
      accBeta1: a.accBeta1,
      accBeta2: a.accBeta2,
      step: a.adamStep,
    };
    this.owner.loadSlice(state.subarray(0, n), adam);
    this.lastReduced = -1;
    this.firstGrad = this.lastFold = null;
    this.publish(a.version);
    this.send(this.loop, encodeSliceFrame({ t: 'joined', slice: a.slice, proof: this.loopProof }));
  }

  private send(link: Link | null, frame: Uint8Array): void {
    if (!link) return;
    this.bytes.out += frame.byteLength;
    link.send(frame);
  }

  private gradient(worker: string, step: number, micro: number, shard: number, grads: Float32Array): void {
    const o = this.owner;
    if (!o || grads.length === 0 || grads.length % o.size)
      throw new DptrainError(
        'MESSAGE_INVALID',
        `grad carries ${grads.length} floats, not whole slices of ${o?.size ?? 0}`,
      );
    this.arrived.set(key(step, micro, shard, worker), { step, grads });
    if (step > this.lastReduced) this.firstGrad ??= performance.now();
    this.pump();
  }

  /** Handle control messages in order, until one needs a gradient that has not arrived. */
  private pump(): void {
    while (this.control.length) {
      const m = this.control[0];
      if (m.t === 'commit' && !this.commit(m)) return;
      this.control.shift();
      if (m.t === 'reduce' || m.t === 'reduceApply') this.reduce(m);
      else if (m.t === 'apply') {
        this.owner!.apply(m.norm, m.clipNorm, m.lr);
        this.publish(m.version);
      } else if (m.t === 'revert') {
        if (this.owner!.revert()) this.publish(m.version);
      } else if (m.t === 'save') {
        this.owner!.settle();
        const s = this.owner!.state;
        const msg = { t: 'saved' as const, step: m.step, accBeta1: s.accBeta1, accBeta2: s.accBeta2, adamStep: s.step };
        this.send(this.loop, encodeSliceFrame(msg, [this.owner!.params, s.m, s.v]));
      }
    }
  }

  /** Fold a committed result; false while its gradient is still on its way. */
  private commit(c: Commit): boolean {
    const k = key(c.step, c.micro, c.shard, c.worker);
    const got = this.arrived.get(k);
    if (!got) return false;
    this.arrived.delete(k);
    if (this.reducer?.step !== c.step || this.reducer.micro !== c.micro)
      this.reducer = { step: c.step, micro: c.micro, r: this.owner!.reducer(c.leaves, c.leafFold) };
    const size = this.owner!.size;
    if (c.nodes.length % 2 || got.grads.length !== (c.nodes.length / 2) * size) {
      throw new DptrainError(
        'MESSAGE_INVALID',
        `commit of ${c.nodes.length / 2} nodes for a gradient of ${got.grads.length / size} slices`,
      );
    }
    this.lastFold = performance.now();
    for (let j = 0; j < c.nodes.length / 2; j++) {
      // A node outside the tree or covering leaves already in is refused by the reducer.
      this.reducer.r.add(
        treeNode(c.nodes[2 * j], c.nodes[2 * j + 1], c.leaves),
        got.grads.subarray(j * size, (j + 1) * size),
        0,
        0,
      );
    }
    return true;
  }

  /** The step's sums are complete: mean and block norms; with reduceApply and a finite slice, Adam and publish. */
  private reduce(m: Reduce | ReduceApply): void {
    const t0 = performance.now();
    const { step } = m;
    for (const [k, g] of this.arrived) if (g.step <= step) this.arrived.delete(k); // results never committed
    this.reducer = null;
    const owner = this.owner!;
    owner.settle(); // an earlier early apply was not reverted: its step counted
    const { finite, blockSq } = owner.reduce(m.count);
    const applied = m.t === 'reduceApply' && finite;
    if (applied) {
      owner.applyEarly(m.lr);
      this.publish(m.version);
    }
    const done = this.lastFold ?? t0;
    const norms: Norms = {
      t: 'norms',
      step,
      finite,
      blockSq: Array.from(blockSq),
      applied,
      wireMs: this.firstGrad === null ? 0 : Math.max(0, done - this.firstGrad),
      waitMs: Math.max(0, t0 - done),
      updateMs: performance.now() - t0,
      bytesIn: this.bytes.in,
      bytesOut: this.bytes.out,
    };
    this.lastReduced = step;
    this.firstGrad = this.lastFold = null;
    this.bytes.in = 0;
    this.bytes.out = 0;
    this.send(this.loop, encodeSliceFrame(norms));
  }

  private publish(version: number): void {
    const msg = { t: 'slice' as const, slice: this.slice, version };
    this.sliceFrame = encodeSliceFrame(msg, this.owner!.params, this.wireDtype);
    for (const w of this.workers.values()) this.send(w, this.sliceFrame);
  }
}
