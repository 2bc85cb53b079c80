import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  checkStartedWithin,
  DEFAULT_CONFIG,
  mergeOverrides,
  parseConfig,
  readConfigFile,
} from '../../shared/job/config.js';
import { expectCode } from '../helpers/expect-code.js';
import { jobLayout } from '../../shared/job/job-layout.js';

const model = (layers: Array<{ units: number; activation: string }>, loss = 'softmaxCrossEntropy') => ({
  layers,
  loss,
});

describe('parseConfig', () => {
  it('{} gives the defaults', () => {
    const c = parseConfig({});
    expect(c).toEqual(DEFAULT_CONFIG);
    expect(c.minWorkers).toBe(1);
  });

  it("a model section takes the documented defaults for what it leaves out (loss; a dense model's layers)", () => {
    const noLoss = parseConfig({ model: { layers: [{ units: 10 }] } });
    expect(noLoss.model).toEqual({ layers: [{ units: 10, activation: 'linear' }], loss: 'softmaxCrossEntropy' });
    expect(parseConfig({ model: { kind: 'dense' } }).model).toEqual(DEFAULT_CONFIG.model);
    const cnn = parseConfig({
      data: { name: 'mnist' },
      model: { kind: 'cnn', layers: [{ type: 'flatten' }, { type: 'dense', units: 10 }] },
    });
    expect((cnn.model as { loss: string }).loss).toBe('softmaxCrossEntropy');
    // The default loss still has to fit the head: one output wants binaryCrossEntropy.
    const xor = parseConfig({ data: { name: 'xor' }, model: { layers: [{ units: 1 }] } });
    expect(expectCode(() => jobLayout(xor), 'MODEL_INVALID')).toMatch(
      /softmaxCrossEntropy needs at least 2 outputs; use binaryCrossEntropy/,
    );
  });

  it('maxWorkers below the default workers is fine for a command that starts none; one that starts more is refused', () => {
    const c = parseConfig({ maxWorkers: 1 }); // dptrain coordinator --max-workers 1: workers (default 2) is not read
    expect(c.workers).toBe(2);
    expect(() => checkStartedWithin(c, 1, 'workers')).not.toThrow();
    expect(expectCode(() => checkStartedWithin(c, 2, 'host agents'), 'CONFIG_INVALID')).toBe(
      'host agents (2) is above maxWorkers (1)',
    );
  });

  it('a peak declared twice, or a precision without a device, is refused rather than half ignored', () => {
    expect(expectCode(() => parseConfig({ compute: { peakFlops: 1e12, device: 'a100' } }), 'CONFIG_INVALID')).toBe(
      'compute.peakFlops and compute.device: give one, not both (--peak-flops or --device)',
    );
    expect(expectCode(() => parseConfig({ compute: { precision: 'bf16' } }), 'CONFIG_INVALID')).toBe(
      'compute.precision bf16 goes with compute.device (--precision with --device)',
    );
    expect(parseConfig({ compute: { precision: 'bf16', device: 'a100' } }).compute.precision).toBe('bf16');
  });

  it('a number too large for a float (1e400 in a file) is named as Infinity, not null', () => {
    expect(expectCode(() => parseConfig(JSON.parse('{"steps": 1e400}')), 'CONFIG_INVALID')).toMatch(/got Infinity$/);
  });

  it('a shard count above the batch is refused: a shard holds at least one sample', () => {
    expect(parseConfig({ batchSize: 8, shards: 8 }).shards).toBe(8);
    expect(expectCode(() => parseConfig({ batchSize: 8, shards: 9 }), 'CONFIG_INVALID')).toBe(
      'shards (9) is above batchSize (8): a shard holds at least one sample',
    );
  });

  it('minWorkers is independent of workers, at least 1', () => {
    expect(parseConfig({ workers: 5 }).minWorkers).toBe(1);
    expect(parseConfig({ workers: 5, minWorkers: 3 }).minWorkers).toBe(3);
    expect(expectCode(() => parseConfig({ minWorkers: 0 }), 'CONFIG_INVALID')).toMatch(/minWorkers/);
  });

  it('accepts a full, non-default config as given', () => {
    const raw = {
      seed: 7,
      data: { name: 'spirals', samples: 500, noise: 0.1, testFraction: 0.3 },
      model: model([
        { units: 16, activation: 'tanh' },
        { units: 2, activation: 'linear' },
      ]),
      steps: 50,
      batchSize: 32,
      optimizer: { lr: 0.01, schedule: 'cosine', warmupSteps: 5 },
      backend: 'cpu',
      out: 'runs/x',
    };
    const c = parseConfig(raw);
    expect(c.data).toEqual(raw.data);
    expect(c.model).toEqual(raw.model);
    expect(c.optimizer).toEqual({ ...DEFAULT_CONFIG.optimizer, lr: 0.01, schedule: 'cosine', warmupSteps: 5 });
    expect([c.seed, c.steps, c.batchSize, c.backend, c.out]).toEqual([7, 50, 32, 'cpu', 'runs/x']);
  });

  it('rejects an unknown top-level key, naming it', () => {
    expect(expectCode(() => parseConfig({ stepz: 10 }), 'CONFIG_INVALID')).toContain('stepz');
  });

  it('rejects an unknown optimizer key, naming it', () => {
    expect(expectCode(() => parseConfig({ optimizer: { lr: 0.1, momentum: 0.9 } }), 'CONFIG_INVALID')).toContain(
      'optimizer.momentum',
    );
  });

  it('rejects an unknown data key, naming it', () => {
    expect(expectCode(() => parseConfig({ data: { name: 'xor', samples: 4 } }), 'CONFIG_INVALID')).toContain(
      'data.samples',
    );
  });

  const bad: Array<[string, Record<string, unknown>, string]> = [
    ['steps -1', { steps: -1 }, 'steps'],
    ['steps 1.5', { steps: 1.5 }, 'steps'],
    ['batchSize 0', { batchSize: 0 }, 'batchSize'],
    ['lr 0', { optimizer: { lr: 0 } }, 'optimizer.lr'],
    ["lr 'x'", { optimizer: { lr: 'x' } }, 'optimizer.lr'],
    ['beta1 1', { optimizer: { beta1: 1 } }, 'optimizer.beta1'],
    ["schedule 'linear'", { optimizer: { schedule: 'linear' } }, 'optimizer.schedule'],
    ["backend 'gpu'", { backend: 'gpu' }, 'backend'],
    ["data.name 'foo'", { data: { name: 'foo' } }, 'data.name'],
    ['data.testFraction 0.95', { data: { name: 'mnist', testFraction: 0.95 } }, 'data.testFraction'],
    ['data idx without path', { data: { name: 'idx' } }, 'data.path'],
    ['workers 0', { workers: 0 }, 'workers'],
    ['seed -1', { seed: -1 }, 'seed'],
    ["out ''", { out: '' }, 'out'],
    [
      "model.layers[1].activation 'swish'",
      {
        model: model([
          { units: 8, activation: 'relu' },
          { units: 8, activation: 'swish' },
          { units: 10, activation: 'linear' },
        ]),
      },
      'model.layers[1].activation',
    ],
    [
      'last layer not linear with softmaxCrossEntropy',
      {
        model: model([
          { units: 8, activation: 'relu' },
          { units: 10, activation: 'relu' },
        ]),
      },
      'model.layers[1].activation',
    ],
  ];

  it.each(bad)('rejects %s with CONFIG_INVALID naming the field', (_name, raw, field) => {
    expect(expectCode(() => parseConfig(raw), 'CONFIG_INVALID')).toContain(`${field} must`);
  });

  it('rejects a config that is not an object', () => {
    for (const raw of [null, [], 'x', 3]) expectCode(() => parseConfig(raw), 'CONFIG_INVALID');
  });
});

