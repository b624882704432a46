// Postfix's own LMTP client as the peer of dkimgate's LMTP listener: a private Postfix instance whose smtpd hands
// every message to dkimgate over LMTP (content_filter), dkimgate in-process in front of a scriptable next hop. What
// Postfix records per recipient (sent, bounced, deferred) is what an operator sees; a reply too few would leave
// Postfix waiting until lmtp_data_done_timeout. Touches: the Postfix processes it starts (ended by PID), temp dirs,
// loopback ports.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../../src/config/defaults.js';
import { crlf } from '../../helpers/dkim-test-kit.js';
import { Harness, listener, waitFor, type Gate } from '../../helpers/daemon-harness.js';
import { freePort } from '../../helpers/next-hop-server.js';
import { startPostfix, stockMasterCf, type PostfixInstance } from '../../helpers/postfix-instance.js';
import { sendMail } from '../../helpers/raw-smtp-client.js';

/** How long Postfix waits for our replies after the final dot: short, so a missing reply fails the test soon. */
const DATA_DONE_TIMEOUT_S = 15;

const harness = new Harness();
let gate: Gate;
let postfix: PostfixInstance;
let smtpdPort = 0;
let counter = 0;

/** Debian's stock master.cf, its smtpd on a loopback test port handing mail to dkimgate over LMTP; no chroot. */
function masterCf(gatePort: number): Promise<string> {
  return stockMasterCf((text) => text.replace(/^smtp(\s+)inet.*$/m, `127.0.0.1:${smtpdPort} inet n - n - - smtpd\n  -o content_filter=lmtp:inet:[127.0.0.1]:${gatePort}`));
}

beforeAll(async () => {
  await harness.setup();
  const base = defaultConfig();
  gate = await harness.startGate(
    harness.config({
      listen: [listener({ protocol: 'lmtp' })],
      // mail from bank.test must carry a passing signature: unsigned, it is refused after DATA
      policy: { ...base.policy, require: [{ domain: 'bank.test', aligned: true }] },
    }),
    {
      onRcptTo: (address) => (address.startsWith('nobody@') ? { code: 550, message: 'no such user' } : null),
      onData: (envelope) => (envelope.rcptTo.some((r) => r.startsWith('busy@')) ? { kind: 'defer', message: 'mailbox busy' } : { kind: 'accept' }),
    },
  );
  smtpdPort = await freePort();
  postfix = await startPostfix({
    mainCf: [
      'myhostname = postfix.test.example',
      'mydestination =',
      'mynetworks = 127.0.0.0/8',
      'relay_domains = example.org',
      // bounces to the senders are not the subject here: they go nowhere
      'default_transport = discard',
      'relay_transport = discard',
      `lmtp_data_done_timeout = ${DATA_DONE_TIMEOUT_S}s`,
      '',
    ].join('\n'),
    masterCf: await masterCf(gate.port),
  });
}, 60_000);

afterAll(async () => {
  await postfix?.stop();
  await harness.dispose();
});

/** Postfix's delivery log line (sent, bounced or deferred) for each recipient of its message `queueId`, by recipient. */
async function postfixResults(queueId: string, recipients: string[]): Promise<Record<string, string>> {
  const pick = () => {
    const lines = postfix
      .log()
      .split('\n')
      .filter((l) => l.includes(` ${queueId}: to=<`) && / status=(sent|bounced|deferred) /.test(l));
    const byRecipient: Record<string, string> = {};
    for (const r of recipients) {
      const line = lines.find((l) => l.includes(`to=<${r}>`));
      if (line) byRecipient[r] = line;
    }
    return Object.keys(byRecipient).length === recipients.length ? byRecipient : null;
  };
  return waitFor(pick, (DATA_DONE_TIMEOUT_S + 10) * 1000).catch((err: Error) => {
    throw new Error(`${err.message}\n--- Postfix log ---\n${postfix.log().slice(-3000)}`);
  });
}

/** Submits a message to Postfix's smtpd; returns Postfix's queue id. */
async function submit(from: string, to: string[]): Promise<string> {
  const data = crlf([`From: ${from}`, 'To: list@example.org', `Subject: lmtp peer ${++counter}`, 'Date: Tue, 14 Nov 2023 22:13:20 +0000', '', 'Hi.', ''].join('\n'));
  const r = await sendMail(smtpdPort, { from, to, data });
  expect(r.final[0]?.code, r.final[0]?.text).toBe(250);
  const queued = /queued as ([0-9A-Za-z]+)/.exec(r.final[0]!.text);
  expect(queued).not.toBeNull();
  return queued![1]!;
}

const statusOf = (line: string | undefined) => / status=(\w+) /.exec(line ?? '')?.[1];

describe("Postfix's LMTP client delivering through dkimgate", () => {
  it('records sent for the recipients the next hop took and bounced for the one it refused at RCPT', async () => {
    const to = ['a@example.org', 'nobody@example.org', 'c@example.org'];
    const results = await postfixResults(await submit('alice@example.com', to), to);
    expect(to.map((r) => statusOf(results[r]))).toEqual(['sent', 'bounced', 'sent']);
    expect(results['nobody@example.org']).toMatch(/said: 550 5\.1\.1 next hop: no such user \(in reply to RCPT TO command\)/);
    expect(results['a@example.org']).toMatch(/\(250 2\.0\.0 Ok: queued as /);
  });

  it('records deferred for every recipient when the next hop defers the message at the end of data', async () => {
    const to = ['busy@example.org', 'b@example.org'];
    const results = await postfixResults(await submit('alice@example.com', to), to);
    expect(to.map((r) => statusOf(results[r]))).toEqual(['deferred', 'deferred']);
    expect(results['b@example.org']).toMatch(/said: 451 4\.3\.0 next hop: mailbox busy \(in reply to end of DATA command\)/);
    // and dkimgate's own line says what Postfix says: nothing was delivered
    const line = await waitFor(() => gate.messageLines().find((l) => (l.rcptTo as string[]).includes('busy@example.org')));
    expect([line.outcome, line.relay]).toEqual(['deferred by next hop', 'deferred']);
  });

  it('records bounced with 5.7.20 for every recipient of a policy rejection', async () => {
    const to = ['a@example.org', 'b@example.org', 'c@example.org'];
    const results = await postfixResults(await submit('ceo@bank.test', to), to);
    expect(to.map((r) => statusOf(results[r]))).toEqual(['bounced', 'bounced', 'bounced']);
    expect(results['b@example.org']).toMatch(/said: 550 5\.7\.20 no passing DKIM signature found \(in reply to end of DATA command\)/);
  });
});
