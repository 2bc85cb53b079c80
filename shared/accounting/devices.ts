/**
 * Peak dense FLOP/s per device from the vendors' datasheets — the dense figures, never the
 * "with sparsity" ones. bf16 is the tensor-core figure; fp32 the plain (non-TF32) one, which is
 * what TF.js float32 kernels can reach at best.
 *   A100 SXM: 312 TFLOPS bf16, 19.5 fp32 (NVIDIA A100 datasheet)
 *   H100 SXM: 989 TFLOPS bf16, 67 fp32 (NVIDIA H100 datasheet); H200 has the same compute
 *   V100 SXM2: 125 TFLOPS fp16 tensor core, 15.7 fp32 (NVIDIA V100 datasheet)
 *   T4: 65 TFLOPS fp16 tensor core, 8.1 fp32 (NVIDIA T4 datasheet)
 *   TPU v4: 275 TFLOPS bf16 (PaLM, Chowdhery et al. 2022, App. B)
 */
import { fail } from '../util/errors.js';

export const PRECISIONS = ['bf16', 'fp32'] as const;
export type Precision = (typeof PRECISIONS)[number];

export const DEVICES: Record<string, Partial<Record<Precision, number>>> = {
  a100: { bf16: 312e12, fp32: 19.5e12 },
  h100: { bf16: 989e12, fp32: 67e12 },
  h200: { bf16: 989e12, fp32: 67e12 },
  v100: { bf16: 125e12, fp32: 15.7e12 },
  t4: { bf16: 65e12, fp32: 8.1e12 },
  'tpu-v4': { bf16: 275e12 },
};

/** The table's names for help and refusals, a device without an fp32 figure marked: "…, tpu-v4 (bf16 only)". */
export function deviceNames(): string {
  return Object.entries(DEVICES)
    .map(([name, row]) => {
      const columns = PRECISIONS.filter((p) => row[p] !== undefined);
      return columns.length === 1 ? `${name} (${columns[0]} only)` : name;
    })
    .join(', ');
}

/**
 * Peak FLOP/s of a named device at a precision ("A100", "h100"; case-insensitive). `peakField`
 * is what the caller takes instead of a name (`dptrain plan` calls it --peak), for the refusal.
 */
export function devicePeak(name: string, precision: Precision, field = '--device', peakField = '--peak-flops'): number {
  const row = DEVICES[name.toLowerCase()];
  if (!row)
    fail('CONFIG_INVALID', `${field} ${name} is not in the device table (${deviceNames()}); give ${peakField} instead`);
  const peak = row[precision];
  if (peak === undefined)
    fail(
      'CONFIG_INVALID',
      `${field} ${name} has no ${precision} figure; use --precision ${Object.keys(row).join(' or ')}`,
    );
  return peak;
}
