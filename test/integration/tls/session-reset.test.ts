// A transaction the client abandons with RSET, EHLO or STARTTLS (smtp-server forgets its envelope) ends in the
// listener too: its next-hop connection is let go and SIGTERM's drain does not wait for it. Touches: loopback
// sockets, a temp dir (certificate), openssl (certificate).

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { crlf } from '../../helpers/dkim-test-kit.js';
import { Harness, listener, SIGN_DOMAIN } from '../../helpers/daemon-harness.js';
import { writeSelfSignedCertificate } from '../../helpers/next-hop-server.js';
import { RawClient, transaction } from '../../helpers/raw-smtp-client.js';

const harness = new Harness();
let dir = '';
const files = { key: '', cert: '' };

beforeAll(async () => {
  await harness.setup();
  dir = await mkdtemp(join(tmpdir(), 'dkimgate-tls-reset-'));
  Object.assign(files, await writeSelfSignedCertificate(dir));
});
afterEach(() => harness.cleanup());
afterAll(async () => {
  await harness.dispose();
  await rm(dir, { recursive: true, force: true });
});

const MESSAGE = crlf(`From: Alice <alice@${SIGN_DOMAIN}>\nTo: Bob <bob@example.org>\nSubject: reset\n\nHi.\n`);
const DRAIN_TIMEOUT_S = 20;

describe('a transaction the client abandons', () => {
  it.each([
    ['RSET', async (c: RawClient) => expect((await c.command('RSET')).code).toBe(250)],
    ['EHLO', async (c: RawClient) => expect((await c.command('EHLO again.test')).code).toBe(250)],
    [
      'STARTTLS',
      async (c: RawClient) => {
        expect((await c.command('STARTTLS')).code).toBe(220);
        await c.startTls();
      },
    ],
  ])('with %s no longer holds SIGTERM for drain_timeout; the session starts afresh', async (_name, abandon) => {
    const config = harness.config({ listen: [listener({ tls: { key: files.key, cert: files.cert } })] });
    const gate = await harness.startGate({ ...config, limits: { ...config.limits, drainTimeout: DRAIN_TIMEOUT_S } });
    const client = await RawClient.open(gate.port);
    harness.onCleanup(async () => client.close());
    await client.command('EHLO client.test');
    expect((await client.command(`MAIL FROM:<alice@${SIGN_DOMAIN}>`)).code).toBe(250);
    expect((await client.command('RCPT TO:<bob@example.org>')).code).toBe(250);
    await abandon(client);
    // the session goes on: what it says next is a new start
    expect((await client.command('EHLO client.test')).code).toBe(250);
    expect((await client.command('RCPT TO:<carol@example.org>')).text).toMatch(/^503 /);
    // another client is served meanwhile
    const other = await RawClient.open(gate.port);
    harness.onCleanup(async () => other.close());
    const ehlo = await other.command('EHLO other.test');
    expect((await transaction(other, ehlo, { from: `alice@${SIGN_DOMAIN}`, to: ['dave@example.org'], data: MESSAGE })).final[0]?.code).toBe(250);
    // now idle between transactions: the stop tells it 421 at once; it used to wait drain_timeout for the transaction
    // the client had abandoned (a minute with the default)
    const started = Date.now();
    await gate.daemon.stop();
    expect(Date.now() - started).toBeLessThan((DRAIN_TIMEOUT_S * 1000) / 2);
    expect(gate.nextHop.messages.map((m) => m.envelope.rcptTo)).toEqual([['dave@example.org']]);
    expect(gate.logs.filter((l) => l.msg === 'drain_timeout passed: ending the transactions still in flight')).toEqual([]);
  }, 60_000);
});
