import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/observability/logger.js';
import {
  formatMessageLog,
  MAX_LOGGED_RECIPIENTS,
  parseQueuedAs,
  type MessageRecord,
} from '../../../src/observability/message-log.js';

function signedRecord(): MessageRecord {
  return {
    queueId: 'DG7Q2K9X',
    listener: '127.0.0.1:10027',
    client: { address: '192.0.2.10', via: 'xforward', helo: 'client.example.com', authUser: null },
    authorDomain: 'example.com',
    envelope: { mailFrom: 'alice@example.com', rcptTo: ['bob@example.net', 'carol@example.org'] },
    sizeBytes: 2048,
    decision: { kind: 'sign', reason: 'client is a relay host' },
    signedWith: [
      { domain: 'example.com', selector: 's2026', algorithm: 'rsa-sha256' },
      { domain: 'example.com', selector: 'ed2026', algorithm: 'ed25519-sha256' },
    ],
    relay: { outcome: 'delivered', reply: { code: 250, enhanced: '2.0.0', text: 'Ok: queued as 4Xyz12AbC' } },
    timings: { receiveMs: 1.23456, signMs: 0.5, relayMs: 3, totalMs: 4.9 },
    outcome: 'relayed',
  };
}

function verifiedRecord(): MessageRecord {
  return {
    queueId: 'DG8A',
    listener: 'mx',
    client: { address: '198.51.100.7', via: 'connection', helo: 'mail.sender.test' },
    envelope: { mailFrom: 'news@sender.test', rcptTo: ['x@example.com'] },
    sizeBytes: 100,
    decision: { kind: 'verify', reason: 'client not trusted' },
    signatures: [
      { domain: 'sender.test', selector: 'sel', result: 'pass', reason: null },
      { domain: 'other.test', selector: 'k1', result: 'permerror', reason: 'no_key' },
    ],
    policy: { kind: 'accept' },
    relay: { outcome: 'delivered', reply: { code: 250, enhanced: '2.0.0', text: 'OK id=1rAbCd-000Ef1-2G' } },
    timings: { receiveMs: 1, verifyMs: 7.25, relayMs: 2, totalMs: 10.25 },
    outcome: 'relayed',
  };
}

