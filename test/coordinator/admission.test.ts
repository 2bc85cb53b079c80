/**
 * Admission decisions without a link: which refusal a hello earns, in which order, and when a
 * new unauthenticated connection is one too many (Membership carries these out; membership.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { type HelloContext, overPendingLimits, refuseHello } from '../../coordinator/admission.js';
import { newNonce, workerProof } from '../../shared/wire/auth.js';
import { type Hello, PROTOCOL_VERSION } from '../../shared/wire/protocol.js';

const TOKEN = 'a-test-token-of-enough-length';
const nonce = newNonce();
const context: HelloContext = { jobId: 'job-a', token: TOKEN, nonce, maxWorkers: 2, members: 0 };
const hello = (over: Partial<Hello> = {}): Hello => ({
  t: 'hello',
  protocol: PROTOCOL_VERSION,
  name: 'w',
  host: 'h',
  pid: 1,
  jobId: 'job-a',
  cnonce: 'c1',
  proof: workerProof(TOKEN, 'job-a', nonce, 'c1'),
  shm: '',
  ...over,
});

describe('refuseHello', () => {
  it('welcomes a hello with the right protocol, job and proof while there is room', () => {
    expect(refuseHello(hello(), context)).toBeNull();
    expect(refuseHello(hello({ jobId: '' }), context)).toBeNull();
    expect(refuseHello(hello({ proof: 'anything' }), { ...context, token: null })).toBeNull();
  });

  it('refuses with the kind the worker acts on, first the protocol, then the job, the token, the room', () => {
    const full = { ...context, members: 2 };
    const kind = (h: Hello, c = full) => refuseHello(h, c)?.kind;
    expect(kind(hello({ protocol: PROTOCOL_VERSION + 1, jobId: 'job-b', proof: 'x' }))).toBe('protocolMismatch');
    expect(kind(hello({ jobId: 'job-b', proof: 'x' }))).toBe('wrongJob');
    expect(kind(hello({ proof: 'x' }))).toBe('authFailed');
    // No proof at all: the worker was given no token, and the reason says that.
    expect(refuseHello(hello({ proof: '' }), full)?.reason).toMatch(/requires the job token; the worker has none/);
    expect(refuseHello(hello({ proof: 'x' }), full)?.reason).toMatch(/does not match/);
    expect(kind(hello())).toBe('jobFull');
    expect(kind(hello(), context)).toBeUndefined();
  });
});

describe('overPendingLimits', () => {
  const limits = { maxPendingPerAddress: 2, maxPending: 3 };
  it('counts per address, without the port', () => {
    expect(overPendingLimits('10.0.0.1:5', ['10.0.0.1:1'], limits)).toBeNull();
    expect(overPendingLimits('10.0.0.1:5', ['10.0.0.1:1', '10.0.0.1:2'], limits)).toEqual({ pending: 2, fromHere: 2 });
    expect(overPendingLimits('10.0.0.2:5', ['10.0.0.1:1', '10.0.0.1:2'], limits)).toBeNull();
  });

  it('and over all addresses together', () => {
    const three = ['10.0.0.1:1', '10.0.0.2:1', '10.0.0.3:1'];
    expect(overPendingLimits('10.0.0.4:1', three, limits)).toEqual({ pending: 3, fromHere: 0 });
  });
});
