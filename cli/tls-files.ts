/**
 * The coordinator's --tls-cert and --tls-key, checked when they are read: a file that is no PEM
 * certificate or key, the two swapped, or a key that is not the certificate's, is refused in one
 * line naming the flags (OpenSSL's own text names neither, and comes only once the listener starts).
 */
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fail } from '../shared/util/errors.js';

function readFlagFile(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    return fail(
      'CONFIG_UNREADABLE',
      `${flag} ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
    );
  }
}

/** The first certificate in `pem`, or null when it holds none that parses. */
export function parseCertificate(pem: Buffer): X509Certificate | null {
  try {
    return new X509Certificate(pem);
  } catch {
    return null;
  }
}

/** The private key in `pem`; a string code when there is none usable (ERR_MISSING_PASSPHRASE: encrypted). */
function parseKey(pem: Buffer): KeyObject | string {
  try {
    return createPrivateKey(pem);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? 'ERR_INVALID';
  }
}

/** --tls-cert and --tls-key, read and checked to be one certificate and its own private key. */
export function readTlsPair(certFile: string, keyFile: string): { cert: Buffer; key: Buffer } {
  const cert = readFlagFile(certFile, '--tls-cert');
  const key = readFlagFile(keyFile, '--tls-key');
  const x509 = parseCertificate(cert);
  const swapped = '; are --tls-cert and --tls-key swapped?';
  if (!x509)
    fail(
      'CONFIG_INVALID',
      `--tls-cert ${certFile}: not a PEM certificate (-----BEGIN CERTIFICATE-----)${typeof parseKey(cert) === 'string' ? '' : `: it holds a private key${swapped}`}`,
    );
  const k = parseKey(key);
  if (typeof k === 'string')
    fail(
      'CONFIG_INVALID',
      k === 'ERR_MISSING_PASSPHRASE'
        ? `--tls-key ${keyFile}: the key is encrypted; give it unencrypted (openssl pkey -in KEY -out KEY.plain), mode 600`
        : `--tls-key ${keyFile}: not a PEM private key${parseCertificate(key) ? `: it holds a certificate${swapped}` : ''}`,
    );
  if (!x509.checkPrivateKey(k))
    fail(
      'CONFIG_INVALID',
      `--tls-key ${keyFile} is not the key of --tls-cert ${certFile}: give the private key the certificate was made for`,
    );
  return { cert, key };
}
