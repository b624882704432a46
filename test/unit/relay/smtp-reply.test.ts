import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createSmtpReplyParser, type SmtpReplyEvent } from '../../../src/relay/smtp-reply.js';

function parseAll(text: string | Buffer, limits?: { maxLineBytes: number; maxLines: number }): SmtpReplyEvent[] {
  return createSmtpReplyParser(limits).push(Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1'));
}

describe('createSmtpReplyParser', () => {
  it.each([
    ['250 OK\r\n', 250, null, 'OK', ['OK']],
    ['250 2.1.0 Sender OK\r\n', 250, '2.1.0', 'Sender OK', ['Sender OK']],
    ['550 5.1.1 <a@b.example>: no such user\r\n', 550, '5.1.1', '<a@b.example>: no such user', ['<a@b.example>: no such user']],
    ['451 4.3.0\r\n', 451, '4.3.0', '', ['']],
    ['354 End data with <CR><LF>.<CR><LF>\r\n', 354, null, 'End data with <CR><LF>.<CR><LF>', ['End data with <CR><LF>.<CR><LF>']],
    ['250\r\n', 250, null, '', ['']],
    ['220 mx.example ESMTP\n', 220, null, 'mx.example ESMTP', ['mx.example ESMTP']],
    // the enhanced class must match the reply's class (RFC 3463 §2)
    ['550 2.1.1 odd\r\n', 550, null, '2.1.1 odd', ['2.1.1 odd']],
    ['250 2.0.0000 not enhanced\r\n', 250, null, '2.0.0000 not enhanced', ['2.0.0000 not enhanced']],
    ['250 2.0.00 two-digit detail\r\n', 250, '2.0.00', 'two-digit detail', ['two-digit detail']],
    ['250 2.0.0.queued\r\n', 250, null, '2.0.0.queued', ['2.0.0.queued']],
    ['421 4.4.2 Timeout - closing connection\r\n', 421, '4.4.2', 'Timeout - closing connection', ['Timeout - closing connection']],
  ])('parses %j', (wire, code, enhanced, text, lines) => {
    expect(parseAll(wire)).toEqual([{ kind: 'reply', reply: { code, enhanced, text, lines } }]);
  });

  it('joins a multi-line reply and strips the enhanced code from every line', () => {
    const events = parseAll('550-5.7.1 first line\r\n550-5.7.1 second line\r\n550 5.7.1 last line\r\n');
    expect(events).toEqual([
      { kind: 'reply', reply: { code: 550, enhanced: '5.7.1', text: 'first line second line last line', lines: ['first line', 'second line', 'last line'] } },
    ]);
  });

  it('reads an EHLO reply whose lines carry no enhanced code', () => {
    const events = parseAll('250-mx.example Hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ kind: 'reply', reply: { code: 250, enhanced: null, lines: ['mx.example Hello', 'PIPELINING', 'SIZE 1000', '8BITMIME'] } });
  });

  it('returns several replies from one chunk in order (LMTP answers one per recipient)', () => {
    const events = parseAll('250 2.0.0 a delivered\r\n550 5.1.1 b unknown\r\n452 4.2.2 c over quota\r\n');
    expect(events.map((e) => (e.kind === 'reply' ? [e.reply.code, e.reply.enhanced] : e.kind))).toEqual([
      [250, '2.0.0'],
      [550, '5.1.1'],
      [452, '4.2.2'],
    ]);
  });

  it('gives the same replies whatever the chunking, byte by byte included', () => {
    const wire = Buffer.from('220-mx.example\r\n220 ready\r\n250-a\r\n250 b\r\n550 5.1.1 no\r\n');
    const whole = parseAll(wire);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: wire.length - 1 }), { maxLength: 8 }), (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const parser = createSmtpReplyParser();
        const events: SmtpReplyEvent[] = [];
        let from = 0;
        for (const at of [...points, wire.length]) {
          events.push(...parser.push(wire.subarray(from, at)));
          from = at;
        }
        expect(events).toEqual(whole);
        expect(parser.idle).toBe(true);
      }),
    );
    const bytewise = createSmtpReplyParser();
    const events: SmtpReplyEvent[] = [];
    for (let i = 0; i < wire.length; i++) events.push(...bytewise.push(wire.subarray(i, i + 1)));
    expect(events).toEqual(whole);
  });

  it('holds a partial reply until its last line arrives', () => {
    const parser = createSmtpReplyParser();
    expect(parser.push(Buffer.from('250-first\r\n250 sec'))).toEqual([]);
    expect(parser.idle).toBe(false);
    expect(parser.push(Buffer.from('ond\r\n'))).toEqual([{ kind: 'reply', reply: { code: 250, enhanced: null, text: 'first second', lines: ['first', 'second'] } }]);
    expect(parser.idle).toBe(true);
  });

  it.each([
    ['hello\r\n', 'reply line without a reply code'],
    ['25 short\r\n', 'reply line without a reply code'],
    ['2500 OK\r\n', 'reply code followed by neither space nor hyphen'],
    ['650 no such class\r\n', 'reply line without a reply code'],
    ['150 preliminary\r\n', 'reply line without a reply code'],
    ['250-first\r\n251 second\r\n', 'multi-line reply with differing codes'],
    ['\r\n', 'reply line without a reply code'],
    ['HTTP/1.1 400 Bad Request\r\n', 'reply line without a reply code'],
  ])('reports %j as garbled', (wire, detail) => {
    expect(parseAll(wire)).toEqual([{ kind: 'garbled', detail }]);
  });

  it('reports a line over the length limit as garbled, without waiting for its end', () => {
    const parser = createSmtpReplyParser({ maxLineBytes: 64, maxLines: 10 });
    expect(parser.push(Buffer.from('250 ' + 'x'.repeat(60)))).toEqual([]);
    expect(parser.push(Buffer.from('x'.repeat(10)))).toEqual([{ kind: 'garbled', detail: 'reply line longer than 64 bytes' }]);
    expect(parser.garbled).toBe(true);
  });

  it('accepts a line of exactly the limit, CRLF excluded', () => {
    const line = '250 ' + 'x'.repeat(60);
    expect(parseAll(line + '\r\n', { maxLineBytes: 64, maxLines: 10 })).toMatchObject([{ kind: 'reply' }]);
    expect(parseAll(line + 'x\r\n', { maxLineBytes: 64, maxLines: 10 })).toMatchObject([{ kind: 'garbled' }]);
  });

  it('uses a 4 KB line limit by default', () => {
    expect(parseAll('250 ' + 'x'.repeat(4092) + '\r\n')).toMatchObject([{ kind: 'reply' }]);
    expect(parseAll('250 ' + 'x'.repeat(4093) + '\r\n')).toMatchObject([{ kind: 'garbled' }]);
  });

  it('reports a reply with too many lines as garbled', () => {
    const wire = '250-x\r\n'.repeat(5) + '250 x\r\n';
    expect(parseAll(wire, { maxLineBytes: 100, maxLines: 6 })).toMatchObject([{ kind: 'reply' }]);
    expect(parseAll(wire, { maxLineBytes: 100, maxLines: 5 })).toEqual([{ kind: 'garbled', detail: 'reply longer than 5 lines' }]);
  });

  it('parses nothing more after a garbled line, even valid replies', () => {
    const parser = createSmtpReplyParser();
    expect(parser.push(Buffer.from('250 ok\r\nnonsense\r\n250 ok\r\n'))).toEqual([
      { kind: 'reply', reply: { code: 250, enhanced: null, text: 'ok', lines: ['ok'] } },
      { kind: 'garbled', detail: 'reply line without a reply code' },
    ]);
    expect(parser.push(Buffer.from('250 ok\r\n'))).toEqual([]);
  });

  it('replaces control characters in reply text so a text passed on cannot split a reply', () => {
    expect(parseAll('550 5.7.1 bad\rthing\x00here\x1b[31m\r\n')).toEqual([
      { kind: 'reply', reply: { code: 550, enhanced: '5.7.1', text: 'bad thing here [31m', lines: ['bad thing here [31m'] } },
    ]);
  });

  it('decodes UTF-8 text', () => {
    expect(parseAll(Buffer.from('550 5.1.1 unbekannter Empfänger\r\n', 'utf8'))).toMatchObject([{ kind: 'reply', reply: { text: 'unbekannter Empfänger' } }]);
  });

  it('never throws on arbitrary bytes and always ends in replies or one garbled event', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 6 }), (chunks) => {
        const parser = createSmtpReplyParser({ maxLineBytes: 128, maxLines: 4 });
        const events = chunks.flatMap((c) => parser.push(Buffer.from(c)));
        const garbled = events.filter((e) => e.kind === 'garbled');
        expect(garbled.length).toBeLessThanOrEqual(1);
        if (garbled.length === 1) expect(events[events.length - 1]!.kind).toBe('garbled');
        for (const e of events) if (e.kind === 'reply') expect(e.reply.code).toBeGreaterThanOrEqual(200);
      }),
    );
  });
});
