import { describe, expect, it } from 'vitest';
import { checkHost, formatHostPort, formatIpBytes, parseCidr, parseDnsServer, parseIpBytes } from '../../../src/config/address-syntax.js';

describe('parseCidr', () => {
  it.each([
    ['127.0.0.1/32', '127.0.0.1/32', 4],
    ['127.0.0.1', '127.0.0.1/32', 4],
    ['10.0.0.0/8', '10.0.0.0/8', 4],
    ['0.0.0.0/0', '0.0.0.0/0', 4],
    ['::1/128', '::1/128', 6],
    ['::1', '::1/128', 6],
    ['::/0', '::/0', 6],
    ['2001:DB8::/32', '2001:db8::/32', 6],
    ['2001:db8:0:0:0:0:0:0/48', '2001:db8::/48', 6],
    ['fe80::/10', 'fe80::/10', 6],
    ['::ffff:192.0.2.0/120', '::ffff:c000:200/120', 6],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2:3:4:5:6/128', 6],
  ])('accepts %s as %s', (input, text, family) => {
    const parsed = parseCidr(input);
    expect(parsed).toMatchObject({ kind: 'ok', cidr: { text, family } });
  });

  it.each([
    ['10.0.0.1/8', '"10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?'],
    ['192.168.1.77/24', '"192.168.1.77/24" has host bits set; did you mean 192.168.1.0/24?'],
    ['2001:db8::1/32', '"2001:db8::1/32" has host bits set; did you mean 2001:db8::/32?'],
    ['10.0.0.0/33', '"10.0.0.0/33": prefix length must be 0 to 32'],
    ['::/129', '"::/129": prefix length must be 0 to 128'],
    ['10.0.0.0/', '"10.0.0.0/": prefix length must be 0 to 32'],
    ['10.0.0.0/+8', '"10.0.0.0/+8": prefix length must be 0 to 32'],
    ['256.0.0.0/8', '"256.0.0.0/8" is not an IPv4 or IPv6 address or CIDR block (e.g. 192.0.2.0/24, 2001:db8::/32)'],
    ['localhost', '"localhost" is not an IPv4 or IPv6 address or CIDR block (e.g. 192.0.2.0/24, 2001:db8::/32)'],
    ['fe80::1%eth0', '"fe80::1%eth0" is not an IPv4 or IPv6 address or CIDR block (e.g. 192.0.2.0/24, 2001:db8::/32)'],
    ['1:2:3:4:5:6:7:8:9', '"1:2:3:4:5:6:7:8:9" is not an IPv4 or IPv6 address or CIDR block (e.g. 192.0.2.0/24, 2001:db8::/32)'],
  ])('refuses %s', (input, reason) => {
    expect(parseCidr(input)).toEqual({ kind: 'error', reason });
  });
});

describe('IP address bytes', () => {
  it.each([
    ['::', '::'],
    ['1::', '1::'],
    ['::1', '::1'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['::ffff:1.2.3.4', '::ffff:102:304'],
  ])('round-trips %s as RFC 5952 text %s', (input, text) => {
    const bytes = parseIpBytes(input);
    expect(bytes).not.toBeNull();
    expect(formatIpBytes(bytes ?? new Uint8Array())).toBe(text);
  });
});

describe('formatHostPort', () => {
  it.each([
    ['127.0.0.1', 10027, '127.0.0.1:10027'],
    ['::1', 10027, '[::1]:10027'],
    ['2001:db8::25', 25, '[2001:db8::25]:25'],
    ['::ffff:127.0.0.1', 9110, '[::ffff:127.0.0.1]:9110'],
    ['relay.example', 587, 'relay.example:587'],
  ])('writes %s port %i as %s (what a URL and curl take)', (host, port, text) => {
    expect(formatHostPort(host, port)).toBe(text);
  });
});

describe('checkHost', () => {
  it.each(['127.0.0.1', '::1', '0.0.0.0', '::', 'localhost', 'mx.example.net', 'mx.example.net.'])('accepts %s', (host) => {
    expect(checkHost(host)).toBeNull();
  });

  it.each([
    ['[::1]', 'write IPv6 addresses without brackets, e.g. ::1'],
    ['mx example', '"mx example" is not an IP address or host name'],
    ['-mx.example', '"-mx.example" is not an IP address or host name'],
    ['127.0.0.1:25', '"127.0.0.1:25" is not an IP address or host name'],
  ])('refuses %s', (host, reason) => {
    expect(checkHost(host)).toBe(reason);
  });
});

describe('parseDnsServer', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1', 53],
    ['127.0.0.1:5353', '127.0.0.1', 5353],
    ['::1', '::1', 53],
    ['[::1]', '::1', 53],
    ['[::1]:5300', '::1', 5300],
    ['[2001:db8::53]:53', '2001:db8::53', 53],
  ])('reads %s as host %s port %i', (input, host, port) => {
    expect(parseDnsServer(input)).toEqual({ kind: 'ok', host, port });
  });

  it.each(['dns.example', '127.0.0.1:0', '127.0.0.1:65536', '[127.0.0.1]:53', '[::1]:', '1.2.3:53', ''])('refuses %j', (input) => {
    expect(parseDnsServer(input).kind).toBe('error');
  });
});