describe('formatMessageLog', () => {
  it('puts the queue id, client, envelope, sign decision, signatures added, relay reply and timings on one flat object', () => {
    expect(formatMessageLog(signedRecord())).toEqual({
      queueId: 'DG7Q2K9X',
      listener: '127.0.0.1:10027',
      client: '192.0.2.10',
      clientVia: 'xforward',
      helo: 'client.example.com',
      authUser: null,
      authorDomain: 'example.com',
      mailFrom: 'alice@example.com',
      rcptTo: ['bob@example.net', 'carol@example.org'],
      rcptCount: 2,
      sizeBytes: 2048,
      decision: 'sign',
      decisionReason: 'client is a relay host',
      signed: [
        { domain: 'example.com', selector: 's2026', algorithm: 'rsa-sha256' },
        { domain: 'example.com', selector: 'ed2026', algorithm: 'ed25519-sha256' },
      ],
      relay: 'delivered',
      relayCode: 250,
      relayEnhanced: '2.0.0',
      relayText: 'Ok: queued as 4Xyz12AbC',
      nextHopQueueId: '4Xyz12AbC',
      receiveMs: 1.235,
      signMs: 0.5,
      relayMs: 3,
      totalMs: 4.9,
      outcome: 'relayed',
    });
  });

  it('lists each verified signature with its result and reason', () => {
    const line = formatMessageLog(verifiedRecord());
    expect(line.dkim).toEqual([
      { domain: 'sender.test', selector: 'sel', result: 'pass', reason: null },
      { domain: 'other.test', selector: 'k1', result: 'permerror', reason: 'no_key' },
    ]);
    expect(line).toMatchObject({ decision: 'verify', decisionReason: 'client not trusted', policy: 'accept', verifyMs: 7.25 });
    expect(line.nextHopQueueId).toBe('1rAbCd-000Ef1-2G');
    expect(line).not.toHaveProperty('signed');
    expect(line).not.toHaveProperty('ambiguous');
  });

  it('records a policy rejection with its status and dry-run flag', () => {
    const record = verifiedRecord();
    record.policy = { kind: 'reject', status: '5.7.20', dryRun: true };
    expect(formatMessageLog(record)).toMatchObject({ policy: 'reject', policyStatus: '5.7.20', policyDryRun: true });
  });

  it('says ambiguous with both queue ids when the next hop accepted but our client vanished', () => {
    const record = signedRecord();
    record.relay = { outcome: 'ambiguous', reply: { code: 250, enhanced: '2.0.0', text: 'Ok: queued as 4bXyZ0Abc1z5kTg' } };
    record.outcome = 'ambiguous';
    const line = formatMessageLog(record);
    expect(line).toMatchObject({ ambiguous: true, queueId: 'DG7Q2K9X', nextHopQueueId: '4bXyZ0Abc1z5kTg', relay: 'ambiguous' });
  });

  it('says what ended a relay that got no reply, the detail made printable and bounded', () => {
    const record = signedRecord();
    record.relay = { outcome: 'ambiguous', error: { kind: 'lost', during: 'end-of-data', detail: `reset\r\n{"msg":"x"}${'y'.repeat(500)}` } };
    const line = formatMessageLog(record);
    expect(line.relayError).toMatch(/^lost during end-of-data: reset\\r\\n\{"msg":"x"\}y+\.\.\.$/);
    expect(line.relayError!.length).toBeLessThanOrEqual(200);
    record.relay = { outcome: 'timeout', error: { kind: 'timeout', during: 'data' } };
    expect(formatMessageLog(record).relayError).toBe('timeout during data');
    expect(formatMessageLog(signedRecord())).not.toHaveProperty('relayError');
  });

  it('prefers a next-hop queue id the relay already knows over parsing the text', () => {
    const record = signedRecord();
    record.relay.nextHopQueueId = 'FROM-RELAY';
    expect(formatMessageLog(record).nextHopQueueId).toBe('FROM-RELAY');
    record.relay.nextHopQueueId = null;
    expect(formatMessageLog(record).nextHopQueueId).toBeNull();
  });

  it('does not read a queue id out of a refusal', () => {
    const record = signedRecord();
    record.relay = { outcome: 'refused', reply: { code: 554, enhanced: '5.7.1', text: 'rejected, queued as nothing' } };
    expect(formatMessageLog(record)).toMatchObject({ relay: 'refused', relayCode: 554, nextHopQueueId: null });
  });

  it('makes hostile addresses, HELO names, DKIM domains and reply texts printable', () => {
    const record = verifiedRecord();
    record.client.helo = 'evil\r\n{"level":"fatal"}';
    record.envelope.mailFrom = 'a\u0000b@example.com';
    record.envelope.rcptTo = ['r\u00e9@example.com'];
    record.signatures = [{ domain: 'x.test\nforged=1', selector: 's\t1', result: 'fail', reason: 'body_hash_mismatch' }];
    record.relay.reply = { code: 250, enhanced: null, text: `ok\r\n${'z'.repeat(500)}` };
    const line = formatMessageLog(record);
    expect(line.helo).toBe('evil\\r\\n{"level":"fatal"}');
    expect(line.mailFrom).toBe('a\\x00b@example.com');
    expect(line.rcptTo).toEqual(['r\\u{E9}@example.com']);
    expect(line.dkim?.[0]).toMatchObject({ domain: 'x.test\\nforged=1', selector: 's\\t1' });
    expect(line.relayText).toMatch(/^ok\\r\\nz+\.\.\.$/);
    expect(line.relayText?.length).toBe(200);
  });

  it('keeps the line bounded when a message has very many recipients, and says how many there were', () => {
    const record = signedRecord();
    record.envelope.rcptTo = Array.from({ length: 1000 }, (_, i) => `r${i}@example.net`);
    record.relay.perRecipient = record.envelope.rcptTo.map((r) => ({ recipient: r, reply: { code: 250, enhanced: '2.1.5', text: 'Ok' } }));
    const line = formatMessageLog(record);
    expect(line.rcptCount).toBe(1000);
    expect(line.rcptTo).toHaveLength(MAX_LOGGED_RECIPIENTS);
    expect(line.relayRecipients).toHaveLength(MAX_LOGGED_RECIPIENTS);
    expect(line.relayRecipients?.[0]).toEqual({ recipient: 'r0@example.net', code: 250, enhanced: '2.1.5', text: 'Ok' });
  });

  it('logs an unknown client as null and leaves absent optional parts out', () => {
    const record = signedRecord();
    record.client = { address: null, via: 'xforward' };
    delete record.authorDomain;
    delete record.signedWith;
    record.relay = { outcome: 'not_relayed' };
    record.decision = { kind: 'refuse', reason: 'bare CR' };
    const line = formatMessageLog(record);
    expect(line.client).toBeNull();
    for (const key of ['helo', 'authUser', 'authorDomain', 'signed', 'dkim', 'relayCode', 'relayRecipients', 'verifyMs', 'ambiguous']) {
      expect(line).not.toHaveProperty(key);
    }
    expect(line).toMatchObject({ relay: 'not_relayed', nextHopQueueId: null, decision: 'refuse' });
  });

  it('goes through the logger as exactly one JSON line even with CR LF in the envelope', () => {
    const chunks: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        chunks.push(chunk.toString());
        done();
      },
    });
    const record = signedRecord();
    record.envelope.mailFrom = 'x@example.com\r\n{"msg":"forged"}';
    createLogger({ destination: stream }).info(formatMessageLog(record), 'message');
    const text = chunks.join('');
    expect(text.split('\n').filter((l) => l !== '')).toHaveLength(1);
    expect(JSON.parse(text)).toMatchObject({ msg: 'message', queueId: 'DG7Q2K9X', mailFrom: 'x@example.com\\r\\n{"msg":"forged"}' });
  });
});

