// TLS files from the configuration, read and checked the same way at start, at reload and by `config check`, with
// what is wrong said per file (OpenSSL's own words, "PEM routines::no start line", name neither file nor fix):
// the listeners' STARTTLS key and certificate pairs, and the CA file the next hop's certificate is checked with.
// Touches: the files named by listen[].tls and next_hop.ca_file (read only). Never prints key material.

import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import type { ListenerConfig } from '../config/config.js';
import { describeReadError } from '../config/load-config.js';

export type CertificatePair = { key: Buffer; cert: Buffer };

/** A finding about one config key: `listen[N].tls.key` or `listen[N].tls.cert`. */
export type CertificateFinding = { keyPath: string; message: string };

export type CertificatesRead =
  | { kind: 'ok'; pairs: (CertificatePair | null)[]; warnings: CertificateFinding[] }
  | { kind: 'error'; problems: CertificateFinding[] };

/** Each listener's pair (null for a listener without tls), or every problem found; warnings name expired certificates. */
export async function readListenerCertificates(listen: readonly ListenerConfig[], nowMs: number = Date.now()): Promise<CertificatesRead> {
  // read concurrently, reported in configuration order (key before certificate)
  const results = await Promise.all(listen.map((listener, index) => readListenerPair(listener, index, nowMs)));
  const problems = results.flatMap((r) => r.problems);
  if (problems.length > 0) return { kind: 'error', problems };
  return { kind: 'ok', pairs: results.map((r) => r.pair), warnings: results.flatMap((r) => r.warnings) };
}

type PairRead = { pair: CertificatePair | null; problems: CertificateFinding[]; warnings: CertificateFinding[] };

async function readListenerPair(listener: ListenerConfig, index: number, nowMs: number): Promise<PairRead> {
  if (!listener.tls) return { pair: null, problems: [], warnings: [] };
  const at = `listen[${index}].tls`;
  const { key: keyPath, cert: certPath } = listener.tls;
  const [key, cert] = await Promise.all([readPem(keyPath, `${at}.key`, 'TLS key'), readPem(certPath, `${at}.cert`, 'TLS certificate')]);
  if (!Buffer.isBuffer(key) || !Buffer.isBuffer(cert)) {
    return { pair: null, problems: [key, cert].filter((r): r is CertificateFinding => !Buffer.isBuffer(r)), warnings: [] };
  }
  const problem = pairProblem({ key, cert }, keyPath, certPath);
  if (problem !== null) return { pair: null, problems: [{ keyPath: `${at}.${problem.file}`, message: problem.message }], warnings: [] };
  const warnings: CertificateFinding[] = [];
  const expiry = firstCertificateExpiry(cert);
  if (expiry !== null && Date.parse(expiry) < nowMs) {
    warnings.push({ keyPath: `${at}.cert`, message: `TLS certificate ${certPath} expired on ${expiry}: clients that check certificates will refuse STARTTLS; renew it and reload (SIGHUP)` });
  }
  return { pair: { key, cert }, problems: [], warnings };
}

/** The served certificate's notAfter, or null when it cannot be told (the pair was accepted by OpenSSL already). */
function firstCertificateExpiry(cert: Buffer): string | null {
  try {
    return new X509Certificate(cert).validTo;
  } catch {
    return null;
  }
}

async function readPem(path: string, keyPath: string, what: string): Promise<Buffer | CertificateFinding> {
  try {
    return await readFile(path);
  } catch (error) {
    return { keyPath, message: `${what} ${path}: ${describeReadError(error)}` };
  }
}

/** What makes the pair unusable for a TLS server, naming the file at fault; null when smtp-server can serve it. */
function pairProblem(pair: CertificatePair, keyPath: string, certPath: string): { file: 'key' | 'cert'; message: string } | null {
  const holdsKey = (bytes: Buffer) => /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(bytes.toString('latin1'));
  const holdsCertificate = (bytes: Buffer) => bytes.includes('-----BEGIN CERTIFICATE-----');
  try {
    createSecureContext({ cert: pair.cert });
  } catch {
    const swapped = holdsKey(pair.cert) && holdsCertificate(pair.key) ? ': tls.key and tls.cert look swapped' : '';
    const what = holdsKey(pair.cert) ? 'holds a private key, not a certificate' : 'is not a PEM certificate (no readable "-----BEGIN CERTIFICATE-----" block)';
    return { file: 'cert', message: `TLS certificate ${certPath} ${what}${swapped}` };
  }
  try {
    createPrivateKey(pair.key);
  } catch (error) {
    const encrypted =
      (error as NodeJS.ErrnoException).code === 'ERR_MISSING_PASSPHRASE' || /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,\s*ENCRYPTED/.test(pair.key.toString('latin1'));
    const what = encrypted
      ? `is protected by a passphrase; dkimgate needs it unencrypted: openssl pkey -in ${keyPath} -out ${keyPath}.plain, then chmod 600 and replace it`
      : holdsCertificate(pair.key)
        ? 'holds a certificate, not a private key'
        : 'is not a PEM private key (no readable "-----BEGIN PRIVATE KEY-----" block)';
    return { file: 'key', message: `TLS key ${keyPath} ${what}` };
  }
  try {
    createSecureContext(pair);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const message =
      code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH'
        ? `TLS key ${keyPath} is not the private key of certificate ${certPath} (one renewed without the other?)`
        : `TLS key ${keyPath} with certificate ${certPath}: ${(error as Error).message}`;
    return { file: 'key', message };
  }
  return null;
}

export type CaFileRead = { kind: 'ok'; ca: Buffer } | { kind: 'error'; problem: string };

/**
 * next_hop.ca_file: PEM certificates, each readable. Node takes any bytes as `ca` without a word, and every
 * TLS connection to the next hop then fails verification: all mail deferred with 451 until someone looks.
 */
export async function readCaFile(path: string): Promise<CaFileRead> {
  let ca: Buffer;
  try {
    ca = await readFile(path);
  } catch (error) {
    return { kind: 'error', problem: `CA file ${path}: ${describeReadError(error)}` };
  }
  const blocks = ca.toString('latin1').match(/-----BEGIN CERTIFICATE-----[^-]*-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) {
    return {
      kind: 'error',
      problem: `CA file ${path} holds no PEM certificate ("-----BEGIN CERTIFICATE-----"): give the next hop's certificate or the CA that issued it`,
    };
  }
  for (const [index, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (error) {
      return { kind: 'error', problem: `CA file ${path}: certificate ${index + 1} of ${blocks.length} cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})` };
    }
  }
  return { kind: 'ok', ca };
}
