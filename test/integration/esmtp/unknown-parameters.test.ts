// MAIL FROM / RCPT TO parameters dkimgate does not announce: refused with 555 5.5.4 (RFC 5321 §4.1.1.11, as Postfix
// answers), never accepted and then dropped on the way to the next hop. REQUIRETLS (RFC 8689) included: it is not
// announced after STARTTLS, since its demand would not reach the next hop.
// Touches: loopback sockets (the daemon in-process, an smtp-server next hop), a temp dir of keys and a certificate.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BASIC_MESSAGE } from '../../helpers/dkim-test-kit.js';
import { Harness, listener } from '../../helpers/daemon-harness.js';
import { createSelfSignedCertificate } from '../../helpers/next-hop-server.js';
import { dotStuff, RawClient, sendMail } from '../../helpers/raw-smtp-client.js';

const harness = new Harness();
let dir = '';
const tlsFiles = { key: '', cert: '' };

beforeAll(async () => {
  await harness.setup();
  dir = await mkdtemp(join(tmpdir(), 'dkimgate-esmtp-'));
  const pair = await createSelfSignedCertificate('localhost');
  tlsFiles.key = join(dir, 'key.pem');
  tlsFiles.cert = join(dir, 'cert.pem');
  await writeFile(tlsFiles.key, pair.key, { mode: 0o600 });
  await writeFile(tlsFiles.cert, pair.cert);
});
afterEach(() => harness.cleanup());
afterAll(async () => {
  await harness.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe('parameters dkimgate does not take', () => {
  it('answers 555 5.5.4 to an unknown MAIL FROM parameter, and the next hop sees no MAIL', async () => {
    const gate = await harness.startGate(harness.config());
    const r = await sendMail(gate.port, { mailParams: 'MT-PRIORITY=3', data: BASIC_MESSAGE });
    expect(r.mail).toEqual({ code: 555, text: '555 5.5.4 Unsupported option: MT-PRIORITY\r\n' });
    expect(gate.nextHop.commands.filter((c) => c.line.startsWith('MAIL'))).toEqual([]);
    expect(gate.nextHop.messages).toEqual([]);
  });

  it('answers 555 5.5.4 to an unknown RCPT TO parameter and relays to the other recipients', async () => {
    const gate = await harness.startGate(harness.config());
    const client = await RawClient.open(gate.port);
    try {
      expect((await client.command('EHLO client.outside.test')).code).toBe(250);
      expect((await client.command('MAIL FROM:<alice@example.com>')).code).toBe(250);
      expect(await client.command('RCPT TO:<bob@example.org> XRCPTFOR=abc')).toEqual({ code: 555, text: '555 5.5.4 Unsupported option: XRCPTFOR\r\n' });
      expect((await client.command('RCPT TO:<carol@example.org> NOTIFY=FAILURE')).code).toBe(250);
      expect((await client.command('DATA')).code).toBe(354);
      client.write(dotStuff(BASIC_MESSAGE));
      expect((await client.command('.')).code).toBe(250);
    } finally {
      client.close();
    }
    expect(gate.nextHop.messages.map((m) => m.envelope.rcptTo)).toEqual([['carol@example.org']]);
  });

  it('still takes AUTH=<> on MAIL FROM (RFC 4954 §5) and the parameters of the extensions it announces', async () => {
    const gate = await harness.startGate(harness.config());
    const r = await sendMail(gate.port, { mailParams: 'AUTH=<> BODY=8BITMIME RET=FULL', rcptParams: 'NOTIFY=NEVER', data: BASIC_MESSAGE });
    expect(r.final[0]?.code).toBe(250);
    expect(gate.nextHop.messages[0]!.envelope.mailParams).toMatchObject({ BODY: '8BITMIME', RET: 'FULL' });
  });

  it('does not announce REQUIRETLS after STARTTLS, and refuses it (555) instead of dropping it on the way', async () => {
    const gate = await harness.startGate(harness.config({ listen: [listener({ tls: tlsFiles })] }));
    const client = await RawClient.open(gate.port);
    try {
      await client.command('EHLO client.outside.test');
      expect((await client.command('STARTTLS')).code).toBe(220);
      await client.startTls();
      const ehlo = await client.command('EHLO client.outside.test');
      expect(ehlo.code).toBe(250);
      expect(ehlo.text).not.toMatch(/REQUIRETLS/);
      expect(await client.command('MAIL FROM:<alice@example.com> REQUIRETLS')).toEqual({ code: 555, text: '555 5.5.4 Unsupported option: REQUIRETLS\r\n' });
    } finally {
      client.close();
    }
    expect(gate.nextHop.commands.filter((c) => c.line.startsWith('MAIL'))).toEqual([]);
  });
});
