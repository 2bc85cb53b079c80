/**
 * Job tokens and the handshake proof. A worker proves it holds the job token without sending
 * it: the coordinator sends a random nonce (challenge), the worker answers with
 * HMAC-SHA256(token, worker|job|nonce|cnonce) and its own nonce, and the coordinator proves
 * itself back with HMAC-SHA256(token, coordinator|job|cnonce|nonce) in the welcome. The job id
 * is inside both MACs, so a proof for one job is useless for another; fresh nonces on both
 * sides make a recorded handshake useless to replay.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { fail } from '../util/errors.js';

const LABEL = 'dptrain/1';

/** 32 random bytes, base64url: what `dptrain token` prints. */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

export function newNonce(): string {
  return randomBytes(24).toString('base64url');
}

function mac(token: string, parts: string[]): string {
  return createHmac('sha256', Buffer.from(token, 'utf8'))
    .update([LABEL, ...parts].join('|'))
    .digest('base64url');
}

export function workerProof(token: string, jobId: string, nonce: string, cnonce: string): string {
  return mac(token, ['worker', jobId, nonce, cnonce]);
}

export function coordinatorProof(token: string, jobId: string, cnonce: string, nonce: string): string {
  return mac(token, ['coordinator', jobId, cnonce, nonce]);
}

/** A shared-memory grant: the directory's secret over one connection's nonce (no replay to another). */
export function shmGrantProof(secret: string, nonce: string): string {
  return mac(secret, ['shm', nonce]);
}

/** A slice link's opening (coordinator/slices/): the job token over the shard's nonce, for one role. */
export function sliceProof(token: string, nonce: string, role: string): string {
  return mac(token, ['slice', role, nonce]);
}

/**
 * A slice shard's answer: it holds the token too. Over both nonces, so that a recorded answer
 * fits no other link and a client's proof (over the shard's nonce alone) is never an answer.
 */
export function shardProof(token: string, shardNonce: string, clientNonce: string): string {
  return mac(token, ['slice', 'shard', shardNonce, clientNonce]);
}

/** Constant-time comparison of two proofs. */
export function proofsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Tokens shorter than this are refused: they could be guessed offline from a recorded handshake. */
export const MIN_TOKEN_LENGTH = 16;

/**
 * The job token from --token-file or DPTRAIN_TOKEN (the file wins), or null. Surrounding
 * whitespace is ignored, so `dptrain token > job.token` works as is.
 */
export function readToken(tokenFile: string | undefined, env = process.env): string | null {
  let token: string | undefined;
  if (tokenFile) {
    try {
      token = readFileSync(tokenFile, 'utf8').trim();
    } catch (e) {
      fail(
        'CONFIG_UNREADABLE',
        `--token-file ${tokenFile}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
      );
    }
    // A file given but empty is a mistake, not a wish to run without a token.
    if (token === '')
      fail('CONFIG_INVALID', `--token-file ${tokenFile} is empty; put the job token in it (dptrain token > FILE)`);
    warnIfShared(tokenFile);
  } else token = env.DPTRAIN_TOKEN?.trim();
  if (token === undefined || token === '') return null;
  if (token.length < MIN_TOKEN_LENGTH) {
    fail(
      'CONFIG_INVALID',
      `the job token is ${token.length} characters; use at least ${MIN_TOKEN_LENGTH} (dptrain token makes a good one)`,
    );
  }
  return token;
}

/**
 * Whoever can read the token file can join the job (and, with the dashboard beyond loopback, log
 * in): said at start, as ssh does of a private key others can read. A warning here; dptrain
 * slurm refuses such a file (cli/slurm-cmd.ts), since there it sits on the cluster's shared filesystem.
 */
function warnIfShared(tokenFile: string): void {
  const mode = statSync(tokenFile).mode & 0o777;
  if (mode & 0o077)
    process.stderr.write(
      `dptrain: warning: --token-file ${tokenFile} is readable by others (mode ${mode.toString(8)}): whoever reads it can join the job; chmod 600 it\n`,
    );
}

/** Loopback addresses, where no token is required. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * The dashboard's session cookie value for a login at `issued` (epoch ms) with a random `nonce`:
 * a MAC under the job token, so only someone who typed the token can have one, and the token
 * itself never travels in a cookie or a URL.
 */
export function dashboardSessionMac(token: string, issued: number, nonce: string): string {
  return mac(token, ['dashboard', String(issued), nonce]);
}
