/**
 * The coordinator's --tls-cert/--tls-key and a worker's --ca, checked as they are read: a file
 * that is no certificate or key, the two swapped, a key of another certificate, each refused in
 * one line naming the flag (not OpenSSL's text once the listener starts, nor a --ca Node ignores).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readTlsPair } from '../../cli/tls-files.js';
import { readCa } from '../../worker/ws-dialer.js';
import { hasOpenssl, selfSignedCert, tempDir } from '../helpers/cli.js';
import { expectCode } from '../helpers/expect-code.js';

describe.skipIf(!hasOpenssl)('TLS files', () => {
  const a = selfSignedCert('tls-files-a');
  const b = selfSignedCert('tls-files-b');
  const json = join(tempDir('tls-files-json'), 'job.json');
  writeFileSync(json, '{"data":{"name":"xor"}}');

  it('a certificate and its own key are read', () => {
    const pair = readTlsPair(a.cert, a.key);
    expect(pair.cert.toString()).toContain('BEGIN CERTIFICATE');
    expect(pair.key.toString()).toContain('PRIVATE KEY');
  });

  it('swapped, not PEM, or a key of another certificate: one line naming the flags', () => {
    expect(expectCode(() => readTlsPair(a.key, a.cert), 'CONFIG_INVALID')).toBe(
      `--tls-cert ${a.key}: not a PEM certificate (-----BEGIN CERTIFICATE-----): it holds a private key; are --tls-cert and --tls-key swapped?`,
    );
    expect(expectCode(() => readTlsPair(json, a.key), 'CONFIG_INVALID')).toBe(
      `--tls-cert ${json}: not a PEM certificate (-----BEGIN CERTIFICATE-----)`,
    );
    expect(expectCode(() => readTlsPair(a.cert, json), 'CONFIG_INVALID')).toBe(
      `--tls-key ${json}: not a PEM private key`,
    );
    expect(expectCode(() => readTlsPair(a.cert, a.cert), 'CONFIG_INVALID')).toBe(
      `--tls-key ${a.cert}: not a PEM private key: it holds a certificate; are --tls-cert and --tls-key swapped?`,
    );
    expect(expectCode(() => readTlsPair(a.cert, b.key), 'CONFIG_INVALID')).toBe(
      `--tls-key ${b.key} is not the key of --tls-cert ${a.cert}: give the private key the certificate was made for`,
    );
    expect(expectCode(() => readTlsPair(join(a.dir, 'nope.pem'), a.key), 'CONFIG_UNREADABLE')).toMatch(
      /^--tls-cert .*nope\.pem: cannot read it \(ENOENT\)$/,
    );
  });

  it('a --ca that holds no certificate is refused; a certificate is taken', () => {
    expect(readCa(a.cert).ca?.toString()).toContain('BEGIN CERTIFICATE');
    expect(expectCode(() => readCa(json), 'CONFIG_INVALID')).toBe(
      `--ca ${json}: not a PEM certificate (-----BEGIN CERTIFICATE-----); give the coordinator's certificate (its --tls-cert) or the CA that signed it`,
    );
    expect(expectCode(() => readCa(a.key), 'CONFIG_INVALID')).toMatch(/^--ca .*: not a PEM certificate/);
  });
});
