import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDnsResolver,
  loadZoneFiles,
  parseServerAddress,
  ZoneFileError,
  type DnsResolverOptions,
} from '../../../src/dns/create-dns-resolver.js';
import type { TxtLookupOutcome } from '../../../src/dkim/txt-lookup.js';
import { startDnsServer, startSilentDnsServer, type RunningDnsServer, type SilentDnsServer } from '../../helpers/dns-server.js';

const LONG_KEY = `v=DKIM1; k=rsa; p=${'A'.repeat(700)}`; // served as three character-strings (255 + 255 + 207)

let dns: RunningDnsServer;
let silent: SilentDnsServer;
let silent6: SilentDnsServer;
let silent2: SilentDnsServer;

beforeAll(async () => {
  dns = await startDnsServer({
    txt: {
      's1._domainkey.example.test': ['v=DKIM1; k=ed25519; ', 'p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo='],
      'long._domainkey.example.test': LONG_KEY,
      'two._domainkey.example.test': [['v=DKIM1; p=one'], ['v=DKIM1; p=two']],
      // 20 records of 851 bytes: 17,020 bytes, just over MAX_TXT_ANSWER_BYTES (16384).
      'huge._domainkey.example.test': Array.from({ length: 20 }, (_, i) => [`n${String(i).padStart(2, '0')}=${'A'.repeat(847)}`]),
      'both._domainkey.example.test': 'from dnsmasq',
      'a1.example.test': 'cache one',
      'a2.example.test': 'cache two',
    },
    a: { 'mx.example.test': '192.0.2.25' },
    servfail: ['broken.example.test'],
    ipv6: true,
  });
  silent = await startSilentDnsServer();
  silent6 = await startSilentDnsServer({ host: '::1' });
  silent2 = await startSilentDnsServer();
});

afterAll(async () => {
  await dns?.stop();
  await silent?.stop();
  await silent6?.stop();
  await silent2?.stop();
});

function resolverFor(server: string, overrides: Partial<DnsResolverOptions> = {}) {
  return createDnsResolver({ servers: [server], timeoutMs: 2000, cacheSize: 100, cacheTtlSec: 300, negativeTtlSec: 3600, ...overrides });
}

/** Queries dnsmasq received for one name since the server started. */
function queriesFor(name: string): number {
  return dns.queries().filter((query) => query === `TXT ${name}`).length;
}

/** dnsmasq writes its query log around the time it answers; give it a moment before counting. */
async function settledQueriesFor(name: string): Promise<number> {
  let count = queriesFor(name);
  for (let i = 0; i < 10; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    const next = queriesFor(name);
    if (next === count && i >= 2) break;
    count = next;
  }
  return count;
}

describe('createDnsResolver against a real dnsmasq', () => {
  it.each<[string, string, TxtLookupOutcome]>([
    [
      'joins the character-strings of one record',
      's1._domainkey.example.test',
      { kind: 'found', records: ['v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo='] },
    ],
    ['rejoins a record served as several 255-octet strings', 'long._domainkey.example.test', { kind: 'found', records: [LONG_KEY] }],
    ['reports nxdomain for a name the server does not hold', 'nope._domainkey.example.test', { kind: 'nxdomain' }],
    ['reports nodata for a name that holds only an A record', 'mx.example.test', { kind: 'nodata' }],
    ['reports servfail when the server refuses to answer', 'k._domainkey.broken.example.test', { kind: 'servfail' }],
    ['matches names case-insensitively and accepts a trailing dot', 'S1._DomainKey.Example.TEST.', {
      kind: 'found',
      records: ['v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo='],
    }],
  ])('%s', async (_title, name, expected) => {
    const resolver = resolverFor(dns.server);
    expect(await resolver.lookupTxt(name)).toEqual(expected);
  });

  it('returns every record when a name holds several TXT records', async () => {
    const outcome = await resolverFor(dns.server).lookupTxt('two._domainkey.example.test');
    expect(outcome.kind).toBe('found');
    expect(outcome.kind === 'found' ? [...outcome.records].sort() : []).toEqual(['v=DKIM1; p=one', 'v=DKIM1; p=two']);
  });

  it('asks a server given as a bracketed IPv6 address with a port', async () => {
    expect(dns.server6).not.toBeNull();
    const outcome = await resolverFor(dns.server6 as string).lookupTxt('s1._domainkey.example.test');
    expect(outcome).toEqual({ kind: 'found', records: ['v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo='] });
  });

  it('reports nxdomain without a query for a name that cannot exist in DNS', async () => {
    const resolver = resolverFor(silent.server);
    const before = silent.received();
    expect(await resolver.lookupTxt(`${'a'.repeat(64)}._domainkey.example.test`)).toEqual({ kind: 'nxdomain' });
    expect(await resolver.lookupTxt('s1..example.test')).toEqual({ kind: 'nxdomain' });
    expect(silent.received()).toBe(before);
  });
});

