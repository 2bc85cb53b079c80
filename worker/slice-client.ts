/**
 * A worker's side of a sharded coordinator (coordinator/slices/): one link to each slice
 * shard. Parameters of a version are assembled from every shard's slice, in place in the
 * params frame the worker loop will read (no copy to encode it); a data shard's gradient sum
 * goes out cut into the same slices, each frame sent as soon as it is encoded, in slice (layer)
 * order — so no link carries the whole model K times.
 *
 * A shard sends its slices in version order. A lower version after a higher one retracts the
 * higher (a step whose Adam the shard applied early, then skipped: slice-server.ts).
 *
 * Each shard says, as its link opens, the parameter count it was started for and which slice
 * of how many the coordinator gave it: a list in another order, of another length, or a shard
 * of another job is a configuration error (CONFIG_INVALID, the worker exits), not a lost link.
 */
import type { Link } from '../shared/transport/transport.js';
import type { WireDtype } from '../shared/wire/wire-dtype.js';
import { DptrainError } from '../shared/util/errors.js';
import { newNonce, proofsEqual, shardProof, sliceProof } from '../shared/wire/auth.js';
import { encodeFrame, frameToFill } from '../shared/wire/codec.js';
import {
  encodeSliceFrame,
  readSliceFrame,
  SHARD_TO_WORKER,
  type Slice,
  type SliceChallenge,
  type SliceWelcome,
} from '../shared/wire/slice-protocol.js';
import { sliceBounds, type SliceRange } from '../coordinator/slices/blocks.js';

/** What each state of a shard link waits for. */
const EXPECTED = { challenge: 'sliceChallenge', welcome: 'sliceWelcome', open: 'slice' } as const;

const authFailed = (k: number, remote: string) =>
  new DptrainError('AUTH_FAILED', `slice shard ${k} (${remote}) could not prove the job token: check its --token-file`);

/** The order the shards were dialled in is not the coordinator's: `is[j]`, the URL that holds slice j, where known. */
function orderDiffers(slice: number, url: string, is: ReadonlyArray<string | undefined> = []): DptrainError {
  const all = is.length && is.every((u) => u !== undefined) ? ` (pass --slice-shard ${is.join(' ')})` : '';
  return new DptrainError(
    'CONFIG_INVALID',
    `--slice-shard order differs from the coordinator's: shard ${slice} is ${url}${all}`,
  );
}

/** Failures that reconnecting cannot mend: the worker exits with them (worker/sliced-link.ts). */
export function isRefusal(e: unknown): e is DptrainError {
  return e instanceof DptrainError && (e.code === 'AUTH_FAILED' || e.code === 'CONFIG_INVALID');
}

export class SliceClient {
  readonly ranges: SliceRange[];
  /** Versions being assembled: their params frame, its payload, and which slices are in. */
  private readonly versions = new Map<number, { frame: Uint8Array; params: Float32Array; have: Set<number> }>();
  private readonly waiters = new Map<
    number,
    Array<{ ok: (v: { frame: Uint8Array; params: Float32Array }) => void; no: (e: Error) => void }>
  >();
  private lost: Error | null = null;
  /** The newest version with every slice in (kept with the one before it, until a newer completes). */
  private newest = -1;
  /** Told each time a version newer than any before has every slice in. */
  onVersion: ((version: number) => void) | null = null;
  /** Told once, when a shard link closes or is refused: nothing more comes from the shards. */
  onFail: ((e: Error) => void) | null = null;
  /** Each link's place in the coordinator's order, from its sliceWelcome (undefined: not open, or not claimed yet). */
  private readonly claims: Array<{ slice: number; slices: number } | null | undefined>;
  private readonly opens: { ok: () => void; no: (e: Error) => void }[] = [];
  /** Every shard link open and in the coordinator's order (as far as the shards know it yet). */
  readonly opened: Promise<void>;

