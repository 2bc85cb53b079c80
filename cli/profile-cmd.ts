/**
 * `dptrain profile --config F --backend B`: the per-kernel table of one worker training step
 * (one shard's gradient) for a job's model and data, on one backend, in this process.
 */
import type { BackendName } from '../shared/job/config.js';
import { jobLayout, loadJobData, prepareJob } from '../shared/job/job-layout.js';
import type { MatMulGrad } from '../shared/ops/matmul.js';
import { selectBackend } from '../worker/backend.js';
import { formatProfile, profileStep, type StepProfile } from '../worker/profile.js';
import { fail } from '../shared/util/errors.js';
import { resolveConfig } from './flags.js';

/** The largest batch a job may have (config batchSize), so the largest worth profiling. */
const MAX_BATCH = 1 << 20;

export interface ProfileFlags {
  config?: string;
  backend: BackendName;
  allowSoftwareGpu?: boolean;
  batch?: number;
  steps: number;
  matmulGrad?: MatMulGrad | 'both';
  json?: boolean;
}

/** Profiles of the job's step: the backend's matMul gradient form, or both forms to compare. */
export async function profileCommand(f: ProfileFlags): Promise<{ profiles: StepProfile[]; text: string }> {
  // Up front, before a backend loads: 0 steps leave no timing to report, a batch of 0 no kernels to time.
  if (!(Number.isInteger(f.steps) && f.steps >= 1))
    fail('CONFIG_INVALID', `--steps ${f.steps}: expected an integer ≥ 1`);
  if (f.batch !== undefined && !(Number.isInteger(f.batch) && f.batch >= 1 && f.batch <= MAX_BATCH))
    fail('CONFIG_INVALID', `--batch ${f.batch}: expected an integer from 1 to ${MAX_BATCH}`);
  const cfg = resolveConfig({ config: f.config });
  await prepareJob(cfg);
  const choice = await selectBackend(f.backend, { allowSoftwareGpu: f.allowSoftwareGpu });
  const ds = loadJobData(cfg);
  const layout = jobLayout(cfg);
  const batch = f.batch ?? Math.min(cfg.batchSize, ds.train.n);
  const forms: Array<MatMulGrad | undefined> = f.matmulGrad === 'both' ? ['flags', 'materialize'] : [f.matmulGrad];
  const profiles: StepProfile[] = [];
  for (const form of forms)
    profiles.push(await profileStep(layout, ds, { batch, steps: f.steps, seed: cfg.seed, matMulGrad: form }));
  const head = `${choice.name} (${choice.reason}); model ${layout.totalParams.toLocaleString('en-US')} parameters`;
  return { profiles, text: [head, ...profiles.map((p) => formatProfile(p))].join('\n\n') };
}
