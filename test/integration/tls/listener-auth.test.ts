// SMTP AUTH on a STARTTLS listener, attacked over loopback: guessing from many sessions at once, AUTH inside a
// transaction, an authorization identity that is not the authenticated one, SASL edge cases, STARTTLS command
// injection. Touches: loopback sockets, a temp dir (certificate, users file), openssl (certificate).

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/config.js';
import { crlf } from '../../helpers/dkim-test-kit.js';
import { Harness, headerOf, listener, SIGN_DOMAIN, waitFor } from '../../helpers/daemon-harness.js';
import { createSelfSignedCertificate } from '../../helpers/next-hop-server.js';
import { RawClient, transaction, type Reply } from '../../helpers/raw-smtp-client.js';

const harness = new Harness();
let dir = '';
const files = { key: '', cert: '', users: '' };
const PASSWORD = 'correct horse battery';

beforeAll(async () => {
  await harness.setup();
  dir = await mkdtemp(join(tmpdir(), 'dkimgate-tls-auth-'));
  const pair = await createSelfSignedCertificate('localhost');
  files.key = join(dir, 'key.pem');
  files.cert = join(dir, 'cert.pem');
  files.users = join(dir, 'users.htpasswd');
  await writeFile(files.key, pair.key, { mode: 0o600 });
  await writeFile(files.cert, pair.cert);
  // alice may sign for every domain, bob only for example.org (not SIGN_DOMAIN)
  await writeFile(files.users, `alice:${bcrypt.hashSync(PASSWORD, 5)}\nbob:${bcrypt.hashSync(PASSWORD, 5)}:example.org\n`, { mode: 0o600 });
});
afterEach(() => harness.cleanup());
afterAll(async () => {
  await harness.dispose();
  await rm(dir, { recursive: true, force: true });
});

const MESSAGE = crlf(`From: Alice <alice@${SIGN_DOMAIN}>\nTo: Bob <bob@example.org>\nSubject: auth\nDate: Tue, 14 Nov 2023 22:13:20 +0000\n\nHi.\n`);

function plain(authzid: string, authcid: string, pass: string): string {
  return Buffer.from(`${authzid}\0${authcid}\0${pass}`).toString('base64');
}

/** A STARTTLS listener with users; no relay hosts, so only AUTH gets mail signed. */
function startTlsGate(limits: Partial<Config['limits']> = {}) {
  const config = harness.config({ relayHosts: [], usersFile: files.users, listen: [listener({ tls: { key: files.key, cert: files.cert } })] });
  return harness.startGate({ ...config, limits: { ...config.limits, ...limits } });
}

/** A session in TLS that said EHLO again; closed at cleanup. */
async function tlsSession(port: number): Promise<{ client: RawClient; ehlo: Reply }> {
  const client = await RawClient.open(port);
  harness.onCleanup(async () => client.close());
  await client.command('EHLO client.test');
  expect((await client.command('STARTTLS')).code).toBe(220);
  await client.startTls();
  return { client, ehlo: await client.command('EHLO client.test') };
}

describe('AUTH guessing from many sessions of one address at once', () => {
  it('checks at most max_auth_failures passwords; the other sessions get 421 4.7.0 at once, before any check ends', async () => {
    const sessions = 10;
    const gate = await startTlsGate({ maxAuthFailures: 3, authFailureWindow: 60 });
    const clients = await Promise.all(Array.from({ length: sessions }, () => tlsSession(gate.port)));
    // every guess is sent before any is answered: the old throttle counted failures only once their bcrypt had run, so
    // every one of these sessions cost a bcrypt (max_clients of them per address and window, queued on one thread)
    const arrival: Array<{ code: number; text: string; order: number }> = [];
    await Promise.all(
      clients.map(async ({ client }, i) => {
        const r = await client.command(`AUTH PLAIN ${plain('', 'alice', `guess ${i}`)}`, 20_000);
        arrival.push({ ...r, order: arrival.length });
      }),
    );
    const refusedAtOnce = sessions - 3;
    // a checked guess is answered after bcrypt and the 1 s penalty; the refused ones come first
    expect(arrival.slice(0, refusedAtOnce).every((r) => /^421 4\.7\.0 /.test(r.text))).toBe(true);
    const checked = arrival.slice(refusedAtOnce);
    expect(checked.filter((r) => /^535 5\.7\.8 /.test(r.text))).toHaveLength(2);
    expect(checked.filter((r) => /^421 4\.7\.0 /.test(r.text))).toHaveLength(1);
    // one log line for the address, not one per session
    expect(gate.logs.filter((l) => l.msg === 'AUTH failure limit reached: refusing AUTH from this address')).toHaveLength(1);
  });
});

