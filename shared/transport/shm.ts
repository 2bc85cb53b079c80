/**
 * The payload channel (payload-channel.ts) for worker processes on the coordinator's host:
 * files in a private tmpfs directory (/dev/shm) instead of bytes through the socket, as NCCL
 * and gloo keep a shared-memory path within a host.
 *
 * Why it is fast here, and the two rules that make it so (measured on the 2-core dev machine):
 * the cost of a multi-megabyte payload is mostly fresh memory, not the copy. A first version
 * that read each result with readFileSync (a new 2.7 MB buffer per read: 8.5 ms median in a
 * training run) was no faster than the socket (~15 ms of wire a step); reading into a reused
 * buffer and overwriting files in place brought the wire to ~5 ms. So nothing here allocates
 * per message: reads land in one reused buffer, and files are slots overwritten in place (never
 * truncated or deleted, so tmpfs keeps their pages).
 *
 * Slots: params-<k>.bin (the coordinator writes each version once into a slot no worker may
 * still be reading, see dispatcher.ts; every local worker reads it) and
 * result-<worker>-<seq mod RESULT_SLOTS>.bin (a worker writes, the coordinator reads at once). Each file
 * starts with 8 bytes: the version or sequence number it holds, then the payload as on the wire
 * (wireDtype). A worker writes a result slot only on the coordinator's credit (Work.shmRead: the
 * newest result it has read), so a slot is never reused unread; should anything else overwrite one,
 * a seqlock makes it an error, never a silent wrong tensor: the
 * writer sets the header to WRITING, writes the payload, then the tag; the reader reads the
 * whole file, then the header again, and accepts only the expected tag both times.
 */
