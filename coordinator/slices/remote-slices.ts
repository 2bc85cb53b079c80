/**
 * The loop's side of a sharded coordinator: the same update as SlicedUpdate, with each slice
 * in a slice shard (slice-server.ts) at the end of a link. The loop decides which result of
 * each data shard counts and commits it to every shard; at the step's end it gathers every
 * shard's block norms, sums them in block order (slices are in order) and sends back the
 * global norm — so the bits are the whole update's. A shard's link closing fails the run
 * (RUN_FAILED), as the coordinator's own failure would: resume from the last checkpoint, if
 * there is one. A shard started for another model is refused as soon as it is dialled (`ready`).
 */
import type { TreeNode } from '../../shared/job/shard-tree.js';
import type { CloseKind, Link } from '../../shared/transport/transport.js';
import { DptrainError, fail } from '../../shared/util/errors.js';
import { newNonce, proofsEqual, shardProof, sliceProof } from '../../shared/wire/auth.js';
import { encodeSliceFrame, readSliceFrame, SHARD_TO_LOOP, type FromShard } from '../../shared/wire/slice-protocol.js';
import type { WireDtype } from '../../shared/wire/wire-dtype.js';
import type { AdamHyper, AdamState } from '../optimizers/adam.js';
import { sliceBounds, sumInOrder, type SliceRange } from './blocks.js';
import { sliceFrameValues } from './slice-server.js';
import { earlyApply, type UpdateResult } from './sliced-update.js';
import type { ShardStepTimeline } from '../summary.js';

/** A sharded step's update: as SlicedUpdate's, with whether the shards applied Adam early and each shard's figures. */
export interface SlicedStep extends UpdateResult {
  early: boolean;
  shards: ShardStepTimeline[];
}

interface Reply {
  msg: FromShard;
  payload: Float32Array | null;
}

/** One shard's link: its challenge (nonce, parameter count), then replies taken in the order they come. */
class ShardLink {
  readonly challenge: Promise<{ nonce: string; params: number }>;
  private readonly replies: Reply[] = [];
  private readonly waiters: Array<{ ok: (r: Reply) => void; no: (e: Error) => void }> = [];
  private lost: Error | null = null;
  /** Why the loop closed this link itself, if it did (else the shard went away). */
  private droppedFor: string | null = null;

  /** `afterLoss`: what to do about a lost shard, as things stand when it is lost. */
  constructor(
    readonly link: Link,
    readonly slice: number,
    maxValues: number,
    afterLoss: () => string,
  ) {
    let challenged: (c: { nonce: string; params: number }) => void = () => {};
    let unchallenged: (e: Error) => void = () => {};
    this.challenge = new Promise((res, rej) => {
      challenged = res;
      unchallenged = rej;
    });
    this.challenge.catch(() => {}); // a link lost before its challenge is reported where awaited
    link.onFrame((bytes) => {
      let r: Reply;
      try {
        r = readSliceFrame<FromShard>(bytes, SHARD_TO_LOOP, maxValues);
      } catch (e) {
        this.drop((e as Error).message, 'invalid');
        return;
      }
      if (r.msg.t === 'sliceChallenge') return challenged(r.msg);
      const w = this.waiters.shift();
      if (w) w.ok(r);
      else this.replies.push(r);
    });
    link.onClose((reason) => {
      // Name what went away: the shard (its own reason, or the connection's), or our side's refusal.
      const what = this.droppedFor
        ? `dropped by the coordinator: ${this.droppedFor}`
        : `lost: the shard went away (${reason || 'connection closed'})`;
      this.lost = new DptrainError('RUN_FAILED', `slice shard ${slice} (${link.remote}) ${what}; ${afterLoss()}`);
      unchallenged(this.lost);
      for (const w of this.waiters.splice(0)) w.no(this.lost);
    });
  }

  /** Close the link from our side, saying why (the loss then names the refusal, not the shard). */
  drop(why: string, kind: CloseKind): void {
    this.droppedFor ??= why;
    this.link.close(why, kind);
  }

  send(frame: Uint8Array): void {
    if (this.lost) throw this.lost;
    this.link.send(frame);
  }

  /** The next reply, which must be of type `t`. */
  async next<T extends FromShard['t']>(
    t: T,
  ): Promise<{ msg: Extract<FromShard, { t: T }>; payload: Float32Array | null }> {
    const r =
      this.replies.shift() ??
      (await new Promise<Reply>((ok, no) => (this.lost ? no(this.lost) : this.waiters.push({ ok, no }))));
    if (r.msg.t !== t) fail('RUN_FAILED', `slice shard ${this.slice} answered ${r.msg.t}, expected ${t}`);
    return r as { msg: Extract<FromShard, { t: T }>; payload: Float32Array | null };
  }
}

