import { describe, expect, it } from 'vitest';
import { parseEhloCapabilities } from '../../../src/relay/ehlo-capabilities.js';

const reply = (lines: string[]) => ({ code: 250, enhanced: null, text: lines.join(' '), lines });

describe('parseEhloCapabilities', () => {
  it('reads the extensions a next hop announces', () => {
    const caps = parseEhloCapabilities(
      reply(['mx.example Hello', 'PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'DSN', 'AUTH PLAIN LOGIN', 'STARTTLS', 'SIZE 10240000', 'CHUNKING']),
    );
    expect(caps).toEqual({
      size: true,
      maxSizeBytes: 10240000,
      pipelining: true,
      eightBitMime: true,
      smtpUtf8: true,
      dsn: true,
      startTls: true,
      enhancedStatusCodes: true,
      authMechanisms: ['PLAIN', 'LOGIN'],
      xforwardAttributes: [],
      keywords: ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'DSN', 'AUTH', 'STARTTLS', 'SIZE', 'CHUNKING'],
    });
  });

  it("reads the attributes of Postfix's XFORWARD, upper case and once each", () => {
    expect(parseEhloCapabilities(reply(['mx', 'XFORWARD NAME ADDR proto HELO SOURCE PORT IDENT ADDR'])).xforwardAttributes).toEqual(['NAME', 'ADDR', 'PROTO', 'HELO', 'SOURCE', 'PORT', 'IDENT']);
  });

  it('ignores the greeting line, even when it looks like a keyword', () => {
    expect(parseEhloCapabilities(reply(['STARTTLS'])).startTls).toBe(false);
  });

  it.each([
    ['SIZE', null],
    ['SIZE 0', null],
    ['SIZE abc', null],
    ['size 5000', 5000],
  ])('reads %j as a limit of %j', (line, limit) => {
    const caps = parseEhloCapabilities(reply(['mx', line]));
    expect(caps.size).toBe(true);
    expect(caps.maxSizeBytes).toBe(limit);
  });

  it('understands the old AUTH=MECH form', () => {
    expect(parseEhloCapabilities(reply(['mx', 'AUTH=LOGIN PLAIN'])).authMechanisms).toEqual(['LOGIN', 'PLAIN']);
  });
});
