/**
 * A resumed run trains on the data it began with: the checkpoint's dataset fingerprint against
 * this host's, or, where this host cannot load the data, the one its workers must match.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { CheckpointState } from '../../coordinator/checkpoint.js';
import { Coordinator } from '../../coordinator/coordinator.js';
import { parseConfig } from '../../shared/job/config.js';
import { jobLayout } from '../../shared/job/job-layout.js';
import { createLocalNetwork } from '../../shared/transport/local.js';
import { fakeWorker } from '../helpers/fake-worker.js';
import { expectCode } from '../helpers/expect-code.js';
import { XOR_JOB, ZERO_COUNTERS } from '../helpers/xor-job.js';

const cfg = parseConfig({
  ...XOR_JOB,
  steps: 10,
  batchSize: 4,
  evalEvery: 0,
});
const TOTAL = jobLayout(cfg).totalParams;
const WAS = 'xor:4+0:2->1:0123abcd';

function resumeAt(dataFingerprint: string | null): CheckpointState {
  const zeros = () => new Float32Array(TOTAL);
  return {
    step: 3,
    position: 12,
    version: 3,
    config: cfg,
    params: zeros(),
    adam: { m: zeros(), v: zeros(), accBeta1: 0.729, accBeta2: 0.997, step: 3 },
    counters: ZERO_COUNTERS,
    dataFingerprint,
  };
}

const coordinator = (datasetFingerprint: string | null, dataFingerprint: string | null) => {
  const net = createLocalNetwork();
  const log = pino({ level: 'silent' });
  const resume = resumeAt(dataFingerprint);
  return {
    net,
    make: () => new Coordinator({ config: cfg, listener: net.listener, log, runDir: null, resume, datasetFingerprint }),
  };
};

describe('resuming on other data', () => {
  it('refused in one line naming both fingerprints, before anything else', () => {
    const { make } = coordinator('xor:4+0:2->1:99999999', WAS);
    expect(expectCode(make, 'DATASET_UNAVAILABLE')).toBe(
      `the job's data changed since the checkpoint (${WAS}, now xor:4+0:2->1:99999999): resume with the files the run began with, or start a new run`,
    );
  });

  it("where this host cannot load the data, workers must have the checkpoint's", async () => {
    const { net, make } = coordinator(null, WAS);
    make();
    const odd = await fakeWorker(net.dial, TOTAL, { fingerprint: 'xor:4+0:2->1:99999999' });
    expect(await odd.closedKind).toBe('datasetDiffers');
    await net.listener.close();
  });

  it('an older checkpoint without a fingerprint resumes as before', () => {
    const { make } = coordinator('xor:4+0:2->1:99999999', null);
    expect(make().snapshot().step).toBe(3);
  });
});
