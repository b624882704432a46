// The XFORWARD lines dkimgate sends a next hop (Postfix's XFORWARD_README): only announced attributes, xtext values,
// [UNAVAILABLE] for what is unknown or unsendable, no line over 512 characters, SOURCE always REMOTE.

import { describe, expect, it } from 'vitest';
import { clientXforward, formatXforwardCommands } from '../../../src/relay/xforward.js';

const ALL = ['NAME', 'ADDR', 'PORT', 'PROTO', 'HELO', 'IDENT', 'SOURCE'];

describe('formatXforwardCommands', () => {
  it('sends only the attributes the next hop announced, in Postfix order', () => {
    expect(formatXforwardCommands({ HELO: 'a.example', ADDR: '192.0.2.1', IDENT: 'Q1', NAME: null }, ['NAME', 'ADDR', 'HELO'])).toEqual([
      'XFORWARD NAME=[UNAVAILABLE] ADDR=192.0.2.1 HELO=a.example',
    ]);
    expect(formatXforwardCommands({ ADDR: '192.0.2.1' }, [])).toEqual([]);
  });

  it('xtext-encodes + and =, writes IPv6 with its prefix and IPv4-mapped as IPv4', () => {
    expect(formatXforwardCommands({ HELO: 'a+b=c', ADDR: '2001:db8::1' }, ALL)).toEqual(['XFORWARD ADDR=IPv6:2001:db8::1 HELO=a+2Bb+3Dc']);
    expect(formatXforwardCommands({ ADDR: '::ffff:192.0.2.7' }, ALL)).toEqual(['XFORWARD ADDR=192.0.2.7']);
  });

  it('sends [UNAVAILABLE] for a value with spaces, controls, non-ASCII or over 255 characters', () => {
    for (const bad of ['two words', 'cr\rlf', 'bücher.example', 'x'.repeat(256)]) {
      expect(formatXforwardCommands({ HELO: bad }, ALL)).toEqual(['XFORWARD HELO=[UNAVAILABLE]']);
    }
  });

  it('splits the attributes over several commands so that none passes 512 characters', () => {
    const long = 'h'.repeat(250);
    const lines = formatXforwardCommands({ NAME: long, ADDR: '192.0.2.1', HELO: long, IDENT: 'i'.repeat(200), PROTO: 'ESMTP' }, ALL);
    expect(lines.length).toBeGreaterThan(1);
    for (const line of lines) expect(line.length + 2).toBeLessThanOrEqual(512);
    expect(lines.join(' ')).toContain(`HELO=${long}`);
    expect(lines.join(' ')).toContain('IDENT=' + 'i'.repeat(200));
  });
});

describe('clientXforward', () => {
  const direct = { xForward: new Map<string, unknown>(), remoteAddress: '198.51.100.4', remotePort: 40001, hostNameAppearsAs: 'laptop.example', transmissionType: 'ESMTPS' };

  it("describes a direct client by its connection, with the protocol it spoke (RFC 3848's names)", () => {
    expect(clientXforward(direct)).toEqual({ NAME: null, ADDR: '198.51.100.4', PORT: '40001', PROTO: 'ESMTPS', HELO: 'laptop.example', SOURCE: 'REMOTE' });
  });

  it("passes a proxy's attributes on as it sent them, never mixed with the proxy's own session, SOURCE as REMOTE", () => {
    const proxied = { ...direct, xForward: new Map<string, unknown>([['ADDR', '192.0.2.7'], ['ADDR:DEFAULT', '127.0.0.1'], ['IDENT', '4ABC'], ['SOURCE', 'LOCAL'], ['NAME', false]]) };
    expect(clientXforward(proxied)).toEqual({ NAME: null, ADDR: '192.0.2.7', PORT: null, PROTO: null, HELO: null, IDENT: '4ABC', SOURCE: 'REMOTE' });
  });
});