describe('AUTH inside a mail transaction', () => {
  it('is refused with 503 5.5.1 (RFC 4954 §4), and the transaction begun anonymously is not signed; after RSET AUTH works', async () => {
    const gate = await startTlsGate();
    const { client, ehlo } = await tlsSession(gate.port);
    expect((await client.command(`MAIL FROM:<alice@${SIGN_DOMAIN}>`)).code).toBe(250);
    // it used to answer 235, and the message of the anonymous transaction then went out signed
    expect((await client.command(`AUTH PLAIN ${plain('', 'alice', PASSWORD)}`)).text).toMatch(/^503 5\.5\.1 /);
    expect((await client.command('RCPT TO:<bob@example.org>')).code).toBe(250);
    expect((await client.command('DATA')).code).toBe(354);
    client.write(MESSAGE);
    expect((await client.command('.')).code).toBe(250);
    expect((await client.command('RSET')).code).toBe(250);
    expect((await client.command(`AUTH PLAIN ${plain('', 'alice', PASSWORD)}`)).code).toBe(235);
    const signed = await transaction(client, ehlo, { from: `alice@${SIGN_DOMAIN}`, data: MESSAGE });
    expect(signed.final[0]?.code).toBe(250);
    await waitFor(() => gate.messageLines().length === 2);
    expect(headerOf(gate.nextHop.messages[0]!.data)).not.toMatch(/^DKIM-Signature:/m);
    expect(headerOf(gate.nextHop.messages[1]!.data)).toMatch(/^DKIM-Signature:/m);
    expect(gate.messageLines().map((l) => [l.authUser ?? null, l.decision])).toEqual([
      [null, 'verify'],
      ['alice', 'sign'],
    ]);
  });
});

describe('AUTH PLAIN authorization identity (RFC 4616)', () => {
  it('refuses an authzid other than the authcid with 535 5.7.8, even with the right password', async () => {
    const gate = await startTlsGate();
    const { client } = await tlsSession(gate.port);
    // it used to log the client in as alice (the authcid), silently ignoring that it asked to be bob
    expect((await client.command(`AUTH PLAIN ${plain('bob', 'alice', PASSWORD)}`)).text).toMatch(/^535 5\.7\.8 /);
    // the same identity twice, or the name only in the authzid (some clients send that), log in
    expect((await client.command(`AUTH PLAIN ${plain('alice', 'alice', PASSWORD)}`)).code).toBe(235);
    const second = await tlsSession(gate.port);
    expect((await second.client.command(`AUTH PLAIN ${plain('alice', '', PASSWORD)}`)).code).toBe(235);
  });
});

describe('SASL edge cases', () => {
  it('answers empty passwords, broken base64, "*" and a second AUTH as RFC 4954 says, and keeps the session', async () => {
    const gate = await startTlsGate();
    const { client, ehlo } = await tlsSession(gate.port);
    expect((await client.command(`AUTH PLAIN ${plain('', 'alice', '')}`)).text).toMatch(/^535 5\.7\.8 /);
    expect((await client.command('AUTH PLAIN !!!!')).text).toMatch(/^501 /);
    expect((await client.command(`AUTH PLAIN ${'QUFB'.repeat(3000)}`)).text).toMatch(/^501 /);
    expect((await client.command('AUTH PLAIN')).code).toBe(334);
    expect((await client.command('*')).text).toMatch(/^501 /);
    expect((await client.command('AUTH LOGIN')).code).toBe(334);
    expect((await client.command(Buffer.from('alice').toString('base64'))).code).toBe(334);
    expect((await client.command('*')).text).toMatch(/^501 /);
    expect((await client.command('AUTH CRAM-MD5')).text).toMatch(/^504 /);
    expect((await client.command('AUTH LOGIN')).code).toBe(334);
    expect((await client.command(Buffer.from('alice').toString('base64'))).code).toBe(334);
    expect((await client.command(Buffer.from(PASSWORD).toString('base64'))).code).toBe(235);
    expect((await client.command(`AUTH PLAIN ${plain('', 'bob', PASSWORD)}`)).text).toMatch(/^503 /);
    // AUTH= on MAIL is not passed on: the next hop must not take our client's word for who sent it
    const r = await transaction(client, ehlo, { from: `alice@${SIGN_DOMAIN}`, mailParams: 'AUTH=<>', data: MESSAGE });
    expect(r.final[0]?.code).toBe(250);
    expect(gate.nextHop.messages[0]!.envelope.mailParams).not.toHaveProperty('AUTH');
    expect(JSON.stringify(gate.logs)).not.toContain(PASSWORD);
  });
});

