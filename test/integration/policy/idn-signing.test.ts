// An internationalized From (RFC 6532, UTF-8 in the header) on the sign path of the running daemon: the domain's
// key, configured under its A-labels, signs it, and a user limited to other domains is refused.
// Touches: loopback sockets, a temp dir of keys.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { verifyMessage } from '../../../src/dkim/verify.js';
import { BASIC_MESSAGE, tableLookup } from '../../helpers/dkim-test-kit.js';
import { Harness, headerOf, messageLine, signDomain } from '../../helpers/daemon-harness.js';
import { sendMail } from '../../helpers/raw-smtp-client.js';

const harness = new Harness();
// bänk.test: the config keeps sign.domains keys in A-labels, as it does rule domains
const IDN = 'xn--bnk-qla.test';

beforeAll(async () => {
  const keys = await harness.setup();
  await harness.writeKey(IDN, 'rsa1', keys.rsa);
});
afterEach(() => harness.cleanup());
afterAll(() => harness.dispose());

function fromUtf8(from: string): Buffer {
  return Buffer.from(BASIC_MESSAGE.toString('utf8').replace(/^From: .*$/m, `From: ${from}`), 'utf8');
}

function gate() {
  const base = harness.config();
  return harness.startGate(harness.config({ sign: { ...base.sign, domains: { ...base.sign.domains, [IDN]: signDomain([{ selector: 'rsa1' }]) } } }));
}

describe('a From domain in U-labels on the sign path', () => {
  it.each([['ceo@bänk.test'], ['Ceo <ceo@BÄNK.TEST>']])('is signed with the key of its A-labels: %s', async (from) => {
    const g = await gate();
    const r = await sendMail(g.port, { from: 'ceo@xn--bnk-qla.test', mailParams: 'SMTPUTF8', data: fromUtf8(from) });
    expect(r.final[0]?.code).toBe(250);
    expect(headerOf(g.nextHop.messages[0]!.data)).toMatch(/^DKIM-Signature:[^]*?\bd=xn--bnk-qla\.test;/);
    expect(await messageLine(g)).toMatchObject({ decision: 'sign' });
    const report = await verifyMessage(g.nextHop.messages[0]!.data, {
      lookupTxt: tableLookup({ [`rsa1._domainkey.${IDN}`]: harness.keys!.rsa.record }),
      nowSec: Math.floor(Date.now() / 1000),
    });
    expect(report.signatures.map((s) => [s.domain, s.result])).toEqual([[IDN, 'pass']]);
  });
});
