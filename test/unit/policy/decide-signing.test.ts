import { describe, expect, it } from 'vitest';
import type { SignCondition } from '../../../src/config/config.js';
import { compileCidrs, type ClientIdentity } from '../../../src/policy/client-identity.js';
import { decideSigning, findSigners, isAllowed, type SigningCandidate, type SigningInput } from '../../../src/policy/decide-signing.js';

interface Entry extends SigningCandidate {
  selector: string;
}

function entry(fromDomain: string, selector: string, signingDomain = fromDomain, signCondition: SignCondition = 'can_relay'): Entry {
  return { fromDomain, signingDomain, selector, signCondition };
}

const SELECTORS = new Map<string, Entry[]>([
  ['example.com', [entry('example.com', 'rsa2026'), entry('example.com', 'ed2026')]],
  ['mail.example.org', [entry('mail.example.org', 's1', 'example.org')]],
  ['example.net', [entry('example.net', 's1', 'example.net', 'auth_user')]],
  ['plain.example', [entry('plain.example', 's1')]],
]);

const RELAY_HOSTS = compileCidrs(['127.0.0.1/32', '::1/128', '10.0.0.0/8']);

const relayClient: ClientIdentity = { address: '127.0.0.1', via: 'connection', authUser: null };
const stranger: ClientIdentity = { address: '203.0.113.9', via: 'connection', authUser: null };
const alice: ClientIdentity = { address: '203.0.113.9', via: 'connection', authUser: 'alice' };

function decide(over: Partial<SigningInput<Entry>>) {
  return decideSigning<Entry>({ client: relayClient, relayHosts: RELAY_HOSTS, fromDomains: ['example.com'], selectorsByDomain: SELECTORS, ...over });
}

