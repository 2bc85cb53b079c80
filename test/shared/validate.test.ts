import { MAX_LEAVES } from '../../shared/job/shard-tree.js';
import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame } from '../../shared/wire/codec.js';
import { DEFAULT_CONFIG, jobOf } from '../../shared/job/config.js';
import { DptrainError } from '../../shared/util/errors.js';
import type { Message } from '../../shared/wire/protocol.js';
import { MAX_STRING, readFromCoordinator, readFromWorker, type ValidateContext } from '../../shared/wire/validate.js';
import { resultFor, resultMsg } from '../helpers/result-msg.js';

const CTX: ValidateContext = { totalParams: 5 };
const params5 = () => new Float32Array([0.5, -1, 2, 0, 3]);

const TO_COORD: Array<[Message, Float32Array | null]> = [
  [{ t: 'hello', protocol: 1, name: 'w0', host: 'box', pid: 4242, jobId: '', cnonce: 'c', proof: 'p', shm: '' }, null],
  [
    {
      t: 'ready',
      fingerprint: 'mnist:8500+1500:784->10:deadbeef',
      backend: 'cpu',
      backendReason: 'asked for cpu',
      peakFlops: 0,
      attainableFlops: 2.5e9,
      workers: 1,
    },
    null,
  ],
  [
    { ...resultFor({ step: 3, micro: 0, shard: 1 }, { lossSum: 12.5, losses: [12.5], count: 64 }), computeMs: 3.25 },
    params5(),
  ],
  [{ t: 'evalResult', round: 2, shard: 0, lossSum: -0.5, correct: 60, count: 64, computeMs: 1 }, null],
  [{ t: 'fault', message: 'kernel Gelu missing on wasm' }, null],
];
const TO_WORKER: Array<[Message, Float32Array | null]> = [
  [{ t: 'challenge', protocol: 1, jobId: 'job-abc', nonce: 'n' }, null],
  [
    {
      t: 'welcome',
      protocol: 1,
      workerId: 'w-1',
      jobId: 'job-abc',
      job: jobOf(DEFAULT_CONFIG),
      proof: 'p',
      shm: false,
    },
    null,
  ],
  [{ t: 'params', version: 0, shm: 0 }, params5()],
  [
    {
      t: 'work',
      step: 0,
      micro: 1,
      shard: 2,
      version: 0,
      from: 128,
      to: 192,
      leaves: 2,
      first: 1,
      last: 2,
      batch: 128,
      shmRead: 3,
    },
    null,
  ],
  [{ t: 'evaluate', round: 0, shard: 0, version: 3, from: 0, to: 1 }, null],
  [{ t: 'bye', reason: 'done' }, null],
];

/** Encode anything, including headers that are deliberately not valid messages. */
const frame = (h: Record<string, unknown>, payload: Float32Array | null = null) =>
  encodeFrame(h as unknown as Message, payload);

function rejects(fn: () => unknown, fieldText: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected MESSAGE_INVALID to be thrown').toBeInstanceOf(DptrainError);
  expect((err as DptrainError).code).toBe('MESSAGE_INVALID');
  expect((err as DptrainError).message).toContain(fieldText);
}

describe('valid messages are accepted in their direction', () => {
  it.each(TO_COORD.map(([m, p]) => [m.t, m, p] as const))('worker → coordinator: %s', (_t, msg, payload) => {
    const f = readFromWorker(encodeFrame(msg, payload), CTX);
    expect(f.msg).toEqual(msg);
    if (payload) expect(Array.from(f.payload!)).toEqual(Array.from(payload));
    else expect(f.payload).toBeNull();
  });

  it.each(TO_WORKER.map(([m, p]) => [m.t, m, p] as const))('coordinator → worker: %s', (_t, msg, payload) => {
    const f = readFromCoordinator(encodeFrame(msg, payload), CTX);
    expect(f.msg).toEqual(msg);
    if (payload) expect(Array.from(f.payload!)).toEqual(Array.from(payload));
    else expect(f.payload).toBeNull();
  });

  it('a string of exactly MAX_STRING characters is accepted', () => {
    expect(readFromWorker(frame({ t: 'fault', message: 'x'.repeat(MAX_STRING) }), CTX).msg.t).toBe('fault');
  });
});

