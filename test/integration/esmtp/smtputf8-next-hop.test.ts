// SMTPUTF8 (RFC 6531) towards a next hop that does not announce it, here Postfix's smtp-sink: a message whose client
// asked for SMTPUTF8 and whose header is UTF-8 is refused with 550 5.6.7, as Postfix's own SMTP client returns it,
// never passed on with the flag silently dropped; an all-ASCII one still goes, without the flag, as Postfix sends it.
// And an 8-bit body to a next hop without 8BITMIME (an smtp-server one): byte for byte, as the README says.
// Touches: the smtp-sink child it starts (ended by PID), a temp dir of dumps, loopback sockets, a temp dir of keys.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { crlf } from '../../helpers/dkim-test-kit.js';
import { Harness, messageLine } from '../../helpers/daemon-harness.js';
import { readSinkDumps, startSmtpSink, type RunningSmtpSink } from '../../helpers/next-hop-server.js';
import { sendMail } from '../../helpers/raw-smtp-client.js';

const harness = new Harness();
let sink: RunningSmtpSink | null = null;
let dumpDir = '';

beforeAll(() => harness.setup());
afterEach(async () => {
  await harness.cleanup();
  await sink?.stop();
  sink = null;
  if (dumpDir) await rm(dumpDir, { recursive: true, force: true });
});
afterAll(() => harness.dispose());

const UTF8_MESSAGE = crlf('From: Jöran <joran@example.org>\nTo: bob@example.net\nSubject: Grüße\n\nHallo.\n');
const ASCII_MESSAGE = crlf('From: Joran <joran@example.org>\nTo: bob@example.net\nSubject: hello\n\nHallo.\n');

async function gateToSink() {
  dumpDir = await mkdtemp(join(tmpdir(), 'dkimgate-esmtp-sink-'));
  sink = await startSmtpSink({ dumpDir });
  return harness.startGate(harness.config({ relayHosts: [] }), {}, { host: sink.host, port: sink.port });
}

describe('SMTPUTF8 to a next hop without it (smtp-sink)', () => {
  it('refuses a UTF-8 header the client flagged SMTPUTF8 with 550 5.6.7, and the sink holds nothing', async () => {
    const gate = await gateToSink();
    const r = await sendMail(gate.port, { from: 'joran@example.org', to: ['bob@example.net'], mailParams: 'SMTPUTF8', data: UTF8_MESSAGE });
    expect(r.mail.code).toBe(250);
    expect(r.final[0]?.text).toBe('550 5.6.7 SMTPUTF8 is required for a non-ASCII header, but was not offered by the next hop\r\n');
    expect(await readSinkDumps(dumpDir)).toEqual([]);
    const line = await messageLine(gate);
    expect(line.outcome).toBe('refused: SMTPUTF8 not offered by the next hop');
  });

  it('relays an all-ASCII message flagged SMTPUTF8 without the flag, as Postfix does', async () => {
    const gate = await gateToSink();
    const r = await sendMail(gate.port, { from: 'joran@example.org', to: ['bob@example.net'], mailParams: 'SMTPUTF8', data: ASCII_MESSAGE });
    expect(r.final[0]?.code).toBe(250);
    const dumps = await readSinkDumps(dumpDir);
    expect(dumps.map((d) => d.mailArgs)).toEqual(['<joran@example.org>']);
  });

  it('relays legacy 8-bit header bytes the client did not flag, unchanged', async () => {
    const gate = await gateToSink();
    const r = await sendMail(gate.port, { from: 'joran@example.org', to: ['bob@example.net'], data: UTF8_MESSAGE });
    expect(r.final[0]?.code).toBe(250);
    const [dump] = await readSinkDumps(dumpDir);
    expect(dump!.message.subarray(-UTF8_MESSAGE.length).equals(UTF8_MESSAGE)).toBe(true);
  });
});

describe('8BITMIME to a next hop without it', () => {
  it('relays an 8-bit body byte for byte, without BODY=, unconverted', async () => {
    const gate = await harness.startGate(harness.config({ relayHosts: [] }), { hide: { eightBitMime: true } });
    const body = crlf('From: Joran <joran@example.org>\nTo: bob@example.net\nSubject: hello\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nGrüße, ½ €.\n');
    const r = await sendMail(gate.port, { from: 'joran@example.org', to: ['bob@example.net'], mailParams: 'BODY=8BITMIME', data: body });
    expect(r.final[0]?.code).toBe(250);
    const [relayed] = gate.nextHop.messages;
    expect(relayed!.envelope.mailParams).toEqual({});
    expect(relayed!.data.subarray(-body.length).equals(body)).toBe(true);
  });
});