import {
  closeSync,
  constants,
  fstatSync,
  ftruncateSync,
  lstatSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statfsSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { newToken, proofsEqual, shmGrantProof } from '../wire/auth.js';
import { join } from 'node:path';
import { fail } from '../util/errors.js';
import { BYTES_PER_ELEMENT, decodeTensor, encodeTensor, type WireDtype } from '../wire/wire-dtype.js';
import { type PayloadChannel, type PayloadOffer, RESULT_SLOTS } from './payload-channel.js';

/** Where a fresh channel directory is made: tmpfs, so files never reach a disk. */
export const SHM_ROOT = '/dev/shm';

/** Worker ids are the coordinator's own ("w12"); anything else never names a file. */
const WORKER_ID = /^w\d{1,9}$/;
/** The secret behind shared-memory grants, in the private directory (see grantProof). */
const GRANT_FILE = 'grant';
const HEADER = 8;
/** Header value while a slot is being written (no version or sequence number is negative). */
const WRITING = -1;

/** True while a process with this pid exists (signal 0 checks without signalling). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, someone else's
  }
}

/**
 * A coordinator killed with SIGKILL cannot remove its directory, and tmpfs holds it in memory
 * until reboot; directories are named after their coordinator's pid, so the next run removes
 * those whose coordinator is gone. (A /dev/shm shared across pid namespaces could make a live
 * one look gone; its run then loses the files and falls back to the socket, losing nothing.)
 */
function sweepOrphans(root: string): void {
  const uid = process.getuid?.();
  for (const name of readdirSync(root)) {
    const m = /^dptrain-(\d+)-/.exec(name);
    if (!m || Number(m[1]) === process.pid || alive(Number(m[1]))) continue;
    try {
      if (uid !== undefined && lstatSync(join(root, name)).uid !== uid) continue; // another user's: not ours to remove
      rmSync(join(root, name), { recursive: true, force: true });
    } catch {
      // gone already, or not removable: it is not in our way
    }
  }
}

export class ShmChannel implements PayloadChannel {
  readonly kind = 'files';
  /** Set once a file operation failed: from then on payloads go through the socket. */
  failed: string | null = null;
  /** Encoded 16-bit payloads for writes, reused. */
  private out: Uint8Array = new Uint8Array(0);
  private readonly headerBytes = new Uint8Array(HEADER);
  private readonly header = new DataView(this.headerBytes.buffer);
  /** Where reads land, reused; a payload read is valid until the next read on this channel. */
  private landing: Uint8Array = new Uint8Array(0);
  /** The header read before the payload, and again after it (the seqlock's check). */
  private readonly held = new Uint8Array(HEADER);
  private readonly recheck = new Uint8Array(HEADER);

  /** The coordinator's grant secret (see grantProof); null on a worker's side of the channel. */
  private grantSecret: string | null = null;

  constructor(readonly dir: string) {}

  /**
   * What a worker sends to be granted shared memory: the secret in the directory's grant file
   * (readable only by a process that can read this private directory) MACed over the
   * connection's nonce. Null when the file cannot be read: the worker then offers none.
   */
  static grantProof(dir: string, nonce: string): string | null {
    try {
      return shmGrantProof(readFileSync(join(dir, GRANT_FILE), 'utf8').trim(), nonce);
    } catch {
      return null;
    }
  }

  /** A worker's offer of this directory (DPTRAIN_SHM_DIR): it proves it can read the grant file. */
  static offer(dir: string): PayloadOffer {
    return { proof: (nonce) => ShmChannel.grantProof(dir, nonce), open: () => new ShmChannel(dir) };
  }

  get where(): string {
    return this.dir;
  }

  /** Coordinator side: does `proof` show its sender read this directory's grant file? */
  verifiesGrant(nonce: string, proof: string): boolean {
    return this.grantSecret !== null && proof !== '' && proofsEqual(proof, shmGrantProof(this.grantSecret, nonce));
  }

  /**
   * A new private directory (mode 0700) under `root`, or why not: no such directory, or too
   * little free space for `needBytes` (containers often give /dev/shm only 64 MB).
   */
  static create(needBytes: number, root = SHM_ROOT): ShmChannel | string {
    try {
      sweepOrphans(root);
      const fs = statfsSync(root);
      const free = fs.bavail * fs.bsize;
      if (free < needBytes)
        return `${root} has ${(free / 1e6).toFixed(0)} MB free, the payload files need ${(needBytes / 1e6).toFixed(0)} MB`;
      const channel = new ShmChannel(mkdtempSync(join(root, `dptrain-${process.pid}-`)));
      channel.grantSecret = newToken();
      writeFileSync(join(channel.dir, GRANT_FILE), channel.grantSecret, { mode: 0o600 });
      return channel;
    } catch (e) {
      return `${root} is not usable (${(e as NodeJS.ErrnoException).code ?? String(e)})`;
    }
  }

  /**
   * Bytes of files a job keeps here: at most one parameter slot per worker plus one, and result
   * slots, each as large as a result of `resultNodes` tree nodes (see shared/job/shard-tree.ts).
   */
  static footprint(params: number, workers: number, dtype: WireDtype, resultNodes = 1): number {
    const bytes = params * BYTES_PER_ELEMENT[dtype];
    return (workers + 1) * (HEADER + bytes) + RESULT_SLOTS * workers * (HEADER + resultNodes * bytes);
  }

  /** Stop using the channel (both the coordinator's sending and its granting of it to new workers). */
  disable(why: string): void {
    this.failed ??= why;
  }

  get usable(): boolean {
    return this.failed === null;
  }

  /** Remove a departed worker's result slots (tmpfs is memory). */
  removeResults(workerId: string): void {
    for (let k = 0; k < RESULT_SLOTS; k++) rmSync(this.resultPath(workerId, k), { force: true });
  }

  /** Remove the directory and its files (at the end of a run). */
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  paramsPath(slot: number): string {
    return join(this.dir, `params-${slot}.bin`);
  }

  resultPath(workerId: string, seq: number): string {
    if (!WORKER_ID.test(workerId))
      fail('MESSAGE_INVALID', `worker id ${JSON.stringify(workerId)} cannot name a shared-memory file`);
    return join(this.dir, `result-${workerId}-${seq % RESULT_SLOTS}.bin`);
  }

  /** Write errors (a full tmpfs) throw; callers fall back to sending the payload in the frame. */
  writeParams(slot: number, version: number, values: Float32Array, dtype: WireDtype): void {
    this.write(this.paramsPath(slot), version, values, dtype);
  }

  readParams(slot: number, version: number, n: number, dtype: WireDtype): Float32Array {
    return this.read(this.paramsPath(slot), version, n, dtype);
  }

  /** `grads` may come in parts (consecutive pieces of the flat vector), written one after another. */
  writeResult(workerId: string, seq: number, grads: Float32Array | readonly Float32Array[], dtype: WireDtype): void {
    this.write(this.resultPath(workerId, seq), seq, grads, dtype);
  }

  /** Into `into` when given (see read), else a view valid until the next read. */
  readResult(workerId: string, seq: number, n: number, dtype: WireDtype, into?: Float32Array): Float32Array {
    return this.read(this.resultPath(workerId, seq), seq, n, dtype, into);
  }

  private write(path: string, tag: number, values: Float32Array | readonly Float32Array[], dtype: WireDtype): void {
    // float32 is written straight from the caller's arrays; 16-bit dtypes are encoded into a reused buffer.
    const parts = values instanceof Float32Array ? [values] : values;
    let payloads = parts.map((v) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    if (dtype !== 'float32') {
      const bytes = parts.reduce((n, p) => n + p.length, 0) * BYTES_PER_ELEMENT[dtype];
      if (this.out.length < bytes) this.out = new Uint8Array(bytes);
      let at = 0;
      for (const p of parts) {
        encodeTensor(p, dtype, this.out.subarray(at));
        at += p.length * BYTES_PER_ELEMENT[dtype];
      }
      payloads = [this.out.subarray(0, bytes)];
    }
    // Open without O_TRUNC: the slot keeps its pages; its size changes only with a result's node count.
    const fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o600);
    try {
      this.header.setFloat64(0, WRITING, true);
      writeSync(fd, this.headerBytes, 0, HEADER, 0);
      let pos = HEADER;
      for (const payload of payloads) {
        for (let at = 0; at < payload.length; ) at += writeSync(fd, payload, at, payload.length - at, pos + at);
        pos += payload.length;
      }
      // A result may carry fewer tree nodes than the slot's last one: cut the file to this one.
      if (fstatSync(fd).size > pos) ftruncateSync(fd, pos);
      this.header.setFloat64(0, tag, true);
      writeSync(fd, this.headerBytes, 0, HEADER, 0); // now the tag: the payload before it is complete
    } finally {
      closeSync(fd);
    }
  }

  /**
   * The payload, as a view of the reused landing buffer, or written into `into` when given
   * (float32 payloads are read straight into it: the coordinator lands results in its arena).
   */
  private read(path: string, tag: number, n: number, dtype: WireDtype, into?: Float32Array): Float32Array {
    const payloadBytes = n * BYTES_PER_ELEMENT[dtype];
    const size = HEADER + payloadBytes;
    if (into && into.length !== n) throw new Error(`ShmChannel.read: ${n} values into an array of ${into.length}`);
    const direct = into !== undefined && dtype === 'float32';
    if (!direct && this.landing.length < payloadBytes) this.landing = new Uint8Array(payloadBytes); // its own ArrayBuffer: aligned
    const payload = direct
      ? new Uint8Array(into.buffer, into.byteOffset, payloadBytes)
      : this.landing.subarray(0, payloadBytes);
    let fd: number | null = null;
    try {
      fd = openSync(path, 'r');
      const have = fstatSync(fd).size;
      if (have !== size)
        fail('MESSAGE_INVALID', `shared-memory payload ${path} has ${have} bytes, ${n} ${dtype} values need ${size}`);
      readFully(fd, this.held, 0, path);
      readFully(fd, payload, HEADER, path);
      // The header again: if a writer began while we read, it no longer holds the tag we saw.
      readSync(fd, this.recheck, 0, HEADER, 0);
    } catch (e) {
      if ((e as { code?: string }).code === 'MESSAGE_INVALID') throw e;
      return fail(
        'MESSAGE_INVALID',
        `shared-memory payload ${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
      );
    } finally {
      if (fd !== null) closeSync(fd);
    }
    const held = new DataView(this.held.buffer).getFloat64(0, true);
    const after = new DataView(this.recheck.buffer).getFloat64(0, true);
    if (held !== tag || after !== tag) {
      fail(
        'MESSAGE_INVALID',
        `shared-memory payload ${path} holds #${held === tag ? after : held}, expected #${tag} (overwritten before it was read)`,
      );
    }
    if (direct) return into;
    const values = decodeTensor(payload, dtype, n);
    if (!into) return values;
    into.set(values);
    return into;
  }
}

/** Read dst.length bytes at file position `pos`, or fail naming the file. */
function readFully(fd: number, dst: Uint8Array, pos: number, path: string): void {
  for (let at = 0; at < dst.length; ) {
    const got = readSync(fd, dst, at, dst.length - at, pos + at);
    if (got === 0) fail('MESSAGE_INVALID', `shared-memory payload ${path} ended after ${pos + at} bytes`);
    at += got;
  }
}