  /**
   * `token`: the job's; each shard's challenge is answered with its proof, and nothing is taken
   * from a shard before its own proof (sliceWelcome) checks out. null = none (loopback only).
   */
  constructor(
    private readonly links: readonly Link[],
    readonly totalParams: number,
    worker: string,
    token: string | null = null,
    /** The job's wireDtype: gradient slices go, and parameter slices come, in it. */
    private readonly wireDtype: WireDtype = 'float32',
  ) {
    this.ranges = sliceBounds(totalParams, links.length);
    this.claims = links.map(() => undefined);
    this.opened = new Promise((ok, no) => this.opens.push({ ok, no }));
    this.opened.catch(() => {}); // reported where awaited, and through onFail
    links.forEach((link, k) => {
      // A link goes challenge → (hello sent) welcome → open; slices count only once it is open.
      let state: 'challenge' | 'welcome' | 'open' = 'challenge';
      let shardNonce = '';
      const nonce = newNonce();
      link.onFrame((bytes) => {
        try {
          const { msg, payload } = readSliceFrame<Slice | SliceChallenge | SliceWelcome>(
            bytes,
            SHARD_TO_WORKER,
            totalParams,
            wireDtype,
          );
          if (msg.t !== EXPECTED[state] && !(state === 'open' && msg.t === 'slice'))
            throw new DptrainError(
              'MESSAGE_INVALID',
              `slice shard ${k} sent ${msg.t} where ${EXPECTED[state]} belongs`,
            );
          if (msg.t === 'sliceChallenge') {
            if (msg.params !== totalParams)
              throw new DptrainError(
                'CONFIG_INVALID',
                `slice shard ${k} (${link.remote}) was started for a model of ${msg.params} parameters, this job's has ${totalParams}: ` +
                  "it serves another job (check --slice-shard against the coordinator's, and the shard's --config)",
              );
            shardNonce = msg.nonce;
            const proof = token ? sliceProof(token, msg.nonce, 'sliceHello') : '';
            link.send(encodeSliceFrame({ t: 'sliceHello', proof, nonce, worker }));
            state = 'welcome';
          } else if (msg.t === 'sliceWelcome') {
            if (token && !proofsEqual(msg.proof, shardProof(token, shardNonce, nonce))) {
              this.fail(authFailed(k, link.remote));
              return link.close('authentication failed: this shard does not hold the job token', 'authFailed');
            }
            state = 'open';
            this.claims[k] = msg.slices ? { slice: msg.slice, slices: msg.slices } : null;
            this.checkOrder();
          } else this.slice(k, msg, payload!);
        } catch (e) {
          if (isRefusal(e)) this.fail(e); // before the close below reports a mere loss
          link.close((e as Error).message, isRefusal(e) ? 'wrongJob' : 'invalid');
        }
      });
      link.onClose((reason) =>
        this.fail(new DptrainError('CONNECT_FAILED', `slice shard ${k} (${link.remote}) closed: ${reason}`)),
      );
    });
  }

  /**
   * Once every link is open: each claimed shard must stand where this worker listed it. Shards
   * not claimed yet (a coordinator still dialling them) are checked by their first slice instead.
   */
  private checkOrder(): void {
    if (this.claims.some((c) => c === undefined) || this.lost) return;
    const n = this.links.length;
    const claimed = this.claims.filter((c): c is { slice: number; slices: number } => !!c);
    const other = claimed.find((c) => c.slices !== n);
    if (other)
      return this.refuse(
        new DptrainError(
          'CONFIG_INVALID',
          `--slice-shard lists ${n} shard${n === 1 ? '' : 's'}, the coordinator uses ${other.slices}: pass its list, in its order`,
        ),
      );
    const at = this.claims.map((c) => c?.slice); // the slice the shard at each place holds
    const is = Array.from({ length: n }, (_, j) => this.links[at.indexOf(j)]?.remote);
    const wrong = at.findIndex((slice, k) => slice !== undefined && slice !== k);
    if (wrong >= 0) {
      // Name the first slice whose shard is listed elsewhere: "shard 0 is …".
      const j = is.findIndex((url, j) => url !== undefined && at[j] !== j);
      return this.refuse(j >= 0 ? orderDiffers(j, is[j]!, is) : orderDiffers(at[wrong]!, this.links[wrong].remote, is));
    }
    for (const o of this.opens.splice(0)) o.ok();
  }

  /** A configuration error: fail, and close every shard link saying why. */
  private refuse(e: DptrainError): void {
    this.fail(e);
    for (const l of this.links) l.close(e.message, 'wrongJob');
  }

