// A real Postfix smtpd as the next hop, one that accepts XFORWARD from dkimgate (smtpd_authorized_xforward_hosts, as
// Postfix's FILTER_README sets up the re-injection port): its Received field and its log name the original client,
// not dkimgate on loopback. For a client behind a proxy (Postfix's content_filter), that is the proxy's XFORWARD as it
// sent it (its queue id too, as orig_queue_id); for a direct client, its EHLO name, address and protocol.
// The DSN parameters reach its queue file. Postfix puts every message on hold, so what it received stays in its
// queue for postcat.
// Touches: the Postfix processes it starts (ended by PID), temp dirs, loopback ports.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crlf } from '../../helpers/dkim-test-kit.js';
import { Harness, waitFor, type Gate } from '../../helpers/daemon-harness.js';
import { freePort } from '../../helpers/next-hop-server.js';
import { startPostfix, stockMasterCf, type PostfixInstance } from '../../helpers/postfix-instance.js';
import { sendMail } from '../../helpers/raw-smtp-client.js';


const harness = new Harness();
let gate: Gate;
let postfix: PostfixInstance;
let counter = 0;

/** Debian's stock master.cf with its smtpd on a loopback test port; no chroot. */
function masterCf(port: number): Promise<string> {
  return stockMasterCf((text) => text.replace(/^smtp(\s+)inet.*$/m, `127.0.0.1:${port} inet n - n - - smtpd`));
}

beforeAll(async () => {
  await harness.setup();
  const port = await freePort();
  postfix = await startPostfix({
    mainCf: [
      'myhostname = reinject.test.example',
      'mydestination =',
      'mynetworks = 127.0.0.0/8',
      'relay_domains = example.org',
      'smtpd_authorized_xforward_hosts = 127.0.0.0/8',
      // as the recipe's re-injection service (config/postfix/master.cf): dkimgate is no local client
      'local_header_rewrite_clients =',
      // every message stays in the hold queue, whole, for postcat
      'smtpd_end_of_data_restrictions = check_client_access static:HOLD',
      'default_transport = discard',
      'relay_transport = discard',
      '',
    ].join('\n'),
    masterCf: await masterCf(port),
  });
  // the harness's own next hop is not used: Postfix is the next hop
  gate = await harness.startGate(harness.config({ relayHosts: [], xforwardHosts: ['127.0.0.1/32'] }), {}, { host: '127.0.0.1', port });
}, 60_000);

afterAll(async () => {
  await postfix?.stop();
  await harness.dispose();
});

/** Sends one message through dkimgate; returns Postfix's queue id of it and the message as Postfix holds it. */
async function relayThroughGate(opts: { helo: string; xforward?: string; noDate?: boolean; mailParams?: string; rcptParams?: string }): Promise<{ queueId: string; held: string }> {
  const subject = `xforward ${++counter}`;
  const date = opts.noDate ? '' : 'Date: Tue, 14 Nov 2023 22:13:20 +0000\n';
  const r = await sendMail(gate.port, {
    helo: opts.helo,
    xforward: opts.xforward,
    mailParams: opts.mailParams,
    rcptParams: opts.rcptParams,
    from: 'alice@example.com',
    to: ['bob@example.org'],
    data: crlf(`From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: ${subject}\n${date}Message-ID: <x${counter}@example.com>\n\nHi.\n`),
  });
  expect(r.final[0]?.code).toBe(250);
  // bounded: Postfix's cleanup has the message queued within moments of its 250
  for (let attempt = 0; attempt < 150; attempt++) {
    for (const m of await postfix.queue()) {
      const held = await postfix.command('postcat', ['-hq', m.queue_id]);
      if (held.includes(`Subject: ${subject}`)) return { queueId: m.queue_id, held };
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`Postfix holds no message with Subject: ${subject}`);
}

/** The topmost Received field of a postcat header dump, unfolded. */
function topReceived(held: string): string {
  const match = /^Received: .*(?:\n[ \t].*)*/m.exec(held);
  return (match?.[0] ?? '').replace(/\n[ \t]+/g, ' ');
}

describe('Postfix next hop with XFORWARD', () => {
  it("logs the proxy's client as orig_client and the proxy's queue id as orig_queue_id", async () => {
    const { queueId, held } = await relayThroughGate({
      helo: 'mta.inside.test',
      xforward: 'NAME=spike.example.net ADDR=192.0.2.7 PORT=4321 PROTO=ESMTP HELO=spike.example.net IDENT=4ABCD123 SOURCE=REMOTE',
    });
    const logLine = await waitFor(() => postfix.log().split('\n').find((l) => l.includes(`${queueId}: client=`)), 10_000);
    expect(logLine).toMatch(/: client=unknown\[127\.0\.0\.1\], orig_queue_id=4ABCD123, orig_client=spike\.example\.net\[192\.0\.2\.7\]$/);
    // Postfix's Received field is always the hop it saw (XFORWARD is for its log): dkimgate, by its EHLO name
    expect(topReceived(held)).toMatch(/^Received: from \S+ \(unknown \[127\.0\.0\.1\]\) by reinject\.test\.example \(Postfix\) with ESMTP id /);
  });

  it('logs a direct client of dkimgate as orig_client, not dkimgate', async () => {
    const { queueId } = await relayThroughGate({ helo: 'laptop.client.test' });
    const logLine = await waitFor(() => postfix.log().split('\n').find((l) => l.includes(`${queueId}: client=`)), 10_000);
    expect(logLine).toMatch(/: client=unknown\[127\.0\.0\.1\], orig_client=unknown\[127\.0\.0\.1\]$/);
  });

  it('passes a local submission on as REMOTE: the next hop adds no Date after signing', async () => {
    // Postfix forwards sendmail(1) mail this way; as LOCAL, the next hop would add the missing Date to a signed message
    const { queueId, held } = await relayThroughGate({ helo: 'mta.inside.test', xforward: 'ADDR=[UNAVAILABLE] SOURCE=LOCAL PROTO=ESMTP HELO=mta.inside.test IDENT=4LOCAL1', noDate: true });
    expect(held).not.toMatch(/^Date:/m);
    const logLine = await waitFor(() => postfix.log().split('\n').find((l) => l.includes(`${queueId}: client=`)), 10_000);
    expect(logLine).toMatch(/: client=unknown\[127\.0\.0\.1\], orig_queue_id=4LOCAL1, orig_client=unknown$/);
  });

  it('hands the DSN parameters to Postfix as the client gave them (RET, ENVID, NOTIFY, ORCPT in its queue file)', async () => {
    const { queueId } = await relayThroughGate({ helo: 'mta.inside.test', mailParams: 'RET=HDRS ENVID=QQ+2B314', rcptParams: 'NOTIFY=SUCCESS,DELAY ORCPT=rfc822;bob+2Bdsn@example.org' });
    const envelope = await postfix.command('postcat', ['-eq', queueId]);
    // Postfix's codes: ret_flags 2 = HDRS, notify_flags 2|8 = SUCCESS,DELAY
    for (const record of ['envelope_id=QQ+314', 'ret_flags=2', 'notify_flags=10', 'dsn_orig_rcpt=rfc822;bob+dsn@example.org']) {
      expect(envelope).toContain(`named_attribute: ${record}\n`);
    }
    // and its rewrite context is remote: it adds nothing to the header after signing
    expect(envelope).toContain('named_attribute: rewrite_context=remote\n');
  });
});
