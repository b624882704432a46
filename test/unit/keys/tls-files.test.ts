import { generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCaFile, readListenerCertificates } from '../../../src/keys/tls-files.js';
import { listener } from '../../helpers/daemon-harness.js';
import { createSelfSignedCertificate } from '../../helpers/next-hop-server.js';

let dir = '';
let counter = 0;
let good: { key: Buffer; cert: Buffer };
let other: { key: Buffer; cert: Buffer };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dkimgate-listener-certs-'));
  [good, other] = await Promise.all([createSelfSignedCertificate(), createSelfSignedCertificate()]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes the two files of one case; returns their paths. */
async function files(key: Buffer | string, cert: Buffer | string): Promise<{ key: string; cert: string }> {
  const paths = { key: join(dir, `key-${++counter}.pem`), cert: join(dir, `cert-${counter}.pem`) };
  await writeFile(paths.key, key, { mode: 0o600 });
  await writeFile(paths.cert, cert);
  return paths;
}

async function problemsOf(paths: { key: string; cert: string }): Promise<string[]> {
  const read = await readListenerCertificates([listener({ tls: paths })]);
  return read.kind === 'error' ? read.problems.map((p) => `${p.keyPath}: ${p.message}`) : [];
}

describe('readListenerCertificates', () => {
  it('gives each listener its pair, null for a listener without STARTTLS', async () => {
    const paths = await files(good.key, good.cert);
    const read = await readListenerCertificates([listener(), listener({ tls: paths })]);
    expect(read).toEqual({ kind: 'ok', pairs: [null, { key: good.key, cert: good.cert }], warnings: [] });
  });

  it('accepts one file holding both the key and the certificate, in either order', async () => {
    for (const both of [Buffer.concat([good.key, good.cert]), Buffer.concat([good.cert, good.key])]) {
      const paths = await files(both, both);
      expect((await readListenerCertificates([listener({ tls: paths })])).kind).toBe('ok');
    }
  });

  it.each([
    ['a certificate file that is not PEM', () => files(good.key, 'garbage\n'), /^listen\[0\]\.tls\.cert: TLS certificate .*cert-\d+\.pem is not a PEM certificate/],
    ['a key file that is not PEM', () => files('garbage\n', good.cert), /^listen\[0\]\.tls\.key: TLS key .*key-\d+\.pem is not a PEM private key/],
    ['swapped files', () => files(good.cert, good.key), /^listen\[0\]\.tls\.cert: TLS certificate .* holds a private key, not a certificate: tls\.key and tls\.cert look swapped$/],
    ['a certificate where the key belongs', () => files(good.cert, good.cert), /^listen\[0\]\.tls\.key: TLS key .* holds a certificate, not a private key$/],
    ['a key of another certificate', () => files(other.key, good.cert), /^listen\[0\]\.tls\.key: TLS key .*key-\d+\.pem is not the private key of certificate .*cert-\d+\.pem/],
    [
      'an encrypted key',
      () =>
        files(
          generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' }),
          good.cert,
        ),
      /^listen\[0\]\.tls\.key: TLS key .*key-\d+\.pem is protected by a passphrase; dkimgate needs it unencrypted: openssl pkey -in .*key-\d+\.pem -out .*key-\d+\.pem\.plain, then chmod 600 and replace it$/,
    ],
  ])('names the file and the fault for %s', async (_name, write, expected) => {
    const problems = await problemsOf(await write());
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(expected);
  });

  it('reports a missing key and a directory given as certificate, both at once', async () => {
    const certDir = join(dir, 'a-directory');
    await mkdir(certDir);
    expect(await problemsOf({ key: join(dir, 'absent.pem'), cert: certDir })).toEqual([
      `listen[0].tls.key: TLS key ${join(dir, 'absent.pem')}: no such file; check the path (start from config/dkimgate.example.yaml)`,
      `listen[0].tls.cert: TLS certificate ${certDir}: is a directory, not a file`,
    ]);
  });

  it('serves an expired certificate but warns about it', async () => {
    const paths = await files(good.key, good.cert);
    const now = await readListenerCertificates([listener({ tls: paths })]);
    expect(now).toMatchObject({ kind: 'ok', warnings: [] });
    const inThreeDays = await readListenerCertificates([listener({ tls: paths })], Date.now() + 3 * 86_400_000);
    expect(inThreeDays.kind === 'ok' && inThreeDays.warnings).toEqual([
      { keyPath: 'listen[0].tls.cert', message: expect.stringMatching(/^TLS certificate .*cert-\d+\.pem expired on .* GMT: clients that check certificates will refuse STARTTLS/) },
    ]);
  });
});

describe('readCaFile', () => {
  async function caFile(text: Buffer | string): Promise<string> {
    const path = join(dir, `ca-${++counter}.pem`);
    await writeFile(path, text);
    return path;
  }

  it('takes a bundle of PEM certificates as it is', async () => {
    const bundle = Buffer.concat([good.cert, other.cert]);
    expect(await readCaFile(await caFile(bundle))).toEqual({ kind: 'ok', ca: bundle });
  });

  it.each([
    ['no PEM at all', 'garbage\n'],
    ['a private key', () => good.key],
    ['an empty file', ''],
  ])('refuses a file with %s, naming what it should hold', async (_name, content) => {
    const path = await caFile(typeof content === 'function' ? content() : content);
    expect(await readCaFile(path)).toEqual({
      kind: 'error',
      problem: `CA file ${path} holds no PEM certificate ("-----BEGIN CERTIFICATE-----"): give the next hop's certificate or the CA that issued it`,
    });
  });

  it('names the certificate of a bundle that cannot be read', async () => {
    const broken = other.cert.toString('latin1').replace(/\n[A-Za-z0-9+/]{20}/, '\n!!!!');
    const path = await caFile(Buffer.concat([good.cert, Buffer.from(broken, 'latin1')]));
    const read = await readCaFile(path);
    expect(read).toMatchObject({ kind: 'error', problem: expect.stringMatching(new RegExp(`^CA file ${path}: certificate 2 of 2 cannot be read \\(`)) });
  });

  it('names a file it cannot read', async () => {
    expect(await readCaFile(join(dir, 'absent-ca.pem'))).toEqual({
      kind: 'error',
      problem: `CA file ${join(dir, 'absent-ca.pem')}: no such file; check the path (start from config/dkimgate.example.yaml)`,
    });
  });
});