describe('the lookup deadline', () => {
  it('reports timeout within the deadline when the server never answers', async () => {
    // c-ares alone would give up only after about 300 ms here: the deadline is the resolver's own.
    const resolver = resolverFor(silent.server, { timeoutMs: 100 });
    const before = silent.received();
    const started = performance.now();
    const outcome = await resolver.lookupTxt('s1._domainkey.example.test');
    const elapsed = performance.now() - started;
    expect(outcome).toEqual({ kind: 'timeout' });
    expect(elapsed).toBeGreaterThanOrEqual(95);
    expect(elapsed).toBeLessThan(100 + 150);
    expect(silent.received()).toBeGreaterThan(before);
  });

  it('reaches a silent server on [::1] and times out there', async () => {
    const resolver = resolverFor(silent6.server, { timeoutMs: 150 });
    const before = silent6.received();
    expect(await resolver.lookupTxt('s1._domainkey.example.test')).toEqual({ kind: 'timeout' });
    expect(silent6.received()).toBeGreaterThan(before);
  });

  it('does not cache a timeout: the next lookup asks again', async () => {
    const resolver = resolverFor(silent.server, { timeoutMs: 100 });
    await resolver.lookupTxt('again._domainkey.example.test');
    const afterFirst = silent.received();
    expect(await resolver.lookupTxt('again._domainkey.example.test')).toEqual({ kind: 'timeout' });
    expect(silent.received()).toBeGreaterThan(afterFirst);
    expect(resolver.stats()).toEqual({ hits: 0, misses: 2 });
  });
});

describe('several servers', () => {
  let refusing: RunningDnsServer;
  beforeAll(async () => {
    refusing = await startDnsServer({ txt: {}, servfail: ['example.test'] });
  });
  afterAll(async () => {
    await refusing?.stop();
  });
  const S1 = { kind: 'found', records: ['v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo='] };

  it('asks the next server when the first is silent, and answers within the deadline', async () => {
    const resolver = createDnsResolver({ servers: [silent.server, dns.server], timeoutMs: 2000, cacheSize: 0, cacheTtlSec: 0, negativeTtlSec: 0 });
    const before = silent.received();
    const started = performance.now();
    expect(await resolver.lookupTxt('s1._domainkey.example.test')).toEqual(S1);
    // The silent one was asked first and had its share (half of the 2 s), not the whole deadline.
    expect(silent.received()).toBeGreaterThan(before);
    expect(performance.now() - started).toBeLessThan(1900);
  });

  it('takes an NXDOMAIN from the second server as the answer', async () => {
    const resolver = resolverFor(silent.server, { servers: [silent.server, dns.server], timeoutMs: 1000 });
    expect(await resolver.lookupTxt('nope._domainkey.example.test')).toEqual({ kind: 'nxdomain' });
  });

  it('asks the next server at once when the first refuses', async () => {
    const resolver = resolverFor(refusing.server, { servers: [refusing.server, dns.server], timeoutMs: 4000 });
    const started = performance.now();
    expect(await resolver.lookupTxt('s1._domainkey.example.test')).toEqual(S1);
    expect(refusing.queries()).toContain('TXT s1._domainkey.example.test');
    expect(performance.now() - started).toBeLessThan(1500); // not after the first server's share of 2 s
  });

  it('reports servfail when every server refuses', async () => {
    const resolver = resolverFor(refusing.server, { servers: [refusing.server, dns.server] });
    expect(await resolver.lookupTxt('k._domainkey.broken.example.test')).toEqual({ kind: 'servfail' });
  });

  it('gives every silent server its turn within the deadline and sends nothing after it', async () => {
    const resolver = resolverFor(silent.server, { servers: [silent.server, silent2.server], timeoutMs: 300 });
    const before = [silent.received(), silent2.received()];
    const started = performance.now();
    expect(await resolver.lookupTxt('both-silent._domainkey.example.test')).toEqual({ kind: 'timeout' });
    expect(performance.now() - started).toBeLessThan(300 + 150);
    const atDeadline = [silent.received(), silent2.received()];
    expect(atDeadline[0]).toBeGreaterThan(before[0]!);
    expect(atDeadline[1]).toBeGreaterThan(before[1]!);
    // c-ares would otherwise go on retrying past the deadline (the second server at twice the timeout).
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect([silent.received(), silent2.received()]).toEqual(atDeadline);
  });
});

