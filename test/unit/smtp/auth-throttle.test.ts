import { describe, expect, it } from 'vitest';
import { AuthThrottle, throttleKey } from '../../../src/smtp/auth-throttle.js';

describe('AuthThrottle', () => {
  const limits = () => ({ maxFailures: 3, windowSec: 60 });

  it('blocks an address at its third failure within the window, and only that address', () => {
    const t = new AuthThrottle(limits);
    expect(t.fail('192.0.2.1', 0)).toBe(false);
    expect(t.fail('192.0.2.1', 1000)).toBe(false);
    expect(t.blocked('192.0.2.1', 2000)).toBe(false);
    expect(t.fail('192.0.2.1', 2000)).toBe(true);
    expect(t.blocked('192.0.2.1', 3000)).toBe(true);
    expect(t.blocked('192.0.2.2', 3000)).toBe(false);
  });

  it('forgets failures older than the window', () => {
    const t = new AuthThrottle(limits);
    for (const at of [0, 1000, 2000]) t.fail('192.0.2.1', at);
    // At 60.5 s the failure at 0 s has left the window: two remain, under the limit.
    expect(t.blocked('192.0.2.1', 60_500)).toBe(false);
    expect(t.fail('192.0.2.1', 60_600)).toBe(true);
    expect(t.blocked('192.0.2.1', 122_001)).toBe(false);
  });

  it('reads its limits at each call (a reload may change them)', () => {
    let max = 3;
    const t = new AuthThrottle(() => ({ maxFailures: max, windowSec: 60 }));
    t.fail('192.0.2.1', 0);
    t.fail('192.0.2.1', 0);
    expect(t.blocked('192.0.2.1', 1)).toBe(false);
    max = 2;
    expect(t.blocked('192.0.2.1', 1)).toBe(true);
  });

  it('counts attempts in flight: an address gets at most its allowance of checks at once', () => {
    const t = new AuthThrottle(limits);
    expect(t.begin('192.0.2.1', 0)).toBe(true);
    expect(t.begin('192.0.2.1', 0)).toBe(true);
    expect(t.begin('192.0.2.1', 0)).toBe(true);
    expect(t.begin('192.0.2.1', 0)).toBe(false);
    expect(t.begin('192.0.2.2', 0)).toBe(true);
    // a success frees its place; failures fill the allowance
    expect(t.end('192.0.2.1', false, 10)).toBe(false);
    expect(t.begin('192.0.2.1', 20)).toBe(true);
    expect(t.end('192.0.2.1', true, 30)).toBe(false);
    expect(t.end('192.0.2.1', true, 40)).toBe(false);
    expect(t.end('192.0.2.1', true, 50)).toBe(true);
    expect(t.begin('192.0.2.1', 60)).toBe(false);
    expect(t.blocked('192.0.2.1', 60)).toBe(true);
  });

  it('counts an IPv6 client per /64: new addresses of the same /64 are no new allowance', () => {
    const t = new AuthThrottle(limits);
    t.fail('2001:db8:1:2::1', 0);
    t.fail('2001:db8:1:2:aaaa:bbbb:cccc:dddd', 0);
    expect(t.fail('2001:db8:1:2:ffff::9', 0)).toBe(true);
    expect(t.begin('2001:db8:1:2::abcd', 1)).toBe(false);
    // the next /64 is another client
    expect(t.begin('2001:db8:1:3::1', 1)).toBe(true);
  });

  it('keys IPv4 by address, IPv4-mapped IPv6 as IPv4, IPv6 by its /64', () => {
    expect(throttleKey('192.0.2.7')).toBe('192.0.2.7');
    expect(throttleKey('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(throttleKey('2001:DB8:0:0:1::7')).toBe('2001:db8::/64');
    expect(throttleKey('::1')).toBe('::/64');
    expect(throttleKey('not an address')).toBe('not an address');
  });
});
