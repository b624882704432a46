// TLS and SMTP AUTH on both sides of the daemon: a STARTTLS listener (AUTH only after STARTTLS, 538 5.7.11 before),
// and a next hop reached over STARTTLS or implicit TLS with AUTH. Touches: loopback sockets, a temp dir (keys,
// certificates, users file), openssl (certificates).

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import bcrypt from 'bcryptjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { crlf } from '../../helpers/dkim-test-kit.js';
import { Harness, headerOf, listener, messageLine, SIGN_DOMAIN } from '../../helpers/daemon-harness.js';
import { createSelfSignedCertificate } from '../../helpers/next-hop-server.js';
import { RawClient, sendMail, transaction } from '../../helpers/raw-smtp-client.js';

const harness = new Harness();
let dir = '';
let cert: { key: Buffer; cert: Buffer };
const files = { key: '', cert: '', users: '' };
const PASSWORD = 'correct horse battery';

beforeAll(async () => {
  await harness.setup();
  dir = await mkdtemp(join(tmpdir(), 'dkimgate-tls-'));
  cert = await createSelfSignedCertificate('localhost');
  files.key = join(dir, 'key.pem');
  files.cert = join(dir, 'cert.pem');
  files.users = join(dir, 'users.htpasswd');
  await writeFile(files.key, cert.key, { mode: 0o600 });
  await writeFile(files.cert, cert.cert);
  await writeFile(files.users, `alice:${bcrypt.hashSync(PASSWORD, 5)}\n`, { mode: 0o600 });
});
afterEach(() => harness.cleanup());
afterAll(async () => {
  await harness.dispose();
  await rm(dir, { recursive: true, force: true });
});

const MESSAGE = crlf(`From: Alice <alice@${SIGN_DOMAIN}>\nTo: Bob <bob@example.org>\nSubject: tls\nDate: Tue, 14 Nov 2023 22:13:20 +0000\n\nHi.\n`);

function plain(user: string, pass: string): string {
  return Buffer.from(`\0${user}\0${pass}`).toString('base64');
}

/** A daemon with a STARTTLS listener and users, where no client address is a relay host: only AUTH signs. */
function startTlsGate() {
  return harness.startGate(harness.config({ relayHosts: [], usersFile: files.users, listen: [listener({ tls: { key: files.key, cert: files.cert } })] }));
}

describe('a STARTTLS listener', () => {
  it('offers STARTTLS but not AUTH in clear text, and answers AUTH there with 538 5.7.11', async () => {
    const gate = await startTlsGate();
    const client = await RawClient.open(gate.port);
    try {
      const ehlo = await client.command('EHLO client.test');
      expect(ehlo.text).toMatch(/STARTTLS/);
      expect(ehlo.text).not.toMatch(/AUTH/);
      expect((await client.command(`AUTH PLAIN ${plain('alice', PASSWORD)}`)).text).toMatch(/^538 5\.7\.11 /);
    } finally {
      client.close();
    }
  });

  it('offers AUTH after STARTTLS, signs for the authenticated user, and never logs the password', async () => {
    const gate = await startTlsGate();
    const client = await RawClient.open(gate.port);
    try {
      await client.command('EHLO client.test');
      expect((await client.command('STARTTLS')).code).toBe(220);
      await client.startTls();
      const ehlo = await client.command('EHLO client.test');
      expect(ehlo.text).toMatch(/^250[- ]AUTH (?=.*PLAIN)/m);
      expect(ehlo.text).not.toMatch(/STARTTLS/);
      expect((await client.command(`AUTH PLAIN ${plain('alice', PASSWORD)}`)).code).toBe(235);
      const r = await transaction(client, ehlo, { from: `alice@${SIGN_DOMAIN}`, data: MESSAGE });
      expect(r.final[0]?.code).toBe(250);
    } finally {
      client.close();
    }
    expect(headerOf(gate.nextHop.messages[0]!.data)).toMatch(/^DKIM-Signature: v=1; a=rsa-sha256;/);
    const line = await messageLine(gate);
    expect(line.authUser).toBe('alice');
    expect(line.decision).toBe('sign');
    const logged = JSON.stringify(gate.logs);
    expect(logged).not.toContain(PASSWORD);
    expect(logged).not.toContain(plain('alice', PASSWORD));
  });

  it('answers a wrong password after STARTTLS with 535 5.7.8, and then only verifies', async () => {
    const gate = await startTlsGate();
    const client = await RawClient.open(gate.port);
    try {
      await client.command('EHLO client.test');
      await client.command('STARTTLS');
      await client.startTls();
      const ehlo = await client.command('EHLO client.test');
      expect((await client.command(`AUTH PLAIN ${plain('alice', 'wrong horse')}`)).text).toMatch(/^535 5\.7\.8 /);
      const r = await transaction(client, ehlo, { from: `alice@${SIGN_DOMAIN}`, data: MESSAGE });
      expect(r.final[0]?.code).toBe(250);
    } finally {
      client.close();
    }
    expect(headerOf(gate.nextHop.messages[0]!.data)).not.toMatch(/^DKIM-Signature:/m);
    expect((await messageLine(gate)).decision).toBe('verify');
    expect(JSON.stringify(gate.logs)).not.toContain('wrong horse');
  });
});