describe('the cache', () => {
  it('answers found records from the cache until cacheTtlSec has passed', async () => {
    let now = 1_000_000;
    const resolver = resolverFor(dns.server, { cacheTtlSec: 10, negativeTtlSec: 100, nowMs: () => now });
    const name = 'a1.example.test';
    const before = await settledQueriesFor(name);

    expect(await resolver.lookupTxt(name)).toEqual({ kind: 'found', records: ['cache one'] });
    now += 9_999;
    expect(await resolver.lookupTxt(name)).toEqual({ kind: 'found', records: ['cache one'] });
    expect(resolver.stats()).toEqual({ hits: 1, misses: 1 });
    expect(await settledQueriesFor(name)).toBe(before + 1);

    now += 1;
    expect(await resolver.lookupTxt(name)).toEqual({ kind: 'found', records: ['cache one'] });
    expect(resolver.stats()).toEqual({ hits: 1, misses: 2 });
    expect(await settledQueriesFor(name)).toBe(before + 2);
  });

  it.each([
    ['nxdomain', 'gone._domainkey.example.test', { kind: 'nxdomain' }],
    ['nodata', 'mx.example.test', { kind: 'nodata' }],
    // The records of an oversized answer are dropped, not cached: only their size is kept.
    ['an answer over 16 KB', 'huge._domainkey.example.test', { kind: 'too_large', bytes: 17_020 }],
  ])('caches %s for negativeTtlSec, not cacheTtlSec', async (_kind, name, outcome) => {
    let now = 0;
    const resolver = resolverFor(dns.server, { cacheTtlSec: 10, negativeTtlSec: 100, nowMs: () => now });
    expect(await resolver.lookupTxt(name)).toEqual(outcome);
    now += 99_000;
    expect(await resolver.lookupTxt(name)).toEqual(outcome);
    expect(resolver.stats()).toEqual({ hits: 1, misses: 1 });
    now += 1_000;
    expect(await resolver.lookupTxt(name)).toEqual(outcome);
    expect(resolver.stats()).toEqual({ hits: 1, misses: 2 });
  });

  it('does not cache servfail', async () => {
    const resolver = resolverFor(dns.server);
    const name = 'nocache._domainkey.broken.example.test';
    expect(await resolver.lookupTxt(name)).toEqual({ kind: 'servfail' });
    expect(await resolver.lookupTxt(name)).toEqual({ kind: 'servfail' });
    expect(resolver.stats()).toEqual({ hits: 0, misses: 2 });
    expect(await settledQueriesFor(name)).toBe(2);
  });

  it('evicts the least recently used name when cacheSize is reached', async () => {
    const resolver = resolverFor(dns.server, { cacheSize: 1 });
    await resolver.lookupTxt('a1.example.test');
    await resolver.lookupTxt('a2.example.test');
    await resolver.lookupTxt('a2.example.test');
    await resolver.lookupTxt('a1.example.test');
    expect(resolver.stats()).toEqual({ hits: 1, misses: 3 });
  });

  it('keeps nothing when cacheSize is 0', async () => {
    const resolver = resolverFor(dns.server, { cacheSize: 0 });
    await resolver.lookupTxt('a1.example.test');
    await resolver.lookupTxt('a1.example.test');
    expect(resolver.stats()).toEqual({ hits: 0, misses: 2 });
  });

  it('hands out copies, so a caller cannot change what the cache holds', async () => {
    const resolver = resolverFor(dns.server);
    const first = await resolver.lookupTxt('a2.example.test');
    if (first.kind === 'found') first.records.push('tampered');
    expect(await resolver.lookupTxt('a2.example.test')).toEqual({ kind: 'found', records: ['cache two'] });
  });

  it('shares one query among concurrent lookups of the same name', async () => {
    const resolver = resolverFor(dns.server);
    const name = 'a2.example.test'; // short enough for one UDP answer (a long one is asked again over TCP)
    const before = await settledQueriesFor(name);
    const outcomes = await Promise.all(Array.from({ length: 8 }, () => resolver.lookupTxt(name)));
    for (const outcome of outcomes) expect(outcome).toEqual({ kind: 'found', records: ['cache two'] });
    expect(await settledQueriesFor(name)).toBe(before + 1);
    expect(resolver.stats()).toEqual({ hits: 0, misses: 8 });
  });

  it('shares one deadline among concurrent lookups of a silent name', async () => {
    const resolver = resolverFor(silent.server, { timeoutMs: 150 });
    const before = silent.received();
    const outcomes = await Promise.all(Array.from({ length: 4 }, () => resolver.lookupTxt('shared._domainkey.example.test')));
    expect(outcomes).toEqual(Array.from({ length: 4 }, () => ({ kind: 'timeout' })));
    expect(silent.received() - before).toBe(1);
  });
});