export class RemoteSlices {
  readonly ranges: SliceRange[];
  private readonly shards: ShardLink[];
  /** The loop's nonce on each shard link, which the shard's proof in `joined` answers. */
  private readonly nonces: string[];
  /** Every shard checked and claimed (`ready`), once. */
  private claimed: Promise<void> | null = null;
  /**
   * A checkpoint of this run may exist: it was resumed from one, or a gather (which comes before
   * each checkpoint) completed. Without either, none was written: a lost shard means starting again.
   */
  private checkpointed = false;

  /** `token`: the job's (each shard's challenge is answered with its proof); null = none. */
  constructor(
    links: readonly Link[],
    readonly totalParams: number,
    private readonly hyper: AdamHyper,
    private readonly token: string | null = null,
    private readonly wireDtype: WireDtype = 'float32',
  ) {
    this.ranges = sliceBounds(totalParams, links.length);
    const afterLoss = () =>
      this.checkpointed
        ? 'restart the shard, then resume from the last checkpoint (dptrain coordinator --resume RUN_DIR)'
        : 'no checkpoint of this run was written yet: restart the shard and start the run again';
    this.shards = links.map((l, k) => new ShardLink(l, k, sliceFrameValues(totalParams), afterLoss));
    this.nonces = links.map(() => newNonce());
  }

  /**
   * Check every shard as soon as it is dialled, before workers join: it holds this job's model
   * (its --config; CONFIG_INVALID) and the token (AUTH_FAILED); then tell it which slice it is,
   * so that a worker listing the shards in another order learns so when it joins.
   */
  ready(): Promise<void> {
    this.claimed ??= this.claim();
    return this.claimed;
  }

  private async claim(): Promise<void> {
    const challenges = await Promise.all(this.shards.map((s) => s.challenge));
    challenges.forEach(({ params }, k) => {
      if (params === this.totalParams) return;
      const { remote } = this.shards[k].link;
      const why = `this job's model has ${this.totalParams} parameters, the shard's ${params}`;
      this.shards[k].drop(`${why}: start it with the job's --config`, 'wrongJob');
      fail(
        'CONFIG_INVALID',
        `slice shard ${k} (${remote}) was started for a model of ${params} parameters, this job's has ${this.totalParams}: restart it with this job's --config`,
      );
    });
    const slices = this.shards.length;
    this.shards.forEach((s, k) => {
      const proof = this.token ? sliceProof(this.token, challenges[k].nonce, 'claim') : '';
      s.send(encodeSliceFrame({ t: 'claim', proof, nonce: this.nonces[k], slice: k, slices }));
    });
    const joined = await Promise.all(this.shards.map((s) => s.next('joined')));
    this.checkJoined(joined, challenges);
  }

  /** Each shard's proof over both nonces: a shard without the token is refused (AUTH_FAILED). */
  private checkJoined(
    joined: ReadonlyArray<{ msg: { proof: string } }>,
    challenges: ReadonlyArray<{ nonce: string }>,
  ): void {
    joined.forEach(({ msg }, k) => {
      if (this.token && !proofsEqual(msg.proof, shardProof(this.token, challenges[k].nonce, this.nonces[k]))) {
        const remote = this.shards[k].link.remote;
        this.shards[k].drop('authentication failed: this shard does not hold the job token', 'authFailed');
        fail('AUTH_FAILED', `slice shard ${k} (${remote}) could not prove the job token: check its --token-file`);
      }
    });
  }

  /** Hand every shard its slice of these parameters and optimizer state, as version `version`. */
  async assign(params: Float32Array, adam: AdamState, version: number): Promise<void> {
    await this.ready();
    if (version > 0) this.checkpointed = true; // resumed: the checkpoint it came from is there
    const challenges = await Promise.all(this.shards.map((s) => s.challenge));
    const nonces = challenges.map((c) => c.nonce);
    this.shards.forEach((s, k) => {
      const { from, to } = this.ranges[k];
      const { beta1, beta2, epsilon, weightDecay } = this.hyper; // only these (a job's optimizer has more fields)
      const proof = this.token ? sliceProof(this.token, nonces[k], 'assign') : '';
      const msg = {
        t: 'assign' as const,
        proof,
        nonce: this.nonces[k],
        slice: k,
        from,
        to,
        version,
        beta1,
        beta2,
        epsilon,
        weightDecay,
        accBeta1: adam.accBeta1,
        accBeta2: adam.accBeta2,
        adamStep: adam.step,
        wireDtype: this.wireDtype,
      };
      s.send(encodeSliceFrame(msg, [params.subarray(from, to), adam.m.subarray(from, to), adam.v.subarray(from, to)]));
    });
    this.checkJoined(await Promise.all(this.shards.map((s) => s.next('joined'))), challenges);
  }

