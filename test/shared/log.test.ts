import { describe, expect, it } from 'vitest';
import { formatRecord } from '../../shared/util/log.js';

const rec = (o: Record<string, unknown>) =>
  JSON.stringify({ level: 40, time: Date.UTC(2026, 0, 1, 12, 0, 1), name: 'coordinator', ...o });

describe('terminal lines', () => {
  it('print plain values as they are', () => {
    expect(formatRecord(rec({ msg: 'worker dropped', worker: 'w3', reason: 'job is full' }))).toBe(
      '12:00:01 WARN  [coordinator] worker dropped worker=w3 reason=job is full',
    );
  });

  it('escape control characters in values, keys and the message, so nothing starts a line of its own', () => {
    const forged = 'x\n12:00:02 INFO  [coordinator] training finished\u001b[2K';
    const line = formatRecord(rec({ msg: `dropped ${forged}`, reason: forged, [forged]: 1 }));
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the escape character must not survive
    expect(line).not.toMatch(/[\n\x1b]/);
    expect(line).toContain('reason="x\\n12:00:02 INFO  [coordinator] training finished\\u001b[2K"');
    expect(line.split('\n')).toHaveLength(1);
  });
});
