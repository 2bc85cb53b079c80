/**
 * `text`: a UTF-8 file as a token stream, by bytes (vocab 256) or by the file's own characters
 * (vocab = its distinct characters, in code-point order). Samples are windows of seq + 1
 * tokens, seq apart: inputs the first seq, targets the next token at each position. The first
 * (1 − testFraction) of the file trains, the rest validates (split by position, so no window
 * crosses); validation uses `testWindows` of the held-out windows, evenly spaced. With
 * character tokens the vocabulary is part of the model's shape, so whoever lays out the model
 * (the coordinator too) reads the file; with bytes only the workers do.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fail } from '../util/errors.js';
import { checkKeys, num, oneOf, str } from '../job/fields.js';
import {
  dataset,
  whereRelative,
  type DataShape,
  type DatasetModule,
  type SampleRequest,
  type Split,
} from './dataset.js';

export const TOKENIZERS = ['chars', 'bytes'] as const;

export interface TextSpec {
  name: 'text';
  path: string;
  tokenizer: (typeof TOKENIZERS)[number];
  testFraction: number;
  /** Validation windows, evenly spaced over the held-out part (evaluation cost stays bounded). */
  testWindows: number;
}

function readText(path: string): Buffer {
  if (!existsSync(path)) fail('DATASET_UNAVAILABLE', `data.path: ${path} does not exist${whereRelative(path)}`);
  try {
    return readFileSync(path);
  } catch (e) {
    return fail(
      'DATASET_UNAVAILABLE',
      `data.path: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
    );
  }
}

function decodeUtf8(bytes: Buffer, path: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return fail(
      'DATASET_UNAVAILABLE',
      `data.path: ${path} is not UTF-8 text (use "tokenizer": "bytes" for other files)`,
    );
  }
}

/** The distinct characters of a text, in code-point order. */
export function alphabetOf(text: string): string {
  return [...new Set(text)].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!).join('');
}

/** The alphabet of the file's text, refusing one of a single character: next-token prediction needs two. */
function fileAlphabet(s: string, path: string): string {
  const alphabet = alphabetOf(s);
  if ([...alphabet].length === 1)
    fail(
      'DATASET_UNAVAILABLE',
      `data.path: ${path} has one distinct character (${JSON.stringify(alphabet)}); next-token prediction needs 2 or more`,
    );
  return alphabet;
}

/** Token ids of a text under a tokenizer (an alphabet for chars). */
export function encode(s: string, alphabet: string | undefined): Int32Array {
  if (alphabet === undefined) return Int32Array.from(Buffer.from(s, 'utf8'));
  const id = new Map([...alphabet].map((c, i) => [c, i]));
  return Int32Array.from(
    [...s],
    (c) =>
      id.get(c) ?? fail('CONFIG_INVALID', `the character ${JSON.stringify(c)} is not in the training text's alphabet`),
  );
}

export function decode(ids: ArrayLike<number>, alphabet: string | undefined): string {
  if (alphabet === undefined) return Buffer.from(Uint8Array.from(ids)).toString('utf8');
  const chars = [...alphabet];
  return Array.from(ids, (i) => chars[i]).join('');
}

function seqOf(want: SampleRequest): number {
  return (
    want.seq ??
    fail(
      'MODEL_INVALID',
      'data.name text gives token windows: train it with a sequence model (model.kind gpt, whose seq sets the window)',
    )
  );
}

function tokens(spec: TextSpec): { ids: Int32Array; alphabet?: string } {
  const bytes = readText(spec.path);
  if (spec.tokenizer === 'bytes') return { ids: Int32Array.from(bytes) };
  const s = decodeUtf8(bytes, spec.path);
  const alphabet = fileAlphabet(s, spec.path);
  return { ids: encode(s, alphabet), alphabet };
}

/** Windows seq apart over ids (at most `most`, evenly spaced): inputs ids[i·seq, +seq), targets one further on. */
function windows(ids: Int32Array, seq: number, most = Infinity): Split {
  const all = Math.max(0, Math.floor((ids.length - 1) / seq));
  const n = Math.min(all, most);
  const x = new Float32Array(n * seq);
  const y = new Float32Array(n * seq);
  for (let r = 0; r < n; r++) {
    const i = n === all ? r : Math.floor((r * all) / n);
    x.set(ids.subarray(i * seq, i * seq + seq), r * seq);
    y.set(ids.subarray(i * seq + 1, i * seq + seq + 1), r * seq);
  }
  return { x, y, n };
}

function shapeOf(seq: number, vocab: number, alphabet?: string): DataShape {
  return {
    inputShape: [seq],
    inputDtype: 'int32',
    outputSize: seq,
    targets: 'tokens',
    vocab,
    ...(alphabet !== undefined ? { alphabet } : {}),
  };
}

export const text: DatasetModule<TextSpec> = {
  name: 'text',
  parse(raw) {
    checkKeys(raw, ['name', 'path', 'tokenizer', 'testFraction', 'testWindows'], 'data.');
    return {
      name: 'text',
      path: str(
        raw.path,
        'data.path',
        'a UTF-8 text file (e.g. the King James Bible: bible -f gen1:1-rev22:21 > kjv.txt)',
      ),
      tokenizer: oneOf(raw.tokenizer ?? 'chars', 'data.tokenizer', TOKENIZERS),
      testFraction: num(raw.testFraction ?? 0.1, 'data.testFraction', { min: 0, max: 0.9 }),
      testWindows: num(raw.testWindows ?? 256, 'data.testWindows', { int: true, min: 1, max: 1e7 }),
    };
  },
  shape(spec, want) {
    const seq = seqOf(want);
    if (spec.tokenizer === 'bytes') return shapeOf(seq, 256);
    const alphabet = fileAlphabet(decodeUtf8(readText(spec.path), spec.path), spec.path);
    return shapeOf(seq, [...alphabet].length, alphabet);
  },
  load(spec, _seed, want) {
    const seq = seqOf(want);
    const { ids, alphabet } = tokens(spec);
    const cut = Math.round(ids.length * (1 - spec.testFraction));
    const train = windows(ids.subarray(0, cut), seq);
    if (train.n === 0)
      fail(
        'DATASET_UNAVAILABLE',
        `data.path: ${spec.path} has ${ids.length} tokens, too few for one training window of ${seq + 1}`,
      );
    const test =
      spec.testFraction > 0
        ? windows(ids.subarray(cut), seq, spec.testWindows)
        : { x: new Float32Array(0), y: new Float32Array(0), n: 0 };
    // A held-out part asked for but too short to give one window would skip every evaluation silently.
    if (spec.testFraction > 0 && test.n === 0)
      fail(
        'DATASET_UNAVAILABLE',
        `data.path: ${spec.path}: its held-out ${Math.round(spec.testFraction * 100)}% is ${ids.length - cut} tokens, too few for one window of ${seq + 1}; raise data.testFraction, or set it to 0 to train without evaluation`,
      );
    return dataset('text', shapeOf(seq, alphabet === undefined ? 256 : [...alphabet].length, alphabet), train, test);
  },
};