describe('decideSigning', () => {
  it('signs for a relay host with every selector of the From domain, in order', () => {
    const decision = decide({});
    expect(decision).toMatchObject({ kind: 'sign', domain: 'example.com', fromDomain: 'example.com', reason: 'signing as example.com (relay host 127.0.0.1)' });
    if (decision.kind !== 'sign') throw new Error('expected sign');
    expect(decision.signers.map((s) => s.selector)).toEqual(['rsa2026', 'ed2026']);
  });

  it('signs for an authenticated user from any address', () => {
    expect(decide({ client: alice })).toMatchObject({ kind: 'sign', reason: 'signing as example.com (user alice)' });
  });

  it('names the user, not the relay host, when a relay host also authenticated', () => {
    expect(decide({ client: { ...relayClient, authUser: 'bob' } })).toMatchObject({ kind: 'sign', reason: 'signing as example.com (user bob)' });
  });

  it('matches the From domain case-insensitively and ignores a trailing dot', () => {
    expect(decide({ fromDomains: ['EXAMPLE.Com.'] })).toMatchObject({ kind: 'sign', domain: 'example.com' });
  });

  it('signs an internationalized From domain by its A-label', () => {
    const selectors = new Map([['xn--bcher-kva.example', [entry('xn--bcher-kva.example', 's1')]]]);
    expect(decide({ fromDomains: ['bücher.example'], selectorsByDomain: selectors })).toMatchObject({ kind: 'sign', domain: 'xn--bcher-kva.example' });
  });

  it('signs as the base domain', () => {
    expect(decide({ fromDomains: ['mail.example.org'] })).toMatchObject({
      kind: 'sign',
      domain: 'example.org',
      fromDomain: 'mail.example.org',
      reason: 'signing as example.org (relay host 127.0.0.1)',
    });
  });

  it('serves subdomains of a domain configured with base_domain, signing as the base domain', () => {
    expect(decide({ fromDomains: ['eu.mail.example.org'] })).toMatchObject({ kind: 'sign', domain: 'example.org', fromDomain: 'eu.mail.example.org' });
  });

  it('does not serve subdomains of a domain configured without base_domain', () => {
    expect(decide({ fromDomains: ['sub.example.com'] })).toEqual({ kind: 'verify', reason: 'no key for domain sub.example.com' });
  });

  it('does not serve the parent of a configured domain', () => {
    expect(decide({ fromDomains: ['example.org'] })).toEqual({ kind: 'verify', reason: 'no key for domain example.org' });
  });

  it.each<[string, Partial<SigningInput<Entry>>, string]>([
    ['an untrusted client', { client: stranger }, 'client not trusted'],
    ['a proxy that sent no ADDR', { client: { address: null, via: 'xforward', authUser: null } }, 'client unknown (proxy sent no ADDR)'],
    ['a connection without a usable address', { client: { address: null, via: 'connection', authUser: null } }, 'client unknown'],
    ['no From domain', { fromDomains: [] }, 'no From domain'],
    ['an empty From domain', { fromDomains: [''] }, 'no From domain'],
    ['several From fields', { fromDomains: ['example.com', 'example.com'] }, 'several From fields'],
    ['a domain without a key', { fromDomains: ['gmail.com'] }, 'no key for domain gmail.com'],
    ['an auth_user domain and a relay host without AUTH', { fromDomains: ['example.net'] }, 'client not trusted (auth_user required)'],
    ['an empty relay list', { relayHosts: [] }, 'client not trusted'],
  ])('verifies for %s', (_name, over, reason) => {
    expect(decide(over)).toEqual({ kind: 'verify', reason });
  });

  it('never trusts a proxy address: an unknown client behind a proxy in relay_hosts does not sign', () => {
    // 127.0.0.1 is the proxy and a relay host; the client it forwards for is unknown.
    expect(decide({ client: { address: null, via: 'xforward', authUser: null } }).kind).toBe('verify');
  });

  it('signs an auth_user domain for an authenticated user', () => {
    expect(decide({ fromDomains: ['example.net'], client: alice })).toMatchObject({ kind: 'sign', domain: 'example.net' });
  });

  it('signs for an authenticated user behind a proxy that sent no ADDR', () => {
    expect(decide({ client: { address: null, via: 'xforward', authUser: 'alice' } })).toMatchObject({ kind: 'sign', reason: 'signing as example.com (user alice)' });
  });

  it('matches relay hosts for an IPv4-mapped client address', () => {
    expect(decide({ client: { address: '::ffff:10.2.3.4', via: 'connection', authUser: null } }).kind).toBe('sign');
  });

  describe('allowed domains', () => {
    const byUser = new Map([
      ['alice', ['example.com']],
      ['carol', ['example.org']],
    ]);
    const byHost = [
      { cidr: compileCidrs(['10.0.0.0/8'])[0]!, domains: ['plain.example'] },
      { cidr: compileCidrs(['10.1.0.0/16'])[0]!, domains: ['example.com'] },
    ];

    it('lets a limited user sign for its domain', () => {
      expect(decide({ client: alice, allowedDomains: { byUser } }).kind).toBe('sign');
    });

    it('refuses a limited user sending as another configured domain', () => {
      expect(decide({ client: alice, fromDomains: ['plain.example'], allowedDomains: { byUser } })).toEqual({
        kind: 'refuse',
        reason: 'user alice may not sign for plain.example',
      });
    });

    it('lets a user limited to a parent domain sign for its subdomains (and through base_domain)', () => {
      const carol: ClientIdentity = { ...alice, authUser: 'carol' };
      expect(decide({ client: carol, fromDomains: ['mail.example.org'], allowedDomains: { byUser } })).toMatchObject({ kind: 'sign', domain: 'example.org' });
    });

    it('refuses a limited user naming a configured domain it may not use anywhere in From, not only first', () => {
      const refused = { kind: 'refuse', reason: 'user alice may not sign for plain.example' };
      expect(decide({ client: alice, fromDomains: ['plain.example'], allAuthorDomains: ['plain.example', 'example.com'], allowedDomains: { byUser } })).toEqual(refused);
      expect(decide({ client: alice, fromDomains: ['example.com'], allAuthorDomains: ['example.com', 'PLAIN.example.'], allowedDomains: { byUser } })).toEqual(refused);
      // a co-author whose domain has no key is not signed for, so not refused
      expect(decide({ client: alice, fromDomains: ['example.com'], allAuthorDomains: ['example.com', 'gmail.com'], allowedDomains: { byUser } }).kind).toBe('sign');
    });

    it('does not limit users without an entry', () => {
      const dave: ClientIdentity = { ...alice, authUser: 'dave' };
      expect(decide({ client: dave, fromDomains: ['plain.example'], allowedDomains: { byUser } }).kind).toBe('sign');
    });

    it('verifies, not refuses, mail from a domain without a key', () => {
      expect(decide({ client: alice, fromDomains: ['gmail.com'], allowedDomains: { byUser } })).toEqual({ kind: 'verify', reason: 'no key for domain gmail.com' });
    });

    it('limits a relay host by its most specific block', () => {
      const host = (address: string): ClientIdentity => ({ address, via: 'connection', authUser: null });
      expect(decide({ client: host('10.1.2.3'), allowedDomains: { byHost } }).kind).toBe('sign');
      expect(decide({ client: host('10.2.3.4'), allowedDomains: { byHost } })).toEqual({ kind: 'refuse', reason: 'relay host 10.2.3.4 may not sign for example.com' });
      expect(decide({ client: host('10.2.3.4'), fromDomains: ['plain.example'], allowedDomains: { byHost } }).kind).toBe('sign');
      expect(decide({ client: host('127.0.0.1'), allowedDomains: { byHost } }).kind).toBe('sign');
    });

    it("applies the user's limit, not the relay host's, when a limited relay host authenticated", () => {
      const client: ClientIdentity = { address: '10.2.3.4', via: 'connection', authUser: 'dave' };
      expect(decide({ client, allowedDomains: { byHost } }).kind).toBe('sign');
    });
  });
});

