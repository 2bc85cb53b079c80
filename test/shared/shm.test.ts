import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ShmChannel } from '../../shared/transport/shm.js';
import { expectCode } from '../helpers/expect-code.js';

const made: ShmChannel[] = [];
afterEach(() =>
  made.splice(0).forEach((c) => {
    c.remove();
  }),
);

/** A channel in a temporary directory (the tests do not depend on /dev/shm existing). */
function channel(): ShmChannel {
  const c = ShmChannel.create(0, mkdtempSync(join(tmpdir(), 'dptrain-shm-test-')));
  if (typeof c === 'string') throw new Error(c);
  made.push(c);
  return c;
}

const values = Float32Array.from({ length: 1003 }, (_, i) => Math.sin(i) * 100);

// What every payload channel does is test/conformance/payload-channels.test.ts's; here, what files add.
describe('ShmChannel', () => {
  it('files are a few slots overwritten in place; a slot overwritten before it was read is an error', () => {
    const c = channel();
    for (let v = 0; v < 7; v++) c.writeParams(v % 2, v, values, 'float32');
    for (let s = 1; s <= 9; s++)
      c.writeResult(
        'w1',
        s,
        values.map((x) => x + s),
        'float32',
      );
    expect(readdirSync(c.dir).sort()).toEqual([
      'grant',
      'params-0.bin',
      'params-1.bin',
      ...Array.from({ length: 8 }, (_, k) => `result-w1-${k}.bin`),
    ]);
    expect(c.readResult('w1', 9, values.length, 'float32')[0]).toBe(values[0] + 9);
    expect(c.readParams(0, 6, values.length, 'float32')[5]).toBe(values[5]);
    // Result 1 shares a slot with result 9, which replaced it.
    expect(expectCode(() => c.readResult('w1', 1, values.length, 'float32'), 'MESSAGE_INVALID')).toMatch(
      /holds #9, expected #1 \(overwritten before it was read\)/,
    );
    // A slot caught mid-write (header WRITING) is refused too.
    const path = c.resultPath('w1', 9);
    const fd = openSync(path, 'r+');
    writeSync(fd, new Uint8Array(new Float64Array([-1]).buffer), 0, 8, 0);
    closeSync(fd);
    expect(expectCode(() => c.readResult('w1', 9, values.length, 'float32'), 'MESSAGE_INVALID')).toMatch(
      /holds #-1, expected #9/,
    );
    c.removeResults('w1');
    expect(readdirSync(c.dir).sort()).toEqual(['grant', 'params-0.bin', 'params-1.bin']);
    expect(expectCode(() => c.readParams(1, 3, values.length, 'float32'), 'MESSAGE_INVALID')).toMatch(
      /params-1\.bin holds #5, expected #3/,
    );
  });

  it('a missing or wrong-sized file, or a worker id that is not ours, is MESSAGE_INVALID naming the file', () => {
    const c = channel();
    expect(expectCode(() => c.readResult('w1', 99, 10, 'float32'), 'MESSAGE_INVALID')).toMatch(
      /result-w1-3\.bin cannot be read \(ENOENT\)/,
    );
    writeFileSync(c.resultPath('w2', 1), new Uint8Array(12));
    expect(expectCode(() => c.readResult('w2', 1, 10, 'float32'), 'MESSAGE_INVALID')).toMatch(
      /has 12 bytes, 10 float32 values need 48/,
    );
    expectCode(() => c.resultPath('../../etc/passwd', 1), 'MESSAGE_INVALID');
    expectCode(() => c.resultPath('w1/../w2', 1), 'MESSAGE_INVALID');
  });

  it('create removes directories whose coordinator process is gone, and only those', () => {
    const root = mkdtempSync(join(tmpdir(), 'dptrain-shm-root-'));
    const dead = join(root, 'dptrain-999999999-abc'); // no such pid
    const live = join(root, `dptrain-${process.ppid}-abc`);
    const other = join(root, 'something-else');
    for (const d of [dead, live, other]) mkdirSync(d);
    const c = ShmChannel.create(0, root);
    if (typeof c === 'string') throw new Error(c);
    made.push(c);
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(live)).toBe(true);
    expect(existsSync(other)).toBe(true);
    expect(c.dir).toMatch(new RegExp(`dptrain-${process.pid}-`));
  });

  it('create says why not when the directory is missing or too small', () => {
    expect(ShmChannel.create(0, '/nonexistent-dptrain-root')).toMatch(/not usable \(ENOENT\)/);
    expect(ShmChannel.create(Number.MAX_SAFE_INTEGER, tmpdir())).toMatch(/MB free, the payload files need/);
  });
});