describe('static zone records', () => {
  it('answer before DNS, case-insensitively, without a query', async () => {
    const resolver = resolverFor(dns.server, {
      zoneRecords: [
        { name: 'both._domainkey.example.test', ttl: null, strings: ['from ', 'the zone'] },
        { name: 'both._domainkey.example.test', ttl: 300, strings: ['second'] },
      ],
    });
    const before = await settledQueriesFor('both._domainkey.example.test');
    expect(await resolver.lookupTxt('Both._domainkey.example.test')).toEqual({ kind: 'found', records: ['from the zone', 'second'] });
    expect(await settledQueriesFor('both._domainkey.example.test')).toBe(before);
    expect(resolver.stats()).toEqual({ hits: 0, misses: 0 });
  });

  it('leave names they do not hold to DNS', async () => {
    const resolver = resolverFor(dns.server, { zoneRecords: [{ name: 'other.example.test', ttl: null, strings: ['x'] }] });
    expect(await resolver.lookupTxt('both._domainkey.example.test')).toEqual({ kind: 'found', records: ['from dnsmasq'] });
  });

  it('answer with no servers reachable at all', async () => {
    const resolver = resolverFor(silent.server, {
      timeoutMs: 100,
      zoneRecords: [{ name: 'only.example.test', ttl: null, strings: ['v=DKIM1; p=x'] }],
    });
    expect(await resolver.lookupTxt('only.example.test')).toEqual({ kind: 'found', records: ['v=DKIM1; p=x'] });
  });
});

describe('createDnsResolver options', () => {
  it.each([
    ['a host name as server', { servers: ['dns.example.test'] }, /invalid DNS server "dns.example.test"/],
    ['a port out of range', { servers: ['127.0.0.1:65536'] }, /invalid DNS server "127.0.0.1:65536": port/],
    ['a zero timeout', { timeoutMs: 0 }, /timeoutMs/],
    ['a negative cache size', { cacheSize: -1 }, /cacheSize/],
    ['a fractional ttl', { cacheTtlSec: 1.5 }, /cacheTtlSec/],
  ])('throws on %s', (_title, overrides, message) => {
    expect(() =>
      createDnsResolver({ servers: [], timeoutMs: 1000, cacheSize: 10, cacheTtlSec: 1, negativeTtlSec: 1, ...overrides }),
    ).toThrow(message);
  });

  it('accepts an empty server list (the system resolvers)', () => {
    expect(() => createDnsResolver({ servers: [], timeoutMs: 1000, cacheSize: 10, cacheTtlSec: 1, negativeTtlSec: 1 })).not.toThrow();
  });
});

