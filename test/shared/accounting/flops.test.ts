import { describe, expect, it } from 'vitest';
import { denseFlopsPerSample } from '../../../shared/accounting/flops.js';
import { devicePeak } from '../../../shared/accounting/devices.js';
import { DEFAULT_CONFIG } from '../../../shared/job/config.js';
import { parseModelSpec } from '../../../shared/models/index.js';
import { denseFor as layoutModel } from '../../helpers/layouts.js';
import { expectCode } from '../../helpers/expect-code.js';

describe('dense FLOPs per sample', () => {
  it('the default MNIST MLP 784-256-128-10 (relu, relu, linear; softmax cross-entropy), counted by hand', () => {
    const layout = layoutModel(DEFAULT_CONFIG.model, 784, 10);
    const f = denseFlopsPerSample(layout);
    // matmuls: 2·(784·256 + 256·128 + 128·10) = 2·(200,704 + 32,768 + 1,280) = 469,504
    expect(f.matmul).toBe(469_504);
    // bias adds: 256 + 128 + 10 = 394; relu on 256 + 128 = 384 units; loss on 10 outputs
    expect(f.bias).toBe(394);
    expect(f.activation).toBe(384);
    expect(f.loss).toBe(10);
    // forward 469,504 + 394 + 384 + 10 = 470,292; training = 3 × forward = 1,410,876
    expect(f.forward).toBe(470_292);
    expect(f.training).toBe(1_410_876);
    // ≈ 6·N: N = 235,146 parameters, 6·N = 1,410,876 (equal here: per-unit terms add up to 2·biases)
    expect(6 * layout.totalParams).toBe(1_410_876);
  });

  it('a linear output layer costs no activation FLOPs; a tanh one does', () => {
    const lin = denseFlopsPerSample(
      layoutModel(parseModelSpec({ layers: [{ units: 3 }], loss: 'meanSquaredError' }), 2, 3),
    );
    const tanh = denseFlopsPerSample(
      layoutModel(parseModelSpec({ layers: [{ units: 3, activation: 'tanh' }], loss: 'meanSquaredError' }), 2, 3),
    );
    expect(lin.forward).toBe(2 * 2 * 3 + 3 + 0 + 3);
    expect(tanh.forward - lin.forward).toBe(3);
  });
});

describe('device peaks', () => {
  it('dense datasheet figures, not the sparsity ones', () => {
    expect(devicePeak('A100', 'bf16')).toBe(312e12);
    expect(devicePeak('a100', 'fp32')).toBe(19.5e12);
    expect(devicePeak('H100', 'bf16')).toBe(989e12);
    expect(devicePeak('h200', 'fp32')).toBe(67e12);
    expect(devicePeak('V100', 'fp32')).toBe(15.7e12);
    expect(devicePeak('T4', 'bf16')).toBe(65e12);
  });

  it('an unknown device, or a precision it has no figure for, names what to give instead', () => {
    expect(expectCode(() => devicePeak('mi300', 'bf16'), 'CONFIG_INVALID')).toMatch(/--device mi300 .*--peak-flops/);
    expect(expectCode(() => devicePeak('tpu-v4', 'fp32'), 'CONFIG_INVALID')).toMatch(/--precision bf16/);
  });
});
