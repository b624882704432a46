import { describe, expect, it } from 'vitest';
import { formatConfigProblem } from '../../../src/config/load-config.js';
import { parseConfigText } from '../../../src/config/parse-config-text.js';
import { resolveSigningSelectors } from '../../../src/config/resolve-signing-selectors.js';

function selectorsOf(text: string) {
  const parsed = parseConfigText(text, 'test.yaml');
  if (parsed.kind !== 'ok') throw new Error(parsed.problems.map(formatConfigProblem).join('\n'));
  return resolveSigningSelectors(parsed.config);
}

describe('resolveSigningSelectors', () => {
  it('resolves a single selector with the global sign options', () => {
    expect(selectorsOf('sign:\n  domains:\n    example.com: { selector: s2026 }\n')).toEqual([
      {
        fromDomain: 'example.com',
        signingDomain: 'example.com',
        selector: 's2026',
        keyPath: 'keys/example.com/s2026.pem',
        algorithm: 'rsa-sha256',
        headerCanon: 'relaxed',
        bodyCanon: 'relaxed',
        headerList: 'From:From:Reply-To:Subject:Date:To:Cc?:Message-ID?:MIME-Version?:Content-Type?',
        agentId: null,
        lifetimeHours: 0,
        bodyLengthLimit: false,
        copyHeaders: false,
        signCondition: 'can_relay',
        origin: 'sign.domains.example.com.selector',
      },
    ]);
  });

  it('writes the domain of a configured identity as d= is written: A-labels, lower case, no trailing dot', () => {
    const entries = selectorsOf(
      'sign:\n  domains:\n    bücher.example: { selector: s1, identity: "news@Bücher.Example" }\n    example.com: { selector: s1, identity: "a@MAIL.Example.COM." }\n',
    );
    expect(entries.map((e) => [e.signingDomain, e.agentId])).toEqual([
      ['xn--bcher-kva.example', 'news@xn--bcher-kva.example'],
      ['example.com', 'a@mail.example.com'],
    ]);
  });

  it('signs as base_domain and expands %{d} to it in the key path', () => {
    const [entry] = selectorsOf('sign:\n  identity: "@%{d}"\n  domains:\n    mail.example.org: { selector: s1, base_domain: example.org }\n');
    expect(entry).toMatchObject({
      fromDomain: 'mail.example.org',
      signingDomain: 'example.org',
      keyPath: 'keys/example.org/s1.pem',
      agentId: '@example.org',
    });
  });

  it('expands an absolute key template', () => {
    const [entry] = selectorsOf('sign:\n  key: "/etc/dkim/%{s}@%{d}.key"\n  domains:\n    example.com: { selector: s1 }\n');
    expect(entry?.keyPath).toBe('/etc/dkim/s1@example.com.key');
  });

  it('returns one entry per selector of a domain, in order, each with its overrides', () => {
    const text = [
      'sign:',
      '  lifetime: 24',
      '  domains:',
      '    example.net:',
      '      header_canon: simple',
      '      selectors:',
      '        - rsa2026',
      '        - { selector: ed2026, digest: ed25519-sha256, key: "ed/%{s}.pem" }',
      '',
    ].join('\n');
    const entries = selectorsOf(text);
    expect(entries.map((e) => [e.selector, e.algorithm, e.headerCanon, e.keyPath, e.lifetimeHours, e.origin])).toEqual([
      ['rsa2026', 'rsa-sha256', 'simple', 'keys/example.net/rsa2026.pem', 24, 'sign.domains.example.net.selectors[0]'],
      ['ed2026', 'ed25519-sha256', 'simple', 'ed/ed2026.pem', 24, 'sign.domains.example.net.selectors[1]'],
    ]);
  });

  it('lets a selector entry override a domain override, which overrides the global option', () => {
    const text = [
      'sign:',
      '  body_canon: simple',
      '  copy_headers: false',
      '  domains:',
      '    example.com:',
      '      body_canon: relaxed',
      '      copy_headers: true',
      '      selectors: [{ selector: a, body_canon: simple }, b]',
      '    example.org: { selector: c }',
      '',
    ].join('\n');
    expect(selectorsOf(text).map((e) => [e.selector, e.bodyCanon, e.copyHeaders])).toEqual([
      ['a', 'simple', true],
      ['b', 'relaxed', true],
      ['c', 'simple', false],
    ]);
  });

  it('takes a per-domain sign_condition over the global one', () => {
    const text = 'users_file: users.htpasswd\nsign:\n  domains:\n    a.example: { selector: s, sign_condition: auth_user }\n    b.example: { selector: s }\n';
    expect(selectorsOf(text).map((e) => [e.fromDomain, e.signCondition])).toEqual([
      ['a.example', 'auth_user'],
      ['b.example', 'can_relay'],
    ]);
  });

  it('returns nothing when no domain is configured', () => {
    expect(selectorsOf('')).toEqual([]);
  });
});