describe('mergeOverrides', () => {
  const file = { steps: 10, batchSize: 32, backend: 'cpu', optimizer: { lr: 0.01, beta1: 0.8, schedule: 'cosine' } };

  it('flags override file fields; undefined flags leave them alone', () => {
    const m = mergeOverrides(file, { steps: 20, workers: 4, batchSize: undefined });
    expect(m.steps).toBe(20);
    expect(m.workers).toBe(4);
    expect(m.batchSize).toBe(32);
    expect(m.backend).toBe('cpu');
    expect(file.steps).toBe(10); // the file object is not mutated
  });

  it('an lr flag overrides only optimizer.lr and keeps the other optimizer fields', () => {
    const m = mergeOverrides(file, { 'optimizer.lr': 0.5 });
    expect(m.optimizer).toEqual({ lr: 0.5, beta1: 0.8, schedule: 'cosine' });
    expect(file.optimizer.lr).toBe(0.01);
    const c = parseConfig(m);
    expect(c.optimizer).toEqual({ ...DEFAULT_CONFIG.optimizer, lr: 0.5, beta1: 0.8, schedule: 'cosine' });
  });

  it('an lr flag works when the file has no optimizer section', () => {
    expect(mergeOverrides({}, { 'optimizer.lr': 0.2 }).optimizer).toEqual({ lr: 0.2 });
    expect(parseConfig(mergeOverrides({}, { 'optimizer.lr': 0.2 })).optimizer.lr).toBe(0.2);
  });
});

describe('readConfigFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dptrain-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a JSON object', () => {
    const p = join(dir, 'ok.json');
    writeFileSync(p, JSON.stringify({ steps: 3, data: { name: 'xor' } }));
    expect(readConfigFile(p)).toEqual({ steps: 3, data: { name: 'xor' } });
  });

  it('a missing file is CONFIG_UNREADABLE and names the path', () => {
    const p = join(dir, 'nope.json');
    expect(expectCode(() => readConfigFile(p), 'CONFIG_UNREADABLE')).toContain(p);
  });

  it('invalid JSON is CONFIG_UNREADABLE and names the path', () => {
    const p = join(dir, 'bad.json');
    writeFileSync(p, '{ "steps": 3, }');
    expect(expectCode(() => readConfigFile(p), 'CONFIG_UNREADABLE')).toContain(p);
  });

  it('JSON that is not an object is CONFIG_INVALID', () => {
    const p = join(dir, 'array.json');
    writeFileSync(p, '[1, 2]');
    expectCode(() => readConfigFile(p), 'CONFIG_INVALID');
  });
});
