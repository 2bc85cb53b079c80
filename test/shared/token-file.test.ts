/** The job token from a file: read, and a file others can read said at start (whoever reads it can join). */
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { readToken } from '../../shared/wire/auth.js';

const TOKEN = 'a-token-of-enough-length-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'dptrain-token-'));

afterEach(() => vi.restoreAllMocks());

function readWith(mode: number): { token: string | null; said: string } {
  const file = join(dir, `token-${mode.toString(8)}`);
  writeFileSync(file, `${TOKEN}\n`);
  chmodSync(file, mode);
  let said = '';
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    said += String(s);
    return true;
  });
  return { token: readToken(file, {}), said };
}

describe('--token-file', () => {
  it('mode 600: read, nothing said', () => {
    expect(readWith(0o600)).toEqual({ token: TOKEN, said: '' });
  });

  it('readable by others: read, and one warning line naming the file, its mode and the fix', () => {
    const { token, said } = readWith(0o644);
    expect(token).toBe(TOKEN);
    expect(said).toBe(
      `dptrain: warning: --token-file ${join(dir, 'token-644')} is readable by others (mode 644): whoever reads it can join the job; chmod 600 it\n`,
    );
  });
});
