// Attack: SMTP smuggling (CVE-2023-51764/5/6) and bare CR in a header, against the running daemon over loopback.
// Every pseudo-terminator, sent in one write, pipelined with its commands, and split byte by byte around the
// terminator: the next hop sees one message or none, and our own server answers exactly one end-of-data.
// (test/integration/daemon/daemon.test.ts checks four terminators in one write; this extends it.)
// Touches: loopback sockets, a temp dir of keys.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LineEndingPolicy } from '../../src/mail/line-ending-guard.js';
import { Harness, listener, messageLine, waitFor } from '../helpers/daemon-harness.js';
import { RawClient, type Reply } from '../helpers/raw-smtp-client.js';

const harness = new Harness();
beforeAll(() => harness.setup());
afterEach(() => harness.cleanup());
afterAll(() => harness.dispose());

const ENVELOPE = 'MAIL FROM:<carol@outside.test>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n';
const SMUGGLED = 'MAIL FROM:<attacker@evil.test>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nFrom: ceo@example.com\r\n\r\nsmuggled\r\n';

function payload(terminator: string): Buffer {
  return Buffer.from(`From: c@outside.test\r\nSubject: smuggle\r\n\r\nbody${terminator}${SMUGGLED}.\r\n`, 'latin1');
}

type Delivery = 'one write' | 'pipelined' | 'byte by byte';

/** Sends the transaction; returns every reply the server gave after EHLO. */
async function attack(port: number, terminator: string, delivery: Delivery): Promise<{ replies: Reply[]; rest: string }> {
  const client = await RawClient.open(port);
  try {
    expect((await client.command('EHLO client.outside.test')).code).toBe(250);
    const data = payload(terminator);
    const replies: Reply[] = [];
    if (delivery === 'pipelined') {
      // RFC 2920: the envelope, DATA and (against the rules) the message in one segment.
      client.write(Buffer.concat([Buffer.from(ENVELOPE, 'latin1'), data]));
      for (let i = 0; i < 4; i++) replies.push(await client.read(10_000));
    } else {
      for (const line of ENVELOPE.split('\r\n').filter(Boolean)) replies.push(await client.command(line));
      if (delivery === 'one write') client.write(data);
      else {
        // Each byte around the pseudo-terminator in its own segment: the parser must not depend on segmentation.
        const at = data.indexOf('body') + 4;
        client.write(data.subarray(0, at));
        for (let i = at; i < at + terminator.length + 6; i++) {
          client.write(data.subarray(i, i + 1));
          await new Promise((r) => setTimeout(r, 2));
        }
        client.write(data.subarray(at + terminator.length + 6));
      }
      replies.push(await client.read(10_000));
    }
    // Nothing more may come: a second end-of-data reply, or replies to smuggled commands, would show here.
    client.write('NOOP\r\n');
    replies.push(await client.read(5000));
    return { replies, rest: await client.drain(200) };
  } finally {
    client.close();
  }
}

const SEQUENCES: Array<[name: string, terminator: string, normalize: RegExp, reject: RegExp]> = [
  ['\\n.\\n', '\n.\n', /^250 /, /^550 5\.5\.2 /],
  ['\\r\\n.\\n', '\r\n.\n', /^250 /, /^550 5\.5\.2 /],
  ['\\n.\\r\\n', '\n.\r\n', /^250 /, /^550 5\.5\.2 /],
  ['\\r.\\r\\n', '\r.\r\n', /^550 5\.5\.2 /, /^550 5\.5\.2 /],
  ['\\r\\n.\\r', '\r\n.\r', /^550 5\.5\.2 /, /^550 5\.5\.2 /],
  ['\\r\\n\\0.\\r\\n (NUL before the dot)', '\r\n\x00.\r\n', /^550 5\.6\.0 /, /^550 5\.6\.0 /],
  ['\\n\\0.\\n', '\n\x00.\n', /^550 5\.6\.0 /, /^550 5\.[56]\.[02] /],
  ['\\r\\n.\\0\\r\\n (NUL after the dot)', '\r\n.\x00\r\n', /^550 5\.6\.0 /, /^550 5\.6\.0 /],
];

const CASES = SEQUENCES.flatMap(([name, terminator, normalize, reject]) =>
  (['one write', 'pipelined', 'byte by byte'] as const).flatMap((delivery) =>
    (['normalize', 'reject'] as const).map((mode) => [name, delivery, mode, terminator, mode === 'normalize' ? normalize : reject] as const),
  ),
);

describe('SMTP smuggling', () => {
  it.each(CASES)('%s, %s, line_endings %s: one end-of-data reply, and the next hop sees one message or none', async (_name, delivery, mode, terminator, expected) => {
    const gate = await harness.startGate(harness.config({ relayHosts: [], listen: [listener({ lineEndings: mode as LineEndingPolicy })] }));
    const { replies, rest } = await attack(gate.port, terminator, delivery);
    // MAIL, RCPT, DATA, end of data, NOOP: five replies and nothing else.
    expect(replies.map((r) => r.code).slice(0, 3)).toEqual([250, 250, 354]);
    expect(replies[3]!.text).toMatch(expected);
    expect(replies[4]!.code).toBe(250);
    expect(rest).toBe('');
    const hop = gate.nextHop;
    expect(hop.received.length).toBe(replies[3]!.code === 250 ? 1 : 0);
    expect(hop.commands.filter((c) => /^MAIL FROM/i.test(c.line))).toHaveLength(1);
    expect(hop.commands.some((c) => /attacker@evil\.test|victim@example\.org/i.test(c.line))).toBe(false);
    for (const m of hop.received) {
      expect(m.envelope.rcptTo).toEqual(['bob@example.org']);
      // The would-be commands arrived as text of the one message, after a "." line the relay dot-stuffed.
      expect(m.data.toString('latin1')).toContain('body\r\n.\r\nMAIL FROM:<attacker@evil.test>\r\n');
    }
    const line = await messageLine(gate);
    expect(line.outcome).toEqual(replies[3]!.code === 250 ? 'delivered' : expect.stringMatching(/^refused: (bare_cr|bare_lf|nul)$/));
  });
});

describe('bare CR in a header', () => {
  it.each([
    ['normalize', 'Subject: hello\rBcc: victim@example.org\r\n'],
    ['reject', 'Subject: hello\rBcc: victim@example.org\r\n'],
    ['normalize', 'Subject: hello\r\r\nX-Injected: yes\r\n'],
    ['normalize', 'Subject: hello\r\n\rX-Injected: yes\r\n'],
  ])('line_endings %s, %j: 550 5.5.2 and the next hop holds nothing (it would have become a new header there)', async (mode, field) => {
    const gate = await harness.startGate(harness.config({ relayHosts: [], listen: [listener({ lineEndings: mode as LineEndingPolicy })] }));
    const client = await RawClient.open(gate.port);
    try {
      await client.command('EHLO client.outside.test');
      for (const line of ENVELOPE.split('\r\n').filter(Boolean)) await client.command(line);
      client.write(`From: c@outside.test\r\n${field}\r\nbody\r\n.\r\n`);
      expect((await client.read(10_000)).text).toMatch(/^550 5\.5\.2 /);
    } finally {
      client.close();
    }
    expect(gate.nextHop.received).toHaveLength(0);
    expect((await waitFor(() => gate.messageLines()[0])).outcome).toBe('refused: bare_cr');
  });
});
