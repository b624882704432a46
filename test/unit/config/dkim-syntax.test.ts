import { describe, expect, it } from 'vitest';
import {
  checkIdentityInDomain,
  checkIdentityTemplate,
  checkKeyTemplate,
  checkSelector,
  expandTemplate,
  parseDomainName,
} from '../../../src/config/dkim-syntax.js';
import { parseHeaderList } from '../../../src/dkim/header-selection.js';

describe('parseHeaderList', () => {
  it('reads names and modifiers and keeps their order', () => {
    expect(parseHeaderList('Received+:X-Example*:From:Subject?:Received')).toEqual({
      kind: 'ok',
      normalized: 'Received+:X-Example*:From:Subject?:Received',
      entries: [
        { name: 'Received', lowerName: 'received', mode: 'all' },
        { name: 'X-Example', lowerName: 'x-example', mode: 'all-assert' },
        { name: 'From', lowerName: 'from', mode: 'one' },
        { name: 'Subject', lowerName: 'subject', mode: 'one-optional' },
        { name: 'Received', lowerName: 'received', mode: 'one' },
      ],
    });
  });

  it.each(['From', 'from', 'FROM?', 'Subject:From+', 'From:From'])('accepts %s (From in any case, with any modifier)', (list) => {
    expect(parseHeaderList(list).kind).toBe('ok');
  });

  it.each([
    ['Subject:Date', 'must include From'],
    ['From:', 'entry 2 is empty'],
    [':From', 'entry 1 is empty'],
    ['From:X?Y', 'entry 2 ("X?Y")'],
    ['From:?', 'entry 2 ("?")'],
    ['From:Cc+?', 'entry 2 ("Cc+?")'],
    ['From:Sübject', 'entry 2 ("Sübject")'],
    [Array.from({ length: 101 }, () => 'From').join(':'), 'lists 101 fields; at most 100 are allowed'],
  ])('refuses %j', (list, reason) => {
    const parsed = parseHeaderList(list);
    expect(parsed.kind).toBe('error');
    expect(parsed.kind === 'error' && parsed.reason).toContain(reason);
  });
});

describe('parseDomainName', () => {
  it.each([
    ['example.com', 'example.com'],
    ['Example.COM.', 'example.com'],
    ['bücher.example', 'xn--bcher-kva.example'],
    ['a-b.example', 'a-b.example'],
    ['localhost', 'localhost'],
  ])('reads %s as %s', (input, domain) => {
    expect(parseDomainName(input)).toEqual({ kind: 'ok', domain });
  });

  it.each(['', '.', 'a..b', '-a.example', 'a-.example', 'a_b.example', `${'a'.repeat(64)}.example`, `${'a.'.repeat(127)}com`])(
    'refuses %j',
    (input) => {
      expect(parseDomainName(input).kind).toBe('error');
    },
  );
});

describe('checkSelector', () => {
  it.each(['s1', 's2026', '20260101', 'ed2026', 'rsa-2048', 'a.b'])('accepts %s', (selector) => {
    expect(checkSelector(selector)).toBeNull();
  });

  it.each(['', 's_1', '-s', 's-', 'a..b', '../x', 's/1', 's 1'])('refuses %j', (selector) => {
    expect(checkSelector(selector)).not.toBeNull();
  });
});

describe('key and identity templates', () => {
  it('expands %{d} and %{s} everywhere they appear', () => {
    expect(expandTemplate('/k/%{d}/%{s}/%{d}-%{s}.pem', 'example.org', 's1')).toBe('/k/example.org/s1/example.org-s1.pem');
  });

  it.each([
    ['keys/%{d}/%{s}.pem', null],
    ['/etc/dkim/fixed.pem', null],
    ['keys/%d.pem', 'only %{d} (domain) and %{s} (selector) may be used in the key path'],
    ['keys/%{x}.pem', 'only %{d} (domain) and %{s} (selector) may be used in the key path'],
    ['   ', 'must name a key file, e.g. keys/%{d}/%{s}.pem'],
  ])('checks key template %j', (template, problem) => {
    const result = checkKeyTemplate(template);
    if (problem === null) expect(result).toBeNull();
    else expect(result).toContain(problem);
  });

  it.each([
    ['@example.com', true],
    ['@%{d}', true],
    ['bounce@%{d}', true],
    ['first.last@example.com', true],
    ['example.com', false],
    ['a b@example.com', false],
    ['@%{s}', false],
    ['@exa mple.com', false],
  ])('checks identity template %j', (identity, ok) => {
    expect(checkIdentityTemplate(identity) === null).toBe(ok);
  });

  it.each([
    ['@example.com', 'example.com', true],
    ['x@lists.example.com', 'example.com', true],
    ['@EXAMPLE.com', 'example.com', true],
    ['@example.net', 'example.com', false],
    ['@badexample.com', 'example.com', false],
    ['@com', 'example.com', false],
  ])('%s is within d=%s: %s', (identity, domain, ok) => {
    expect(checkIdentityInDomain(identity, domain) === null).toBe(ok);
  });
});