  private slice(k: number, msg: Slice, payload: Float32Array): void {
    const { from, to } = this.ranges[k];
    if (msg.slice !== k) throw orderDiffers(msg.slice, this.links[k].remote);
    if (payload.length !== to - from)
      throw new DptrainError(
        'MESSAGE_INVALID',
        `slice ${msg.slice} of ${payload.length} floats on the link of slice ${k}`,
      );
    for (const [version, later] of this.versions) if (version > msg.version) later.have.delete(k); // retracted
    let v = this.versions.get(msg.version);
    if (!v) {
      const { frame, payload } = frameToFill({ t: 'params', version: msg.version, shm: 0 }, this.totalParams);
      v = { frame, params: payload, have: new Set() };
      this.versions.set(msg.version, v);
    }
    v.params.set(payload, from);
    v.have.add(k);
    if (v.have.size < this.links.length) return;
    for (const w of this.waiters.get(msg.version) ?? []) w.ok(v);
    this.waiters.delete(msg.version);
    if (msg.version <= this.newest) return; // a retraction's slice again: nothing new
    // Superseded, but the version just before is kept: work for it may still be on its way.
    for (const old of this.versions.keys()) if (old < this.newest) this.versions.delete(old);
    this.newest = msg.version;
    this.onVersion?.(msg.version);
  }

  private fail(e: Error): void {
    if (this.lost) return;
    this.lost = e;
    for (const ws of this.waiters.values()) for (const w of ws) w.no(e);
    this.waiters.clear();
    for (const o of this.opens.splice(0)) o.no(e);
    this.onFail?.(e);
  }

  /** The parameters of `version`, once every slice of it is in. */
  async params(version: number): Promise<Float32Array> {
    return (await this.complete(version)).params;
  }

  /** The params frame of `version` (what a coordinator would send), once every slice of it is in. */
  async paramsFrame(version: number): Promise<Uint8Array> {
    const v = await this.complete(version);
    if (this.wireDtype === 'float32') return v.frame;
    // The worker loop takes parameters in the job's wire dtype. The shards rounded their slices
    // to it once, as the coordinator rounds its broadcast, so encoding them again is exact.
    return encodeFrame({ t: 'params', version, shm: 0 }, v.params, this.wireDtype);
  }

  private complete(version: number): Promise<{ frame: Uint8Array; params: Float32Array }> {
    const v = this.versions.get(version);
    if (v && v.have.size === this.links.length) return Promise.resolve(v);
    if (this.lost) return Promise.reject(this.lost);
    return new Promise((ok, no) => this.waiters.set(version, [...(this.waiters.get(version) ?? []), { ok, no }]));
  }

  /**
   * Send one data shard's gradient sums (one per tree node, one after another; in one array or
   * in consecutive parts, such as views of the gradient tensors), each slice to its shard, in
   * slice order, each frame sent as soon as it is encoded.
   */
  sendGradient(step: number, micro: number, shard: number, grads: Float32Array | readonly Float32Array[]): void {
    const n = this.totalParams;
    const parts = grads instanceof Float32Array ? [grads] : grads;
    const total = parts.reduce((s, p) => s + p.length, 0);
    if (total === 0 || total % n)
      throw new DptrainError('RUN_FAILED', `a gradient of ${total} floats is not whole models of ${n}`);
    this.links.forEach((link, k) => {
      const { from, to } = this.ranges[k];
      const mine = Array.from({ length: total / n }, (_, j) => within(parts, j * n + from, j * n + to)).flat();
      link.send(encodeSliceFrame({ t: 'grad', step, micro, shard }, mine, this.wireDtype));
    });
  }

  close(): void {
    for (const l of this.links) l.close('worker leaving');
  }
}

/** Elements [from, to) of the parts laid end to end, as views into them. */
export function within(parts: readonly Float32Array[], from: number, to: number): Float32Array[] {
  const out: Float32Array[] = [];
  let at = 0;
  for (const p of parts) {
    const a = Math.max(from, at);
    const b = Math.min(to, at + p.length);
    if (a < b) out.push(p.subarray(a - at, b - at));
    at += p.length;
    if (at >= to) break;
  }
  return out;
}
