/**
 * The dataset registry: every dataset kind by its `data.name`. Adding one is a module
 * implementing DatasetModule (dataset.ts) and a line here; see docs/extending.md.
 */
import { DptrainError, fail } from '../util/errors.js';
import { isObj } from '../job/fields.js';
import type { DataShape, Dataset, DatasetModule, SampleRequest } from './dataset.js';
import { text, type TextSpec } from './text.js';
import { csv, type CsvSpec } from './csv.js';
import { idx, type IdxSpec } from './idx.js';
import { mnist, type MnistSpec } from './mnist.js';
import { moduleData, type ModuleSpec } from './module.js';
import { spirals, type SpiralsSpec } from './spirals.js';
import { xor, type XorSpec } from './xor.js';

export type { DataShape, Dataset, DatasetModule, InputDtype, SampleRequest, Split, TargetKind } from './dataset.js';
export { fingerprint, gatherRows, sizeOf } from './dataset.js';

export type DataSpec = XorSpec | SpiralsSpec | MnistSpec | IdxSpec | TextSpec | CsvSpec | ModuleSpec;

const DATASETS: Record<string, DatasetModule<DataSpec>> = { xor, spirals, mnist, idx, text, csv, module: moduleData };

export const DATASET_NAMES: readonly string[] = Object.keys(DATASETS);

function moduleOf(name: string): DatasetModule<DataSpec> {
  const m = Object.hasOwn(DATASETS, name) ? DATASETS[name] : undefined;
  return (
    m ?? fail('CONFIG_INVALID', `data.name must be one of ${DATASET_NAMES.join(', ')}, got ${JSON.stringify(name)}`)
  );
}

/** Validate the `data` section of a config; every complaint names the field. */
export function parseDataSpec(raw: unknown): DataSpec {
  if (!isObj(raw)) fail('CONFIG_INVALID', 'data must be an object like {"name": "mnist"}');
  if (typeof raw.name !== 'string')
    fail('CONFIG_INVALID', `data.name must be one of ${DATASET_NAMES.join(', ')}, got ${JSON.stringify(raw.name)}`);
  return moduleOf(raw.name).parse(raw);
}

/** What must happen, once per process, before the data's shape or rows are asked for (a user's module is imported). */
export async function prepareDataset(spec: DataSpec): Promise<void> {
  await moduleOf(spec.name).prepare?.(spec);
}

/**
 * A dataset module's own errors pass as they are; anything else it throws (a bug, a parser's
 * SyntaxError) becomes one DATASET_UNAVAILABLE line naming the dataset, not a bare message.
 */
function naming<T>(spec: DataSpec, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof DptrainError) throw e;
    const what = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    const path = 'path' in spec ? ` (${spec.path})` : '';
    return fail('DATASET_UNAVAILABLE', `data ${spec.name}${path}: ${what.split('\n')[0]}`);
  }
}

/** Load the dataset a job names. Synthetic sets derive from the job seed. */
export function loadDataset(spec: DataSpec, seed: number, want: SampleRequest = {}): Dataset {
  return naming(spec, () => moduleOf(spec.name).load(spec, seed, want));
}

/** The data's shape without loading it: the coordinator needs only this, and need not have the files. */
export function datasetShape(spec: DataSpec, want: SampleRequest = {}): DataShape {
  return naming(spec, () => moduleOf(spec.name).shape(spec, want));
}

/** Whether loaded data has the shape the job expects (a host with other files is refused). */
export function sameShape(a: DataShape, b: DataShape): boolean {
  return (
    a.inputDtype === b.inputDtype &&
    a.outputSize === b.outputSize &&
    a.targets === b.targets &&
    a.inputShape.join('x') === b.inputShape.join('x') &&
    a.vocab === b.vocab &&
    a.alphabet === b.alphabet
  );
}
