// Incoming Authentication-Results fields with our authserv-id at the running daemon, on every path a message
// can take: verified (also a policy dry run), signed, and relayed with verification off (RFC 8601 §5).
// Touches: loopback sockets, dnsmasq on a loopback port, /usr/bin/python3 (authres).

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/config.js';
import { defaultConfig } from '../../../src/config/defaults.js';
import { authresParse } from '../../helpers/authres.js';
import { verifyMessage } from '../../../src/dkim/verify.js';
import { BASIC_MESSAGE, tableLookup } from '../../helpers/dkim-test-kit.js';
import { AUTHSERV, Harness, headerOf, SIGN_DOMAIN } from '../../helpers/daemon-harness.js';
import { startDnsServer, type RunningDnsServer } from '../../helpers/dns-server.js';
import { sendMail } from '../../helpers/raw-smtp-client.js';

const harness = new Harness();
let dns: RunningDnsServer;
beforeAll(async () => {
  await harness.setup();
  dns = await startDnsServer({ txt: {} });
});
afterEach(() => harness.cleanup());
afterAll(async () => {
  await harness.dispose();
  await dns.stop();
});

/** Fields that claim our id (each names forged.test), and fields that do not (each names kept-N.test). */
const OURS = [
  `Authentication-Results: ${AUTHSERV.toUpperCase()}; dkim=pass header.d=forged.test`,
  `Authentication-Results:\r\n (folded comment \\) still comment)\r\n\t${AUTHSERV} 1;\r\n\tdkim=pass header.d=forged.test`,
  `Authentication-Results: "${AUTHSERV}."; dkim=pass header.d=forged.test`,
  `Authentication-Results: ${AUTHSERV}; garbage that parses as nothing (forged.test`,
];
const THEIRS = [
  `Authentication-Results: ${AUTHSERV}.evil; dkim=pass header.d=kept-1.test`,
  `Authentication-Results: other.example; dkim=pass header.d=kept-2.test`,
  `Authentication-Results: (${AUTHSERV}) other.example; dkim=pass header.d=kept-3.test`,
  `ARC-Authentication-Results: i=1; ${AUTHSERV}; dkim=pass header.d=kept-4.test`,
];

/** BASIC_MESSAGE (From alice@example.com) with From set and the fields above spread through its header, not only at the top. */
function withFields(from: string): Buffer {
  const [top, ...rest] = BASIC_MESSAGE.toString('latin1').replace(/^From: .*$/m, `From: ${from}`).split('\r\n');
  const lines = [OURS[0], THEIRS[0], top, OURS[1], THEIRS[1], ...rest.slice(0, 2), OURS[2], THEIRS[2], OURS[3], THEIRS[3], ...rest.slice(2)];
  return Buffer.from(lines.join('\r\n'), 'latin1');
}

function gate(over: Partial<Config>) {
  return harness.startGate(harness.config(over, dns.server));
}

async function relayedHeader(over: Partial<Config>, from: string): Promise<string> {
  const g = await gate(over);
  const r = await sendMail(g.port, { from: 'x@outside.test', data: withFields(from) });
  expect(r.final[0]?.code).toBe(250);
  return headerOf(g.nextHop.messages[0]!.data);
}

function expectOnlyOthersKept(header: string): void {
  expect(header).not.toContain('forged.test');
  for (let n = 1; n <= THEIRS.length; n++) expect(header).toContain(`kept-${n}.test`);
}

describe('Authentication-Results fields with our authserv-id', () => {
  it('are removed on the verify path, and ours, the only one with our id, parses', async () => {
    const header = await relayedHeader({ relayHosts: [] }, 'carol@outside.test');
    expectOnlyOthersKept(header);
    const ours = header.split(/\r\n(?![ \t])/).filter((f) => /^Authentication-Results:/i.test(f));
    const parsed = authresParse(ours);
    expect(parsed.filter((p) => p.authservId?.toLowerCase() === AUTHSERV)).toEqual([{ authservId: AUTHSERV, results: [{ method: 'dkim', result: 'none', props: [] }] }]);
  });

  it('are removed on the sign path', async () => {
    const header = await relayedHeader({}, `alice@${SIGN_DOMAIN}`);
    expect(header).toMatch(/^DKIM-Signature:/);
    expectOnlyOthersKept(header);
  });

  it('are removed when verification is off, and no field of ours is added', async () => {
    const base = defaultConfig();
    const header = await relayedHeader({ relayHosts: [], verify: { ...base.verify, enabled: false } }, 'carol@outside.test');
    expectOnlyOthersKept(header);
    expect(header).not.toContain(`Authentication-Results: ${AUTHSERV};`);
  });

  it('are removed from mail a policy dry run relays', async () => {
    const base = defaultConfig();
    const header = await relayedHeader({ relayHosts: [], policy: { ...base.policy, require: [{ domain: 'outside.test', aligned: true }], dryRun: true } }, 'carol@outside.test');
    expectOnlyOthersKept(header);
  });
});

describe('a headerlist that signs Authentication-Results', () => {
  it('signs the header as relayed, without the fields it removes, so the signature verifies downstream', async () => {
    const base = harness.config({}, dns.server);
    const g = await gate({ sign: { ...base.sign, headerlist: 'From:Subject:Date:Authentication-Results' } });
    const r = await sendMail(g.port, { from: `alice@${SIGN_DOMAIN}`, data: withFields(`alice@${SIGN_DOMAIN}`) });
    expect(r.final[0]?.code).toBe(250);
    const relayed = g.nextHop.messages[0]!.data;
    expect(headerOf(relayed)).not.toContain('forged.test');
    const keys = harness.keys!;
    const report = await verifyMessage(relayed, {
      lookupTxt: tableLookup({ [`rsa1._domainkey.${SIGN_DOMAIN}`]: keys.rsa.record, [`ed1._domainkey.${SIGN_DOMAIN}`]: keys.ed.record }),
      nowSec: Math.floor(Date.now() / 1000),
    });
    expect(report.signatures.map((s) => [s.selector, s.result])).toEqual([
      ['rsa1', 'pass'],
      ['ed1', 'pass'],
    ]);
  });
});
