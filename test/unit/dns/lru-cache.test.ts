import { describe, expect, it } from 'vitest';
import { LruCache } from '../../../src/dns/lru-cache.js';

function cacheWithClock(capacity: number) {
  const clock = { now: 5_000 };
  const cache = new LruCache<string>({ capacity, nowMs: () => clock.now });
  return { cache, clock };
}

describe('LruCache', () => {
  it('returns a stored value until its time to live has passed', () => {
    const { cache, clock } = cacheWithClock(4);
    cache.set('a', 'one', 1000);
    clock.now += 999;
    expect(cache.get('a')).toBe('one');
    clock.now += 1;
    expect(cache.get('a')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('gives each entry its own expiry', () => {
    const { cache, clock } = cacheWithClock(4);
    cache.set('short', 's', 100);
    cache.set('long', 'l', 10_000);
    clock.now += 500;
    expect(cache.get('short')).toBeUndefined();
    expect(cache.get('long')).toBe('l');
  });

  it('evicts the least recently used entry when full', () => {
    const { cache } = cacheWithClock(2);
    cache.set('a', '1', 1000);
    cache.set('b', '2', 1000);
    cache.set('c', '3', 1000);
    expect(cache.size).toBe(2);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('b')).toBe('2');
    expect(cache.get('c')).toBe('3');
  });

  it('counts a read as a use, so the entry read last survives eviction', () => {
    const { cache } = cacheWithClock(2);
    cache.set('a', '1', 1000);
    cache.set('b', '2', 1000);
    expect(cache.get('a')).toBe('1');
    cache.set('c', '3', 1000);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBe('1');
  });

  it('replaces a key in place, renewing its value, expiry and recency', () => {
    const { cache, clock } = cacheWithClock(2);
    cache.set('a', 'old', 100);
    cache.set('b', '2', 1000);
    cache.set('a', 'new', 1000);
    cache.set('c', '3', 1000);
    expect(cache.size).toBe(2);
    expect(cache.get('b')).toBeUndefined();
    clock.now += 500;
    expect(cache.get('a')).toBe('new');
  });

  it.each([0, -1, Number.NaN])('stores nothing for a time to live of %s, and forgets the old value', (ttlMs) => {
    const { cache } = cacheWithClock(2);
    cache.set('a', 'kept', 1000);
    cache.set('a', 'not kept', ttlMs);
    expect(cache.get('a')).toBeUndefined();
  });

  it('stores nothing when its capacity is 0', () => {
    const { cache } = cacheWithClock(0);
    cache.set('a', '1', 1000);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('deletes a key', () => {
    const { cache } = cacheWithClock(2);
    cache.set('a', '1', 1000);
    cache.delete('a');
    expect(cache.get('a')).toBeUndefined();
  });

  it('never holds more than its capacity', () => {
    const { cache } = cacheWithClock(3);
    for (let i = 0; i < 100; i++) cache.set(`k${i}`, String(i), 1000);
    expect(cache.size).toBe(3);
    expect([cache.get('k97'), cache.get('k98'), cache.get('k99'), cache.get('k96')]).toEqual(['97', '98', '99', undefined]);
  });

  it.each([-1, 1.5, Number.NaN])('refuses a capacity of %s', (capacity) => {
    expect(() => new LruCache<string>({ capacity, nowMs: () => 0 })).toThrow(/capacity/);
  });
});