describe('parseQueuedAs', () => {
  it.each([
    ['Postfix, full reply line', '250 2.0.0 Ok: queued as 4Xyz12AbC', '4Xyz12AbC'],
    ['Postfix, text only', 'Ok: queued as 4Xyz12AbC', '4Xyz12AbC'],
    ['Postfix, enhanced code and text', '2.0.0 Ok: queued as 3F1A2B3C4D', '3F1A2B3C4D'],
    ['Postfix long queue ids', '250 2.0.0 Ok: queued as 4bXyZ0Abc1z5kTg', '4bXyZ0Abc1z5kTg'],
    ['a continuation-style prefix', '250-2.0.0 Ok: queued as ABC123', 'ABC123'],
    ['"queued as" in another case with a colon', 'Message QUEUED AS: q-77.x', 'q-77.x'],
    ['Exim', '250 OK id=1rAbCd-000Ef1-2G', '1rAbCd-000Ef1-2G'],
    ['Exim 4.97 long ids', 'OK id=1tQyzP-00000000Ab3-0xYz', '1tQyzP-00000000Ab3-0xYz'],
    ['Haraka', '250 Message Queued (4F0B2E3A-1C2D-4E5F-8A9B-0C1D2E3F4A5B.1)', '4F0B2E3A-1C2D-4E5F-8A9B-0C1D2E3F4A5B.1'],
    ['Sendmail', '250 2.0.0 4BJ1x2Ab012345 Message accepted for delivery', '4BJ1x2Ab012345'],
    ['Gmail', '250 2.0.0 OK  1700000000 a1b2c3d4e5si123456qkb.123 - gsmtp', 'a1b2c3d4e5si123456qkb.123'],
    ['a trailing full stop', 'Ok: queued as ABC123.', 'ABC123'],
  ])('reads the queue id from %s', (_case, text, id) => {
    expect(parseQueuedAs(text)).toBe(id);
  });

  it.each([
    ['smtp-server default', '250 OK: message queued'],
    ['a bare Ok', '250 2.0.0 Ok'],
    ['Exchange', '250 2.6.0 <msg@host> [InternalId=123, Hostname=EX1] Queued mail for delivery'],
    ['"queued as" with nothing after it', 'Ok: queued as '],
    ['an id longer than 64 characters', `Ok: queued as ${'A'.repeat(65)}`],
    ['an id made of punctuation', 'Ok: queued as ---'],
    ['the empty string', ''],
  ])('finds no queue id in %s', (_case, text) => {
    expect(parseQueuedAs(text)).toBeNull();
  });

  it('only looks at the first 512 characters of a reply', () => {
    expect(parseQueuedAs(`${'x '.repeat(300)}queued as LATE1`)).toBeNull();
  });
});
