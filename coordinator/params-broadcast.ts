/**
 * The parameters workers must hold, and getting them there: each worker is sent a version at
 * most once, every socket worker the same frame (encoded once per version), every worker on a
 * payload channel the same slot of it (written once per version, in a slot no worker may still
 * be reading). Counts the time spent encoding and sending, for the step's timeline.
 */
import { encodeFrame } from '../shared/wire/codec.js';
import type { Logger } from '../shared/util/log.js';
import type { WireDtype } from '../shared/wire/wire-dtype.js';
import type { PayloadChannel } from '../shared/transport/payload-channel.js';
import type { Membership, WorkerSession } from './membership.js';

export interface ParamsBroadcastOptions {
  membership: Membership;
  log: Logger;
  /** How parameter frames travel (the job's wireDtype). */
  wireDtype: WireDtype;
  /** Slice shards hold the parameters (coordinator/slices/): workers get none from here. */
  sliced: boolean;
}

/** One version as sent: the socket workers' frame, and each channel's slot and its frame. */
interface VersionFrames {
  version: number;
  bytes: Uint8Array | null;
  slots: Map<PayloadChannel, { slot: number; bytes: Uint8Array }>;
}

export class ParamsBroadcast {
  private params: { version: number; values: Float32Array; frame: Uint8Array | null } = {
    version: -1,
    values: new Float32Array(0),
    frame: null,
  };
  /** This version's frames, each made on first use. */
  private frame: VersionFrames | null = null;
  /** Time spent encoding and sending parameter frames since the caller last read it (takeTiming). */
  private encodeMs = 0;
  private broadcastMs = 0;
  /** When the last parameter frame was encoded (for the trace). */
  lastEncode: { start: number; end: number } | null = null;

  constructor(private readonly o: ParamsBroadcastOptions) {}

  /** The version workers must hold for the next phase. */
  get version(): number {
    return this.params.version;
  }

  /**
   * The parameters workers must hold from now on (a view; not copied until sent). `frame`: their
   * socket frame, already encoded (a host agent hands on the coordinator's: the same bytes).
   */
  set(version: number, values: Float32Array, frame: Uint8Array | null = null): void {
    this.params = { version, values, frame };
  }

  takeTiming(): { encodeMs: number; broadcastMs: number } {
    const t = { encodeMs: this.encodeMs, broadcastMs: this.broadcastMs };
    this.encodeMs = 0;
    this.broadcastMs = 0;
    return t;
  }

  /** Send `w` the current parameters, unless it has them. */
  readonly ensure = (w: WorkerSession): void => {
    const { version, values, frame } = this.params;
    if (w.paramsVersion === version) return;
    if (this.o.sliced) {
      w.paramsVersion = version; // it has them from the slice shards
      return;
    }
    // Encode once per version; every worker gets the same bytes (or, on a channel, the same slot).
    if (this.frame?.version !== version) this.frame = { version, bytes: frame, slots: new Map() };
    const f = this.frame;
    const channel = w.channel?.usable ? w.channel : null;
    const t0 = performance.now();
    let encoded = false;
    if (channel && !f.slots.has(channel)) {
      try {
        const slot = this.freeSlot(channel);
        channel.writeParams(slot, version, values, this.o.wireDtype);
        f.slots.set(channel, { slot, bytes: encodeFrame({ t: 'params', version, shm: slot + 1 }) });
        encoded = true;
      } catch (e) {
        // A full tmpfs, or the directory gone: from now on its workers get payloads through the socket.
        channel.disable(String(e));
        this.o.log.warn(
          { channel: channel.where, error: String(e) },
          'shared memory failed; payloads go through the socket from now on',
        );
      }
    }
    const viaChannel = channel?.usable ? f.slots.get(channel) : undefined;
    if (!viaChannel && !f.bytes) {
      f.bytes = encodeFrame({ t: 'params', version, shm: 0 }, values, this.o.wireDtype);
      encoded = true;
    }
    const t1 = performance.now();
    if (encoded) {
      this.encodeMs += t1 - t0;
      this.lastEncode = { start: t0, end: t1 };
    }
    if (viaChannel) {
      // It may read the slot until it answers the request that follows these parameters; the
      // slots of versions sent before (not yet read by a slow worker) stay held as long.
      w.shmHeld = w.shmHeld.filter((h) => w.answers < h.until);
      w.shmHeld.push({ slot: viaChannel.slot, until: w.requests + 1 });
    }
    this.o.membership.sendBytes(w, viaChannel ? viaChannel.bytes : f.bytes!);
    this.broadcastMs += performance.now() - t1;
    w.paramsVersion = version;
  };

  /**
   * Send `w` the current parameters ahead of its next request, to decode while it waits: once
   * between requests. A worker given no work (more workers than shards) is not sent every version
   * meanwhile: each would hold a slot (or cost a socket frame) it may never read before the next;
   * it gets the version of the moment with its next request (ensure).
   */
  readonly offer = (w: WorkerSession): void => {
    if (w.offeredAt === w.requests) return; // offered a version since its last request: it has not read it yet
    const had = w.paramsVersion;
    this.ensure(w);
    // Only a version sent counts: one it had already (with a prefetched request) is no offer.
    if (w.paramsVersion !== had) w.offeredAt = w.requests;
  };

  /**
   * A parameter slot of `channel` that no live worker may still be reading. A worker handles
   * frames in order and answers every request, so once it answered a request sent after a
   * parameter frame, it has read that frame's slot — however long it stalled, and whatever late
   * results it sent before.
   */
  private freeSlot(channel: PayloadChannel): number {
    const held = new Set<number>();
    for (const w of this.o.membership.workers.values()) {
      if (w.channel !== channel || w.state === 'gone') continue;
      for (const h of w.shmHeld) if (w.answers < h.until) held.add(h.slot);
    }
    let k = 0;
    while (held.has(k)) k++;
    return k;
  }
}