describe('findSigners', () => {
  it('prefers the exact entry over a base_domain parent', () => {
    const map = new Map([
      ['a.example.org', [entry('a.example.org', 'exact')]],
      ['example.org', [entry('example.org', 'parent', 'org.example')]],
    ]);
    expect(findSigners('a.example.org', map)?.[0]?.fromDomain).toBe('a.example.org');
    expect(findSigners('b.a.example.org', map)?.[0]?.fromDomain).toBe('example.org');
  });

  it('takes the longest parent configured with base_domain', () => {
    const map = new Map([
      ['x.example.org', [entry('x.example.org', 'near', 'example.org')]],
      ['example.org', [entry('example.org', 'far', 'example.net')]],
    ]);
    expect(findSigners('y.x.example.org', map)?.[0]?.selector).toBe('near');
  });
});

describe('isAllowed', () => {
  it.each([
    ['example.com', ['example.com'], true],
    ['mail.example.com', ['example.com'], true],
    ['badexample.com', ['example.com'], false],
    ['example.com', ['mail.example.com'], false],
    ['example.com', ['EXAMPLE.COM.'], true],
    ['example.com', [], false],
  ])('%s within %j: %s', (domain, allowed, expected) => {
    expect(isAllowed(domain, allowed)).toBe(expected);
  });
});

describe('an internationalized From domain (RFC 6532: UTF-8 bytes, one per character)', () => {
  const headerText = (domain: string) => Buffer.from(domain, 'utf8').toString('latin1');
  const idnSelectors = new Map<string, Entry[]>([...SELECTORS, ['xn--bnk-qla.test', [entry('xn--bnk-qla.test', 's1')]]]);

  it.each([['bänk.test'], ['BÄNK.test.']])('finds the key configured under the A-labels of %s', (domain) => {
    expect(decide({ fromDomains: [headerText(domain)], selectorsByDomain: idnSelectors })).toMatchObject({ kind: 'sign', domain: 'xn--bnk-qla.test' });
  });

  it('refuses a limited user naming the domain anywhere in From, and lets one allowed it in U-labels sign', () => {
    const byUser = new Map([['alice', ['example.com']], ['erin', ['bänk.test']]]);
    const authors = ['example.com', headerText('bänk.test')];
    expect(decide({ client: alice, allAuthorDomains: authors, selectorsByDomain: idnSelectors, allowedDomains: { byUser } })).toEqual({
      kind: 'refuse',
      reason: 'user alice may not sign for xn--bnk-qla.test',
    });
    const erin: ClientIdentity = { ...alice, authUser: 'erin' };
    expect(decide({ client: erin, fromDomains: [headerText('bänk.test')], selectorsByDomain: idnSelectors, allowedDomains: { byUser } }).kind).toBe('sign');
  });
});
