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