describe('users limited to their domains', () => {
  it('an authenticated user limited to example.org gets 550 5.7.1 for mail from example.com; nothing reaches the next hop', async () => {
    const gate = await startTlsGate();
    const { client, ehlo } = await tlsSession(gate.port);
    expect((await client.command(`AUTH PLAIN ${plain('', 'bob', PASSWORD)}`)).code).toBe(235);
    const r = await transaction(client, ehlo, { from: `bob@${SIGN_DOMAIN}`, data: MESSAGE });
    expect(r.final[0]?.text).toMatch(/^550 5\.7\.1 /);
    expect(gate.nextHop.messages).toHaveLength(0);
  });
});

describe('STARTTLS command injection (CVE-2011-0411 class)', () => {
  it('discards commands pipelined in clear text after STARTTLS; the TLS session starts from nothing', async () => {
    const gate = await startTlsGate();
    const client = await RawClient.open(gate.port);
    harness.onCleanup(async () => client.close());
    await client.command('EHLO client.test');
    client.write(`STARTTLS\r\nEHLO injected.test\r\nAUTH PLAIN ${plain('', 'alice', PASSWORD)}\r\nMAIL FROM:<alice@${SIGN_DOMAIN}>\r\n`);
    expect((await client.read()).code).toBe(220);
    await client.startTls();
    expect(await client.drain(300)).toBe('');
    // no EHLO, no AUTH, no MAIL survived
    expect((await client.command(`MAIL FROM:<alice@${SIGN_DOMAIN}>`)).text).toMatch(/^503 /);
    const ehlo = await client.command('EHLO client.test');
    expect(ehlo.text).toMatch(/AUTH/);
    const r = await transaction(client, ehlo, { from: `alice@${SIGN_DOMAIN}`, data: MESSAGE });
    expect(r.final[0]?.code).toBe(250);
    expect(headerOf(gate.nextHop.messages[0]!.data)).not.toMatch(/^DKIM-Signature:/m);
    expect((await waitFor(() => gate.messageLines()[0])).authUser ?? null).toBe(null);
  });
});

describe('a user removed from the users file by a reload', () => {
  it.each([
    ['the file without the user', async () => {
      const path = join(dir, 'users-without-bob.htpasswd');
      await writeFile(path, `alice:${bcrypt.hashSync(PASSWORD, 5)}\n`, { mode: 0o600 });
      return path;
    }],
    ['no users_file at all', async () => null],
  ])('is no longer trusted in the session it opened before (%s): it used to sign as anyone', async (_name, nextUsersFile) => {
    const gate = await startTlsGate();
    const { client, ehlo } = await tlsSession(gate.port);
    expect((await client.command(`AUTH PLAIN ${plain('', 'bob', PASSWORD)}`)).code).toBe(235);
    // bob may sign only for example.org
    expect((await transaction(client, ehlo, { from: `bob@${SIGN_DOMAIN}`, data: MESSAGE })).final[0]?.text).toMatch(/^550 5\.7\.1 /);
    expect(await gate.daemon.reload({ ...gate.config, usersFile: await nextUsersFile() })).toMatchObject({ kind: 'ok' });
    // revoked: the domain limit went with the user, and the login must go with it too
    expect((await transaction(client, ehlo, { from: `bob@${SIGN_DOMAIN}`, data: MESSAGE })).final[0]?.code).toBe(250);
    expect(gate.nextHop.messages).toHaveLength(1);
    expect(headerOf(gate.nextHop.messages[0]!.data)).not.toMatch(/^DKIM-Signature:/m);
    const line = await waitFor(() => gate.messageLines()[1]);
    expect(line.decision).toBe('verify');
    expect(gate.logs.filter((l) => l.msg === 'AUTH user no longer in the users file: the session is not trusted')).toEqual([expect.objectContaining({ authUser: 'bob' })]);
  });
});