describe('messages are rejected with MESSAGE_INVALID naming the field', () => {
  it('a coordinator-bound message sent to the worker side, and vice versa', () => {
    for (const [m, p] of TO_COORD) rejects(() => readFromCoordinator(encodeFrame(m, p), CTX), `"${m.t}"`);
    for (const [m, p] of TO_WORKER) rejects(() => readFromWorker(encodeFrame(m, p), CTX), `"${m.t}"`);
  });

  it('unknown or missing type, and a header that is not an object', () => {
    rejects(() => readFromWorker(frame({ t: 'hack', x: 1 }), CTX), '"hack"');
    rejects(() => readFromWorker(frame({ reason: 'x' }), CTX), 'message type');
    rejects(() => readFromWorker(encodeFrame(42 as unknown as Message), CTX), 'not an object');
    rejects(() => readFromWorker(encodeFrame([1, 2] as unknown as Message), CTX), 'not an object');
  });

  it('an unknown field', () => {
    rejects(() => readFromCoordinator(frame({ t: 'bye', reason: 'x', extra: 1 }), CTX), 'bye.extra');
  });

  it('an unknown field named like an Object.prototype member', () => {
    // `k in shape` also finds inherited keys; the validator must only accept the shape's own fields.
    rejects(() => readFromCoordinator(frame({ t: 'bye', reason: 'x', constructor: 1 }), CTX), 'bye.constructor');
    rejects(() => readFromWorker(frame({ t: 'fault', message: 'x', toString: 'y' }), CTX), 'fault.toString');
  });

  it('a missing field', () => {
    rejects(() => readFromWorker(frame({ t: 'hello', protocol: 1, name: 'w', host: 'h' }), CTX), 'hello.pid');
    rejects(
      () => readFromCoordinator(frame({ t: 'welcome', protocol: 1, workerId: 'w', jobId: 'j' }), CTX),
      'welcome.job',
    );
  });

  it('a field of the wrong type', () => {
    rejects(() => readFromWorker(frame({ t: 'hello', protocol: 1, name: 5, host: 'h', pid: 1 }), CTX), 'hello.name');
    rejects(
      () => readFromWorker(frame({ t: 'hello', protocol: '1', name: 'w', host: 'h', pid: 1 }), CTX),
      'hello.protocol',
    );
    rejects(
      () => readFromCoordinator(frame({ t: 'welcome', protocol: 1, workerId: 'w', jobId: 'j', job: [1] }), CTX),
      'welcome.job',
    );
    rejects(
      () => readFromCoordinator(frame({ t: 'welcome', protocol: 1, workerId: 'w', jobId: 'j', job: null }), CTX),
      'welcome.job',
    );
  });

  it('a negative count', () => {
    rejects(() => readFromWorker(frame({ ...resultMsg(1, 1), step: -1 }, params5()), CTX), 'result.step');
  });

  it('a diverged loss (NaN, ±Infinity) is a valid result: the coordinator skips the step, not the worker', () => {
    const r = resultMsg(1, 1);
    for (const lossSum of [NaN, Infinity, -Infinity]) {
      expect(
        Object.is(readFromWorker(frame({ ...r, lossSum, losses: [lossSum] }, params5()), CTX).msg.t, 'result'),
      ).toBe(true);
    }
  });

  it('work whose leaves are not a range of the batch, or whose rows are not its leaves', () => {
    const w = { t: 'work', step: 0, micro: 0, shard: 0, version: 0, from: 10, to: 20, batch: 40, shmRead: 0 };
    // 40 rows in 4 leaves of 10: leaf 1 is rows [10, 20) of the batch.
    expect(readFromCoordinator(frame({ ...w, leaves: 4, first: 1, last: 2 }), CTX).msg).toMatchObject({ first: 1 });
    rejects(() => readFromCoordinator(frame({ ...w, leaves: 4, first: 2, last: 2 }), CTX), 'work leaves');
    rejects(() => readFromCoordinator(frame({ ...w, leaves: 4, first: 1, last: 5 }), CTX), 'work leaves');
    rejects(() => readFromCoordinator(frame({ ...w, leaves: 41, first: 1, last: 2 }), CTX), 'work leaves');
    rejects(() => readFromCoordinator(frame({ ...w, leaves: 4, first: 1, last: 3 }), CTX), 'work rows');
  });

  it('a result whose payload is not one model-sized tensor per loss', () => {
    const r = resultMsg(1, 1);
    const two = new Float32Array(10);
    expect(readFromWorker(frame({ ...r, losses: [0.5, 0.5] }, two), CTX).payload?.length).toBe(10);
    rejects(() => readFromWorker(frame({ ...r, losses: [1] }, two), CTX), 'the model has 5');
    rejects(() => readFromWorker(frame({ ...r, losses: [1, 1, 1] }, two), CTX), '3 nodes');
    rejects(() => readFromWorker(frame({ ...r, losses: [] }, params5()), CTX), 'result.losses');
    rejects(() => readFromWorker(frame({ ...r, losses: ['1'] }, params5()), CTX), 'result.losses');
  });

  it('a non-integer count', () => {
    rejects(
      () => readFromCoordinator(frame({ t: 'work', step: 0, micro: 0, shard: 1.5, version: 0, from: 0, to: 4 }), CTX),
      'work.shard',
    );
    rejects(
      () => readFromWorker(frame({ t: 'hello', protocol: 1, name: 'w', host: 'h', pid: 2 ** 53 }), CTX),
      'hello.pid',
    );
  });

  it('NaN or Infinity where a finite number is required', () => {
    const r = resultMsg(1, 1);
    rejects(() => readFromWorker(frame({ ...r, computeMs: NaN }, params5()), CTX), 'result.computeMs');
    rejects(() => readFromWorker(frame({ ...r, computeMs: -Infinity }, params5()), CTX), 'result.computeMs');
    const e = { t: 'evalResult', round: 0, shard: 0, lossSum: 1, correct: 0, count: 1 };
    rejects(() => readFromWorker(frame({ ...e, computeMs: Infinity }), CTX), 'evalResult.computeMs');
    rejects(() => readFromWorker(frame({ ...e, computeMs: 1, count: NaN }), CTX), 'evalResult.count');
  });

  it('a string longer than MAX_STRING', () => {
    rejects(() => readFromWorker(frame({ t: 'fault', message: 'x'.repeat(MAX_STRING + 1) }), CTX), 'fault.message');
    rejects(() => readFromCoordinator(frame({ t: 'bye', reason: 'é'.repeat(MAX_STRING + 1) }), CTX), 'bye.reason');
  });

  it('work and evaluate with to <= from', () => {
    const w = {
      t: 'work',
      step: 0,
      micro: 0,
      shard: 0,
      version: 0,
      leaves: 1,
      first: 0,
      last: 1,
      batch: 64,
      shmRead: 0,
    };
    rejects(() => readFromCoordinator(frame({ ...w, from: 64, to: 64 }), CTX), 'work.to');
    rejects(() => readFromCoordinator(frame({ ...w, from: 64, to: 10 }), CTX), 'work.to');
    rejects(
      () => readFromCoordinator(frame({ t: 'evaluate', round: 0, shard: 0, version: 0, from: 5, to: 5 }), CTX),
      'evaluate.to',
    );
  });

  it('a payload whose length is not the model parameter count', () => {
    rejects(
      () => readFromCoordinator(encodeFrame({ t: 'params', version: 1, shm: 0 }, new Float32Array(4)), CTX),
      'params',
    );
    rejects(
      () => readFromCoordinator(encodeFrame({ t: 'params', version: 1, shm: 0 }, new Float32Array(6)), CTX),
      'params',
    );
    const r = resultMsg(1, 1);
    rejects(() => readFromWorker(encodeFrame(r, new Float32Array(1)), CTX), 'result');
  });

  it('a payload type without its payload', () => {
    rejects(() => readFromCoordinator(encodeFrame({ t: 'params', version: 1, shm: 0 }), CTX), 'params must carry');
  });

  it('a payload on a message that must not carry one', () => {
    rejects(() => readFromCoordinator(encodeFrame({ t: 'bye', reason: 'x' }, params5()), CTX), 'bye must not carry');
    rejects(
      () =>
        readFromWorker(
          encodeFrame(
            { t: 'hello', protocol: 1, name: 'w', host: 'h', pid: 1, jobId: '', cnonce: 'c', proof: 'p', shm: '' },
            params5(),
          ),
          CTX,
        ),
      'hello',
    );
  });

  it('a result before the model is known (totalParams null)', () => {
    const r = resultMsg(1, 1);
    rejects(() => readFromWorker(encodeFrame(r, params5()), { totalParams: null }), 'result arrived before the model');
    rejects(
      () => readFromCoordinator(encodeFrame({ t: 'params', version: 0, shm: 0 }, params5()), { totalParams: null }),
      'params',
    );
  });
});

