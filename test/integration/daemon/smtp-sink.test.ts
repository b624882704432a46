// Postfix's smtp-sink as the daemon's next hop: mail signed by the daemon arrives there whole, with the client's
// envelope parameters, and verifies with dkimpy. Touches: the smtp-sink child it starts (ended by PID), a temp dir of
// dumps, loopback sockets, /usr/bin/python3.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BASIC_MESSAGE } from '../../helpers/dkim-test-kit.js';
import { dkimpyVerify } from '../../helpers/dkimpy.js';
import { Harness, messageLine, SIGN_DOMAIN, waitFor } from '../../helpers/daemon-harness.js';
import { readSinkDumps, startSmtpSink, type RunningSmtpSink } from '../../helpers/next-hop-server.js';
import { dotStuff, RawClient, sendMail, transaction } from '../../helpers/raw-smtp-client.js';

const harness = new Harness();
let sink: RunningSmtpSink | null = null;
let dumpDir = '';

beforeAll(async () => {
  await harness.setup();
});
afterEach(async () => {
  await harness.cleanup();
  await sink?.stop();
  sink = null;
  if (dumpDir) await rm(dumpDir, { recursive: true, force: true });
});
afterAll(() => harness.dispose());

describe("Postfix's smtp-sink as the next hop", () => {
  it('receives the signed message with the envelope parameters, and dkimpy verifies both signatures', async () => {
    dumpDir = await mkdtemp(join(tmpdir(), 'dkimgate-sink-'));
    sink = await startSmtpSink({ dumpDir });
    const gate = await harness.startGate(harness.config(), {}, { host: sink.host, port: sink.port });
    const size = dotStuff(BASIC_MESSAGE).length;
    const r = await sendMail(gate.port, {
      to: ['bob@example.org', 'carol@example.org'],
      mailParams: `SIZE=${size} BODY=8BITMIME RET=FULL ENVID=env1`,
      rcptParams: 'NOTIFY=FAILURE',
      data: BASIC_MESSAGE,
    });
    expect(r.final[0]?.code).toBe(250);
    const dumps = await readSinkDumps(dumpDir);
    expect(dumps).toHaveLength(1);
    const [dump] = dumps;
    expect(dump!.mailArgs).toMatch(/^<alice@example\.com> /);
    expect(dump!.mailArgs).toMatch(/ BODY=8BITMIME/);
    expect(dump!.mailArgs).toMatch(/ RET=FULL/);
    expect(dump!.mailArgs).toMatch(/ ENVID=env1/);
    // smtp-sink does not announce SIZE, so none is sent (RFC 1870: only to a server that announced it)
    expect(dump!.mailArgs).not.toMatch(/SIZE=/);
    expect(dump!.rcptArgs).toEqual(['<bob@example.org> NOTIFY=FAILURE', '<carol@example.org> NOTIFY=FAILURE']);
    const keys = harness.keys!;
    const verdicts = await dkimpyVerify(dump!.message, { [`rsa1._domainkey.${SIGN_DOMAIN}`]: keys.rsa.record, [`ed1._domainkey.${SIGN_DOMAIN}`]: keys.ed.record });
    expect(verdicts).toEqual(['pass', 'pass']);
    expect(dump!.message.subarray(-BASIC_MESSAGE.length).equals(BASIC_MESSAGE)).toBe(true);
    const line = await messageLine(gate);
    expect(line.relay).toBe('delivered');
  });

  it('relays a hundred messages in one session, each answered 250 after the sink said 250', async () => {
    sink = await startSmtpSink();
    const gate = await harness.startGate(harness.config({ relayHosts: [] }), {}, { host: sink.host, port: sink.port });
    const replies: Array<number | undefined> = [];
    const client = await RawClient.open(gate.port);
    try {
      const ehlo = await client.command('EHLO client.outside.test');
      for (let i = 0; i < 100; i++) replies.push((await transaction(client, ehlo, { from: 'carol@outside.test', data: BASIC_MESSAGE })).final[0]?.code);
    } finally {
      client.close();
    }
    expect(replies.filter((c) => c === 250)).toHaveLength(100);
    await waitFor(() => gate.messageLines().length === 100);
    expect(gate.messageLines().every((l) => l.relay === 'delivered')).toBe(true);
  });
});
