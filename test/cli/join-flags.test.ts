/** A joining worker's declared peak: one of --peak-flops or --device, a precision only with a device. */
import { describe, expect, it } from 'vitest';
import { joinPeak } from '../../cli/join-flags.js';
import { expectCode } from '../helpers/expect-code.js';

describe('joinPeak', () => {
  it('takes --peak-flops, or the device table at its precision, or nothing', () => {
    expect(joinPeak({ peakFlops: 2e12, precision: 'fp32' })).toBe(2e12);
    expect(joinPeak({ device: 'a100', precision: 'bf16' })).toBeGreaterThan(
      joinPeak({ device: 'a100', precision: 'fp32' })!,
    );
    expect(joinPeak({ precision: 'fp32' })).toBeUndefined();
  });

  it('refuses both at once, a precision without a device, and a peak ≤ 0', () => {
    expect(expectCode(() => joinPeak({ peakFlops: 1e12, device: 'a100', precision: 'fp32' }), 'CONFIG_INVALID')).toBe(
      '--peak-flops and --device: give one, not both',
    );
    expect(expectCode(() => joinPeak({ precision: 'bf16' }), 'CONFIG_INVALID')).toBe(
      "--precision bf16 goes with --device (it picks a column of the device's datasheet)",
    );
    expect(expectCode(() => joinPeak({ peakFlops: -5, precision: 'fp32' }), 'CONFIG_INVALID')).toBe(
      '--peak-flops must be a number > 0, got -5',
    );
  });
});