describe('certificates renewed on disk', () => {
  async function fingerprintAfterStartTls(port: number): Promise<{ fingerprint: string; client: RawClient }> {
    const client = await RawClient.open(port);
    await client.command('EHLO client.test');
    expect((await client.command('STARTTLS')).code).toBe(220);
    await client.startTls();
    return { fingerprint: (client.socket as TLSSocket).getPeerCertificate().fingerprint256, client };
  }

  it('are served after a reload (SIGHUP) to new STARTTLS sessions; a key that does not match refuses the reload', async () => {
    const renewed = await createSelfSignedCertificate('localhost');
    const paths = { key: join(dir, 'renew-key.pem'), cert: join(dir, 'renew-cert.pem') };
    await writeFile(paths.key, cert.key, { mode: 0o600 });
    await writeFile(paths.cert, cert.cert);
    const gate = await harness.startGate(harness.config({ relayHosts: [], usersFile: files.users, listen: [listener({ tls: paths })] }));
    const before = await fingerprintAfterStartTls(gate.port);
    try {
      await writeFile(paths.key, renewed.key, { mode: 0o600 });
      await writeFile(paths.cert, renewed.cert);
      expect(await gate.daemon.reload(gate.config)).toMatchObject({ kind: 'ok' });
      const after = await fingerprintAfterStartTls(gate.port);
      after.client.close();
      expect(after.fingerprint).not.toBe(before.fingerprint);
      expect(after.fingerprint).toBe(new X509Certificate(renewed.cert).fingerprint256);
      // the session that was already in TLS goes on
      const r = await transaction(before.client, await before.client.command('EHLO client.test'), { from: `alice@${SIGN_DOMAIN}`, data: MESSAGE });
      expect(r.final[0]?.code).toBe(250);

      await writeFile(paths.key, cert.key, { mode: 0o600 }); // the old key with the new certificate
      const refused = await gate.daemon.reload(gate.config);
      expect(refused).toEqual({ kind: 'error', problems: [`listen[0].tls.key: TLS key ${paths.key} is not the private key of certificate ${paths.cert} (one renewed without the other?)`] });
      const still = await fingerprintAfterStartTls(gate.port);
      still.client.close();
      expect(still.fingerprint).toBe(after.fingerprint);
    } finally {
      before.client.close();
    }
  });
});

describe('a reload that changes listen', () => {
  it('refuses TLS files that the restart it waits for would refuse, and keeps serving', async () => {
    const gate = await harness.startGate(harness.config({ relayHosts: [], listen: [listener()] }));
    const notACertificate = join(dir, 'not-a-cert.pem');
    await writeFile(notACertificate, 'this is no certificate\n');
    const next = { ...gate.config, listen: [listener({ tls: { key: files.key, cert: notACertificate } })] };
    // it used to say "configuration reloaded" (with "listen changed"), and the restart then refused to start
    const refused = await gate.daemon.reload(next);
    expect(refused).toMatchObject({ kind: 'error', problems: [expect.stringMatching(/^listen\[0\]\.tls\.cert: TLS certificate \S*not-a-cert\.pem is not a PEM certificate/)] });
    expect((await sendMail(gate.port, { from: `alice@${SIGN_DOMAIN}`, data: MESSAGE })).final[0]?.code).toBe(250);
    // good files: reloaded, with the restart it needs said
    const good = await gate.daemon.reload({ ...gate.config, listen: [listener({ tls: { key: files.key, cert: files.cert } })] });
    expect(good).toMatchObject({ kind: 'ok', warnings: ['listen changed: listeners are only re-bound at restart; the old ones keep serving'] });
  });
});

describe('TLS and AUTH towards the next hop', () => {
  it.each([
    ['STARTTLS', 'starttls' as const],
    ['implicit TLS', 'implicit' as const],
  ])('relays over %s with AUTH to a next hop that requires both', async (_name, tls) => {
    const hop = { tls: cert, implicitTls: tls === 'implicit', auth: { user: 'gate', pass: 's3cret-hop' } };
    const config = harness.config();
    const gate = await harness.startGate({ ...config, nextHop: { ...config.nextHop, tls, caFile: files.cert, auth: { user: 'gate', pass: 's3cret-hop' } } }, hop);
    const r = await sendMail(gate.port, { data: MESSAGE });
    expect(r.final[0]?.code).toBe(250);
    expect(gate.nextHop.messages).toHaveLength(1);
    expect(gate.nextHop.auths).toEqual([expect.objectContaining({ username: 'gate', success: true })]);
    expect(JSON.stringify(gate.logs)).not.toContain('s3cret-hop');
  });

  it('answers 451 4.4.2 and relays nothing when the next hop certificate is not trusted', async () => {
    const config = harness.config();
    const gate = await harness.startGate({ ...config, nextHop: { ...config.nextHop, tls: 'starttls' } }, { tls: cert });
    const r = await sendMail(gate.port, { data: MESSAGE });
    expect(r.mail.text).toMatch(/^451 4\.4\.2 /);
    expect(gate.nextHop.messages).toHaveLength(0);
  });

  it('answers a temporary 451 when the next hop refuses our credentials, so the client keeps the message', async () => {
    const hop = { tls: cert, auth: { user: 'gate', pass: 'the-right-one' } };
    const config = harness.config();
    const gate = await harness.startGate({ ...config, nextHop: { ...config.nextHop, tls: 'starttls', caFile: files.cert, auth: { user: 'gate', pass: 'a-wrong-one' } } }, hop);
    const r = await sendMail(gate.port, { data: MESSAGE });
    expect(r.mail.code).toBe(451);
    expect(r.mail.text).not.toContain('a-wrong-one');
    expect(gate.nextHop.auths.some((a) => a.success)).toBe(false);
    const problem = gate.logs.find((l) => typeof l.msg === 'string' && l.msg.includes('next hop refused'));
    expect(problem).toBeDefined();
    expect(JSON.stringify(gate.logs)).not.toContain('a-wrong-one');
  });
});