describe('parseServerAddress', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1', 53, 4, '127.0.0.1:53'],
    ['127.0.0.1:5353', '127.0.0.1', 5353, 4, '127.0.0.1:5353'],
    ['[::1]', '::1', 53, 6, '[::1]:53'],
    ['[::1]:5353', '::1', 5353, 6, '[::1]:5353'],
    ['::1', '::1', 53, 6, '[::1]:53'],
    ['2001:db8::53', '2001:db8::53', 53, 6, '[2001:db8::53]:53'],
    ['[2001:db8::53]:1', '2001:db8::53', 1, 6, '[2001:db8::53]:1'],
  ])('reads %s', (text, host, port, family, server) => {
    expect(parseServerAddress(text)).toEqual({ kind: 'ok', host, port, family, server });
  });

  it.each([
    ['', /empty/],
    ['localhost', /not an IPv4 address/],
    ['dns.example.test:53', /not an IPv4 address/],
    ['256.1.1.1', /not an IPv4 address/],
    ['127.0.0.1:', /port "" is not a number/],
    ['127.0.0.1:0', /port "0"/],
    ['127.0.0.1:99999', /port "99999"/],
    ['127.0.0.1:53x', /port "53x"/],
    ['127.0.0.1:+53', /port "\+53"/],
    ['[::1', /expected "\[IPv6\]"/],
    ['[::1]5353', /expected "\[IPv6\]"/],
    ['[::1]:53:53', /expected "\[IPv6\]"/],
    ['[127.0.0.1]:53', /not an IPv6 address/],
    ['[]:53', /not an IPv6 address/],
    ['::1::2', /not an IPv6 address/],
    [' 127.0.0.1', /not an IPv4 address/],
  ])('refuses %j', (text, reason) => {
    const parsed = parseServerAddress(text);
    expect(parsed.kind).toBe('error');
    expect(parsed.kind === 'error' ? parsed.reason : '').toMatch(reason);
  });
});

describe('loadZoneFiles', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dkimgate-zone-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads every file in order', async () => {
    const first = join(dir, 'first.zone');
    const second = join(dir, 'second.zone');
    await writeFile(first, '$ORIGIN example.test.\ns1._domainkey TXT "v=DKIM1; " "p=abc"\n');
    await writeFile(second, 's2._domainkey.example.org. 60 IN TXT ( "v=DKIM1;"\n  " p=def" )\n');
    expect(await loadZoneFiles([first, second])).toEqual([
      { name: 's1._domainkey.example.test', ttl: null, strings: ['v=DKIM1; ', 'p=abc'] },
      { name: 's2._domainkey.example.org', ttl: 60, strings: ['v=DKIM1;', ' p=def'] },
    ]);
  });

  it('throws an error naming the file and line of a parse error', async () => {
    const path = join(dir, 'broken.zone');
    await writeFile(path, '$ORIGIN example.test.\n\ns1._domainkey TXT "unterminated\n');
    await expect(loadZoneFiles([path])).rejects.toThrow(`${path}:3: unterminated quoted string`);
    await expect(loadZoneFiles([path])).rejects.toBeInstanceOf(ZoneFileError);
    await expect(loadZoneFiles([path])).rejects.toMatchObject({ unreadable: false });
  });

  it.each([
    ['a missing file', 'missing.zone', 'no such file'],
    ['a directory', '.', 'is a directory'],
  ])('throws an error naming %s it cannot read, and the fault', async (_what, name, fault) => {
    const path = join(dir, name);
    await expect(loadZoneFiles([path])).rejects.toThrow(new ZoneFileError(`${path}: cannot read zone file: ${fault}`, true)); // the whole message
    await expect(loadZoneFiles([path])).rejects.toMatchObject({ unreadable: true });
  });
});
