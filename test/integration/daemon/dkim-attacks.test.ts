// DKIM attacks through the running daemon (in-process, port 0): what the next hop receives in our
// Authentication-Results, what the client is told, and that each is answered in bounded time.
// Real peers: dnsmasq for DNS (a 100 KB answer, a huge RSA exponent), zone files for keys too long
// for a dnsmasq configuration line (8192 and 16384 bits), the smtp-server next hop.
// Touches: loopback sockets, temporary directories, /usr/sbin/dnsmasq.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/config.js';
import { defaultConfig } from '../../../src/config/defaults.js';
import { BASIC_MESSAGE, crlf, ed25519Key, edit, NOW, rsaKey, sign, type TestKey } from '../../helpers/dkim-test-kit.js';
import { firstField, Harness, messageLine, type Gate } from '../../helpers/daemon-harness.js';
import { startDnsServer, type RunningDnsServer } from '../../helpers/dns-server.js';
import { rsa8192Fixture, rsaRecordKey } from '../../helpers/hostile-keys.js';
import { sendMail } from '../../helpers/raw-smtp-client.js';

const harness = new Harness();
let dns: RunningDnsServer;
let zoneDir = '';
let zoneFile = '';
let outside: TestKey;
let outsideEd: TestKey;

// Signatures from a domain we do not sign for; the daemon verifies them (the client is no relay host).
const DOMAIN = 'outside.test';

beforeAll(async () => {
  await harness.setup();
  outside = rsaKey(2048);
  outsideEd = ed25519Key();
  dns = await startDnsServer({
    txt: {
      [`s1._domainkey.${DOMAIN}`]: outside.record,
      [`ed._domainkey.${DOMAIN}`]: outsideEd.record,
      // 120 records of 850 bytes asked for: more than one DNS message holds (64 KB over TCP).
      [`big._domainkey.${DOMAIN}`]: Array.from({ length: 120 }, (_, i) => [`n${i}=${'A'.repeat(850)}`]),
      [`hugee._domainkey.${DOMAIN}`]: `v=DKIM1; k=rsa; p=${rsaRecordKey(2048, 2048)}`,
    },
  });
  zoneDir = await mkdtemp(join(tmpdir(), 'dkimgate-attack-zone-'));
  zoneFile = join(zoneDir, 'large-keys.zone');
  const fixture = rsa8192Fixture();
  await writeFile(
    zoneFile,
    [
      `${fixture.name}. 300 IN TXT ${quoted(fixture.record)}`,
      `big16k._domainkey.example.com. 300 IN TXT ${quoted(`v=DKIM1; k=rsa; p=${rsaRecordKey(16384)}`)}`,
      '',
    ].join('\n'),
  );
});

afterEach(() => harness.cleanup());

afterAll(async () => {
  await dns?.stop();
  await harness.dispose();
  if (zoneDir) await rm(zoneDir, { recursive: true, force: true });
});

/** A TXT record's text as zone-file character-strings of at most 255 octets. */
function quoted(text: string): string {
  return `( ${(text.match(/.{1,255}/g) ?? []).map((s) => `"${s}"`).join('\n  ')} )`;
}

function startGate(over: Partial<Config> = {}): Promise<Gate> {
  const base = harness.config({}, dns.server);
  return harness.startGate({ ...base, relayHosts: [], dns: { ...base.dns, zoneFiles: [zoneFile] }, ...over });
}

function outsideMessage(): Buffer {
  return Buffer.from(BASIC_MESSAGE.toString('latin1').replace(/example\.com/g, DOMAIN), 'latin1');
}

/** Sends `message` and returns our Authentication-Results as relayed, the reply and the seconds it took. */
async function relayed(gate: Gate, message: Buffer): Promise<{ authResults: string; reply: string; seconds: number }> {
  const started = performance.now();
  const r = await sendMail(gate.port, { from: `alice@${DOMAIN}`, data: message });
  const seconds = (performance.now() - started) / 1000;
  const reply = r.final[0]?.text ?? '';
  const data = gate.nextHop.messages.at(-1)?.data;
  return { authResults: data ? firstField(data).replace(/\r\n\t/g, ' ') : '', reply, seconds };
}

describe('changes after signing, through the daemon', () => {
  it.each([
    ['content appended past l=', async () => Buffer.concat([await sign(outsideMessage(), outside, { signingDomain: DOMAIN, bodyLengthLimit: true }), crlf('Click here.\n')]), 'dkim=policy (l= does not cover the whole body)'],
    ['a second From above the signed one', async () => Buffer.concat([crlf(`From: <ceo@${DOMAIN}>\n`), await sign(outsideMessage(), outside, { signingDomain: DOMAIN })]), 'dkim=policy (message has more than one from field)'],
    ['a Subject added above an oversigned one', async () => Buffer.concat([crlf('Subject: Urgent\n'), await sign(outsideMessage(), outside, { signingDomain: DOMAIN, headerList: 'From:From:Subject:Subject' })]), 'dkim=fail (signature did not verify)'],
    ['a message replayed after its x=', async () => sign(outsideMessage(), outside, { signingDomain: DOMAIN, lifetimeHours: 1 }, NOW), 'dkim=policy (signature expired)'],
  ])('relays %s with our verdict, and delivers it (no policy.require)', async (_name, make, expected) => {
    const gate = await startGate();
    const { authResults, reply, seconds } = await relayed(gate, await make());
    expect(reply).toMatch(/^250 /);
    expect(authResults).toContain(expected);
    expect(seconds).toBeLessThan(10);
  });

  it('rejects a second From above the signed one where the author domain requires a signature', async () => {
    const gate = await startGate({ policy: { ...defaultConfig().policy, require: [{ domain: DOMAIN, aligned: true }] } });
    const forged = Buffer.concat([crlf(`From: <ceo@${DOMAIN}>\n`), await sign(outsideMessage(), outside, { signingDomain: DOMAIN })]);
    const r = await sendMail(gate.port, { from: `alice@${DOMAIN}`, data: forged });
    // The signature is there but dkim=policy: "no acceptable DKIM signature" (RFC 7372).
    expect(r.final[0]?.text).toMatch(/^550 5\.7\.21 /);
    expect(gate.nextHop.messages).toHaveLength(0);
  });
});

