import { describe, expect, it } from 'vitest';
import { compileCidrs, describeClient, longestMatch, matchCidrs, normalizeClientAddress } from '../../../src/policy/client-identity.js';

describe('matchCidrs', () => {
  const cidrs = compileCidrs(['127.0.0.1/32', '10.0.0.0/8', '192.0.2.128/25', '::1/128', '2001:db8::/32']);

  it.each([
    ['127.0.0.1', true],
    ['127.0.0.2', false],
    ['10.255.1.2', true],
    ['11.0.0.1', false],
    ['192.0.2.128', true],
    ['192.0.2.255', true],
    ['192.0.2.127', false],
    ['::1', true],
    ['::2', false],
    ['2001:db8:ffff::1', true],
    ['2001:db9::1', false],
    ['::ffff:127.0.0.1', true],
    ['::ffff:10.1.2.3', true],
    ['::FFFF:7f00:1', true],
    ['::ffff:192.0.2.1', false],
    ['::127.0.0.1', false],
    ['IPv6:2001:db8::5', true],
    ['[::1]', true],
    ['fe80::1%eth0', false],
    ['not an address', false],
    ['', false],
    ['127.0.0.1/32', false],
  ])('%s in the relay list: %s', (address, expected) => {
    expect(matchCidrs(address, cidrs)).toBe(expected);
  });

  it('matches an IPv4 client against an IPv6 entry that covers IPv4-mapped addresses', () => {
    expect(matchCidrs('198.51.100.7', compileCidrs(['::ffff:0:0/96']))).toBe(true);
    expect(matchCidrs('198.51.100.7', compileCidrs(['2001:db8::/32']))).toBe(false);
  });

  it('matches everything with /0 blocks of the address family only', () => {
    expect(matchCidrs('203.0.113.9', compileCidrs(['0.0.0.0/0']))).toBe(true);
    expect(matchCidrs('2001:db8::9', compileCidrs(['0.0.0.0/0']))).toBe(false);
    expect(matchCidrs('2001:db8::9', compileCidrs(['::/0']))).toBe(true);
  });

  it('matches a link-local address with a zone id by its address', () => {
    expect(matchCidrs('fe80::1%eth0', compileCidrs(['fe80::/10']))).toBe(true);
  });

  it('matches nothing against an empty list', () => {
    expect(matchCidrs('127.0.0.1', [])).toBe(false);
  });
});

describe('compileCidrs', () => {
  it('throws on an entry the config check should have refused', () => {
    expect(() => compileCidrs(['10.0.0.1/8'])).toThrow(/host bits/);
  });
});

describe('longestMatch', () => {
  it('picks the most specific block that holds the address', () => {
    const entries = compileCidrs(['10.0.0.0/8', '10.1.0.0/16', '10.1.2.0/24']).map((cidr, i) => ({ cidr, i }));
    expect(longestMatch('10.1.2.3', entries)?.i).toBe(2);
    expect(longestMatch('10.1.9.3', entries)?.i).toBe(1);
    expect(longestMatch('10.9.9.9', entries)?.i).toBe(0);
    expect(longestMatch('11.0.0.1', entries)).toBeNull();
  });
});

describe('normalizeClientAddress', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1'],
    ['::ffff:127.0.0.1', '127.0.0.1'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['IPv6:2001:db8::1', '2001:db8::1'],
    ['[::1]', '::1'],
    ['fe80::1%lo', 'fe80::1'],
    ['example.com', null],
    ['[UNAVAILABLE]', null],
  ])('%s -> %s', (input, expected) => {
    expect(normalizeClientAddress(input)).toBe(expected);
  });
});

describe('describeClient', () => {
  it('takes the connection address when the peer is not an XFORWARD host', () => {
    expect(describeClient({ peerAddress: '::ffff:192.0.2.1', xforwardAddr: undefined, peerIsXforwardHost: false, authUser: null })).toEqual({
      address: '192.0.2.1',
      via: 'connection',
      authUser: null,
    });
  });

  it('ignores an XFORWARD ADDR from a peer that is not an XFORWARD host', () => {
    const client = describeClient({ peerAddress: '203.0.113.5', xforwardAddr: '127.0.0.1', peerIsXforwardHost: false, authUser: null });
    expect(client.address).toBe('203.0.113.5');
    expect(client.via).toBe('connection');
  });

  it('takes the XFORWARD ADDR when the peer is a trusted proxy', () => {
    expect(describeClient({ peerAddress: '127.0.0.1', xforwardAddr: '198.51.100.20', peerIsXforwardHost: true, authUser: null })).toEqual({
      address: '198.51.100.20',
      via: 'xforward',
      authUser: null,
    });
  });

  it('reads a Postfix IPv6 ADDR with its "IPv6:" prefix', () => {
    const client = describeClient({ peerAddress: '::1', xforwardAddr: 'IPv6:2001:db8::25', peerIsXforwardHost: true, authUser: null });
    expect(client.address).toBe('2001:db8::25');
  });

  it.each([[null], [undefined], ['[UNAVAILABLE]'], ['[unavailable]'], ['[TEMPUNAVAIL]'], ['localhost'], ['']])(
    'leaves the client unknown when the proxy sent ADDR %s, never falling back to the proxy address',
    (xforwardAddr) => {
      const client = describeClient({ peerAddress: '127.0.0.1', xforwardAddr, peerIsXforwardHost: true, authUser: null });
      expect(client).toEqual({ address: null, via: 'xforward', authUser: null });
    },
  );

  it('keeps the AUTH user whatever the address', () => {
    expect(describeClient({ peerAddress: '127.0.0.1', xforwardAddr: null, peerIsXforwardHost: true, authUser: 'alice' }).authUser).toBe('alice');
  });
});