describe('payloads in shared memory', () => {
  const result = resultMsg(1, 1);

  it('a result with shm > 0 or params with shm: true carry no payload', () => {
    expect(readFromWorker(frame({ ...result, shm: 3 }), CTX).payload).toBeNull();
    expect(readFromCoordinator(frame({ t: 'params', version: 2, shm: 1 }), CTX).payload).toBeNull();
  });

  it('either way round is refused: a payload beside shm, or neither', () => {
    rejects(() => readFromWorker(frame({ ...result, shm: 3 }, params5()), CTX), 'its payload is in shared memory');
    rejects(() => readFromWorker(frame({ ...result, shm: 0 }), CTX), 'result must carry a float32 payload');
    rejects(() => readFromCoordinator(frame({ t: 'params', version: 2, shm: 0 }), CTX), 'params must carry');
    rejects(() => readFromWorker(frame({ ...result, shm: true }), CTX), 'result.shm');
  });
});

describe('what a peer sends cannot forge or flood log lines', () => {
  it('an unknown key is named quoted (newlines escaped) and cut to 40 characters', () => {
    const key = `x\n12:00:00 INFO  [coordinator] worker ready ${'y'.repeat(100)}`;
    let message = '';
    try {
      readFromWorker(
        frame({
          t: 'hello',
          protocol: 1,
          name: 'w',
          host: 'h',
          pid: 1,
          jobId: '',
          cnonce: 'c',
          proof: 'p',
          shm: '',
          [key]: 1,
        }),
        CTX,
      );
    } catch (e) {
      message = (e as DptrainError).message;
    }
    expect(message).not.toContain('\n');
    expect(message).toContain(`hello.${JSON.stringify(`${key.slice(0, 40)}…`)} is not a field of hello`);
    expect(message.length).toBeLessThan(120);
  });
});

describe('payload sizes are checked from the frame, before any widening', () => {
  it('a float16 payload longer than the model is refused with its length, not widened first', () => {
    const n = 1 << 20; // 2 MB as float16; widening would allocate 4 MB
    const big = encodeFrame(
      { ...resultFor({ step: 0, micro: 0, shard: 0 }, { lossSum: 0, losses: [0], count: 1 }), computeMs: 0, busyMs: 0 },
      new Float32Array(n),
      'float16',
    );
    rejects(
      () => readFromWorker(big, { totalParams: 5, wireDtype: 'float16' }),
      `result payload has ${n} floats, more than the ${5 * MAX_LEAVES}`,
    );
    // The refusal comes from the decoder, which has only the frame's length then: without a
    // limit the same frame decodes (widened to float32).
    rejects(() => decodeFrame(big, 5), `result payload has ${n} floats, more than the 5`);
    expect(decodeFrame(big).payload?.length).toBe(n);
  });
});