describe('hostile keys and DNS answers, through the daemon', () => {
  it('answers a 100 KB TXT answer with dkim=permerror, promptly', async () => {
    const gate = await startGate();
    const message = await sign(outsideMessage(), outside, { signingDomain: DOMAIN, selector: 'big' });
    const { authResults, reply, seconds } = await relayed(gate, message);
    expect(reply).toMatch(/^250 /);
    expect(authResults).toContain('dkim=permerror (key record too large)');
    expect(seconds).toBeLessThan(10);
    expect((await messageLine(gate)).dkim).toEqual([{ domain: DOMAIN, selector: 'big', result: 'permerror', reason: 'key_record_too_large' }]);
  });

  it('answers an RSA key with a 2048-bit public exponent with dkim=permerror', async () => {
    const gate = await startGate();
    const { authResults } = await relayed(gate, await sign(outsideMessage(), outside, { signingDomain: DOMAIN, selector: 'hugee' }));
    expect(authResults).toContain('dkim=permerror (key record malformed)');
  });

  it('verifies an 8192-bit key and answers a 16384-bit one with dkim=policy', async () => {
    const gate = await startGate();
    const fixture = rsa8192Fixture();
    const passed = await relayed(gate, fixture.message);
    expect(passed.authResults).toMatch(/dkim=pass .*header\.s=rsa8192/);
    const large = await relayed(gate, edit(fixture.message, 's=rsa8192', 's=big16k'));
    expect(large.authResults).toContain('dkim=policy (key too large)');
    expect(large.seconds).toBeLessThan(10);
  });

  it('answers garbage base64 in b= with dkim=neutral', async () => {
    const gate = await startGate();
    const signed = await sign(outsideMessage(), outside, { signingDomain: DOMAIN });
    const { authResults } = await relayed(gate, edit(signed, /(\sb=)[^;]*?(\r\n(?![ \t]))/, '$1!!!!$2'));
    expect(authResults).toContain('dkim=neutral (bad base64 in signature)');
  });
});

describe('huge and numerous signatures and fields, through the daemon', () => {
  it('refuses 1,000 signatures by the default limits.max_header_fields; with a higher one, evaluates 5 and sums up the rest, promptly', async () => {
    const one = (await sign(outsideMessage(), outsideEd, { signingDomain: DOMAIN, selector: 'ed' })).subarray(0, -outsideMessage().length);
    const message = Buffer.concat([...Array<Buffer>(1000).fill(one), outsideMessage()]);
    const strict = await startGate();
    expect((await relayed(strict, message)).reply).toMatch(/^552 5\.3\.4 too many header fields/);
    await harness.cleanup();
    const gate = await startGate({ limits: { ...defaultConfig().limits, maxHeaderFields: 2000 } });
    const { authResults, reply, seconds } = await relayed(gate, message);
    expect(reply).toMatch(/^250 /);
    expect(authResults.match(/dkim=pass/g)).toHaveLength(5);
    expect(authResults).toContain('dkim=neutral (995 signatures beyond max_signatures, not evaluated)');
    expect(authResults.length).toBeLessThan(5000);
    expect(seconds).toBeLessThan(10);
  });

  it('relays a DKIM-Signature with 10,000 h= entries with dkim=neutral', async () => {
    const gate = await startGate();
    const signed = await sign(outsideMessage(), outside, { signingDomain: DOMAIN });
    const { authResults } = await relayed(gate, edit(signed, /h=[^;]+/, `h=${Array<string>(10_000).fill('From').join(':')}`));
    expect(authResults).toContain('dkim=neutral (signature field too large)');
  });

  it('answers 552 5.3.4 to more header fields than limits.max_header_fields, and relays nothing', async () => {
    const gate = await startGate();
    const many = Buffer.concat([Buffer.from('X-A: b\r\n'.repeat(1000), 'latin1'), outsideMessage()]);
    const r = await sendMail(gate.port, { from: `alice@${DOMAIN}`, data: many });
    expect(r.final[0]?.text).toMatch(/^552 5\.3\.4 too many header fields/);
    expect(gate.nextHop.messages).toHaveLength(0);
    expect((await messageLine(gate)).outcome).toBe('refused: too_many_header_fields');
    // 1,000 fields (the default limit) are relayed.
    const enough = Buffer.concat([Buffer.from('X-A: b\r\n'.repeat(1000 - 6), 'latin1'), outsideMessage()]);
    expect((await sendMail(gate.port, { from: `alice@${DOMAIN}`, data: enough })).final[0]?.code).toBe(250);
  });
});