  /** Data shard `shard` of this micro-step counts as `worker` computed it: these nodes of the tree over `leaves`. */
  commit(
    step: number,
    micro: number,
    shard: number,
    leaves: number,
    nodes: readonly TreeNode[],
    worker: string,
    leafFold: boolean,
  ): void {
    const frame = encodeSliceFrame({
      t: 'commit',
      step,
      micro,
      shard,
      leaves,
      nodes: nodes.flatMap((n) => [n.level, n.index]),
      worker,
      leafFold,
    });
    for (const s of this.shards) s.send(frame);
  }

  /**
   * After the step's last commit: mean, global norm, and unless skipped, clip and Adam (version
   * `version`). Without clipping (earlyApply) the shards apply Adam and publish as soon as their
   * own sums are complete, and the loop only waits for their norms (to report, and to revert the
   * step everywhere if one slice was not finite); with clipping they wait for the global norm.
   */
  async update(
    step: number,
    count: number,
    lossSum: number,
    clipNorm: number,
    lr: number,
    version: number,
  ): Promise<SlicedStep> {
    const early = earlyApply(clipNorm, lossSum);
    const t0 = performance.now();
    const frame = encodeSliceFrame(
      early ? { t: 'reduceApply', step, count, version, lr } : { t: 'reduce', step, count },
    );
    for (const s of this.shards) s.send(frame);
    const arrivedAt: number[] = [];
    const parts = await Promise.all(
      this.shards.map(async (s, k) => {
        const r = await s.next('norms');
        arrivedAt[k] = performance.now();
        return r.msg;
      }),
    );
    const finite = parts.every((p) => p.finite);
    const skipped = !finite || !Number.isFinite(lossSum);
    const norm = skipped ? NaN : Math.sqrt(sumInOrder(parts.map((p) => Float64Array.from(p.blockSq))));
    if (early && skipped) {
      // Finite slices applied Adam already: back to `version − 1` (the step did not happen).
      const revert = encodeSliceFrame({ t: 'revert', step, version: version - 1 });
      parts.forEach((p, k) => {
        if (p.applied) this.shards[k].send(revert);
      });
    } else if (!skipped && !early) {
      const apply = encodeSliceFrame({ t: 'apply', step, version, norm, clipNorm, lr });
      for (const s of this.shards) s.send(apply);
    }
    const tEnd = performance.now();
    const shards = parts.map((p, k) => ({
      wireMs: p.wireMs,
      // With clipping the shard's Adam also waited for every shard's norms and the loop's apply.
      waitMs: p.waitMs + (early || skipped ? 0 : tEnd - arrivedAt[k]),
      updateMs: p.updateMs,
      normsMs: arrivedAt[k] - t0,
      bytesIn: p.bytesIn,
      bytesOut: p.bytesOut,
    }));
    return { finite, gradNorm: norm, skipped, early, shards };
  }

  /** Every slice's parameters and optimizer state as of the last update (for a checkpoint: one step). */
  async gather(step: number): Promise<{ params: Float32Array; adam: AdamState }> {
    const frame = encodeSliceFrame({ t: 'save', step });
    for (const s of this.shards) s.send(frame);
    const saved = await Promise.all(this.shards.map((s) => s.next('saved')));
    const n = this.totalParams;
    const [params, m, v] = [new Float32Array(n), new Float32Array(n), new Float32Array(n)];
    saved.forEach(({ payload }, k) => {
      const { from, to } = this.ranges[k];
      const size = to - from;
      if (payload?.length !== 3 * size)
        fail('RUN_FAILED', `slice shard ${k} saved ${payload?.length ?? 0} floats, not 3 × ${size}`);
      params.set(payload.subarray(0, size), from);
      m.set(payload.subarray(size, 2 * size), from);
      v.set(payload.subarray(2 * size), from);
    });
    const { accBeta1, accBeta2, adamStep } = saved[0].msg; // every shard has taken the same steps
    this.checkpointed = true;
    return { params, adam: { m, v, accBeta1, accBeta2, step: adamStep } };
  }
}
