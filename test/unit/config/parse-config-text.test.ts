import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { ConfigProblem } from '../../../src/config/config.js';
import { formatConfigProblem } from '../../../src/config/load-config.js';
import { parseConfigText } from '../../../src/config/parse-config-text.js';

const FILE = 'config/dkimgate.yaml';

function problemsOf(text: string): ConfigProblem[] {
  const parsed = parseConfigText(text, FILE);
  if (parsed.kind !== 'error') throw new Error('expected the config to be refused');
  return parsed.problems;
}

function configOf(text: string) {
  const parsed = parseConfigText(text, FILE);
  if (parsed.kind !== 'ok') throw new Error(parsed.problems.map(formatConfigProblem).join('\n'));
  return parsed;
}

describe('parseConfigText', () => {
  it('names the file, line and key path of an unknown key and suggests the right one', () => {
    const text = ['authserv_id: mx.example.net', 'sign:', '  digets: rsa-sha256', ''].join('\n');
    expect(problemsOf(text)).toEqual([
      { file: FILE, line: 3, keyPath: 'sign.digets', message: 'unknown key (did you mean digest?)' },
    ]);
  });

  it('suggests the snake_case key for a camelCase or dashed spelling', () => {
    expect(problemsOf('limits: { maxClients: 5 }\n')[0]?.message).toBe('unknown key (did you mean max_clients?)');
    expect(problemsOf('sign: { header-canon: simple }\n')[0]?.message).toBe('unknown key (did you mean header_canon?)');
  });

  it('formats a problem as FILE:LINE: key: message', () => {
    const text = 'sign:\n  domains:\n    example.com:\n      selector: s1\n      digest: rsa-sha512\n';
    const [problem] = problemsOf(text);
    expect(problem && formatConfigProblem(problem)).toBe(
      'config/dkimgate.yaml:5: sign.domains.example.com.digest: must be one of rsa-sha256, rsa-sha1, ed25519-sha256',
    );
  });

  it.each([
    ['listen:\n  - { port: 70000 }\n', 2, 'listen[0].port', 'must be a whole number from 0 to 65535'],
    ['listen:\n  - { port: "25" }\n', 2, 'listen[0].port', 'must be a whole number from 0 to 65535'],
    ['listen:\n  - { protocol: esmtp }\n', 2, 'listen[0].protocol', 'must be one of smtp, lmtp'],
    ['listen: []\n', 1, 'listen', 'needs at least 1 entry'],
    ['listen:\n  - { host: "[::1]" }\n', 2, 'listen[0].host', 'write IPv6 addresses without brackets, e.g. ::1'],
    ['next_hop: { port: 0 }\n', 1, 'next_hop.port', 'must be a whole number from 1 to 65535'],
    ['next_hop: { tls: yes }\n', 1, 'next_hop.tls', 'must be one of none, starttls, implicit'],
    ['next_hop: { auth: { user: u } }\n', 1, 'next_hop.auth.pass', 'is required here'],
    ['relay_hosts: 127.0.0.1/32\n', 1, 'relay_hosts', 'must be a list, not a single value (e.g. [a, b] or one "- a" line per entry)'],
    ['limits:\n  socket_timeout: 0\n', 2, 'limits.socket_timeout', 'must be a number greater than 0'],
    ['limits:\n  max_clients: 1.5\n', 2, 'limits.max_clients', 'must be a whole number from 1 to 1000000'],
    ['verify: { enabled: "yes" }\n', 1, 'verify.enabled', 'must be true or false'],
    ['verify: { min_key_bits: 256 }\n', 1, 'verify.min_key_bits', 'must be a whole number from 512 to 8192'],
    // Above the largest key verified (8192 bits), every RSA signature would be refused.
    ['verify: { min_key_bits: 16384 }\n', 1, 'verify.min_key_bits', 'must be a whole number from 512 to 8192'],
    ['policy: { on_temperror: reject }\n', 1, 'policy.on_temperror', 'must be one of accept, tempfail'],
    ['policy:\n  require:\n    - { aligned: false }\n', 3, 'policy.require[0].domain', 'is required here'],
    ['sign: { lifetime: -1 }\n', 1, 'sign.lifetime', 'must be a number from 0 to 87600'],
    // x= must stay a decimal integer of at most 12 digits: a lifetime of 1e20 hours once wrote x=3.6e+23.
    ['sign:\n  domains:\n    example.com: { selector: s1, lifetime: 1e20 }\n', 3, 'sign.domains.example.com.lifetime', 'must be a number from 0 to 87600'],
    ['sign: { sign_condition: always }\n', 1, 'sign.sign_condition', 'must be one of can_relay, auth_user'],
    ['sign: { key: "keys/%{domain}.pem" }\n', 1, 'sign.key', '"keys/%{domain}.pem": only %{d} (domain) and %{s} (selector) may be used in the key path'],
    ['sign: { identity: "nobody" }\n', 1, 'sign.identity', '"nobody" is not an identity; write [local-part]@domain, e.g. @example.com or @%{d}'],
    ['sign: { headerlist: "Subject:Date" }\n', 1, 'sign.headerlist', 'must include From (RFC 6376 §5.4: the From field must be signed)'],
    ['sign: { headerlist: "From::Date" }\n', 1, 'sign.headerlist', 'entry 2 is empty; separate field names with single colons, e.g. "From:Subject:Date"'],
    ['sign: { headerlist: "From:Sub ject" }\n', 1, 'sign.headerlist', 'entry 2 ("Sub ject") is a bad header name: use a field name with an optional trailing ?, * or +'],
    ['sign: { headerlist: "From:Cc??" }\n', 1, 'sign.headerlist', 'entry 2 ("Cc??") is a bad header name: use a field name with an optional trailing ?, * or +'],
    ['sign:\n  domains:\n    example.com: {}\n', 3, 'sign.domains.example.com', 'needs selector or selectors'],
    ['sign:\n  domains:\n    example.com: { selector: s_1 }\n', 3, 'sign.domains.example.com.selector', '"s_1" is not a selector: use letters, digits and hyphens, in dot-separated labels (e.g. s2026, ed2026)'],
    ['sign:\n  domains:\n    -bad-.com: { selector: s1 }\n', 3, 'sign.domains.-bad-.com', '"-bad-.com" is not a domain name: label "-bad-" must be 1-63 letters, digits or hyphens, not starting or ending with a hyphen'],
    ['sign:\n  domains:\n    example.com: { selector: s1, base_domain: "ex ample.org" }\n', 3, 'sign.domains.example.com.base_domain', '"ex ample.org" is not a domain name: label "ex ample" must be 1-63 letters, digits or hyphens, not starting or ending with a hyphen'],
    ['dns: { servers: ["dns.example:53"] }\n', 1, 'dns.servers[0]', '"dns.example:53" is not a resolver address; write an IP address with an optional port, e.g. 127.0.0.1:5353 or [::1]:53'],
    ['dns: { servers: ["[::1]:99999"] }\n', 1, 'dns.servers[0]', '"[::1]:99999": port "99999" is not a number from 1 to 65535'],
    // A stray space is shown inside the quotes, not taken for a number out of range.
    ['dns: { servers: ["127.0.0.1:53 "] }\n', 1, 'dns.servers[0]', '"127.0.0.1:53 ": port "53 " is not a number from 1 to 65535'],
    ['dns: { timeout: 0 }\n', 1, 'dns.timeout', 'must be a whole number from 1 to 600000'],
    ['metrics: { host: 127.0.0.1 }\n', 1, 'metrics.port', 'is required here'],
    ['authserv_id: "mx example"\n', 1, 'authserv_id', '"mx example" is not a valid authserv-id; use a host name such as mx.example.net'],
    ['users_file: ""\n', 1, 'users_file', 'must not be empty'],
    ['sign: [digest]\n', 1, 'sign', 'must be a mapping of keys to values, not a list'],
  ])('refuses %j at line %i, key %s', (text, line, keyPath, message) => {
    expect(problemsOf(text)).toEqual([{ file: FILE, line, keyPath, message }]);
  });

  it('reports every problem of a file, not only the first', () => {
    const text = [
      'listen:', //                                  1
      '  - { host: 127.0.0.1, port: 99999 }', //      2
      'relay_hosts: [10.0.0.1/8]', //                 3
      'verify:', //                                   4
      '  allow_sha1: maybe', //                       5
      'sign:', //                                     6
      '  digest: rsa-sha512', //                      7
      '  colour: blue', //                            8
    ].join('\n');
    expect(problemsOf(text).map((p) => [p.line, p.keyPath])).toEqual([
      [2, 'listen[0].port'],
      [3, 'relay_hosts[0]'],
      [5, 'verify.allow_sha1'],
      [7, 'sign.digest'],
      [8, 'sign.colour'],
    ]);
  });

  it('reports a YAML syntax error with its line', () => {
    const problems = problemsOf('verify:\n  enabled: true\n   max_signatures: [5\n');
    expect(problems[0]?.line).toBeGreaterThanOrEqual(2);
    expect(problems[0]?.message).toMatch(/^YAML: /);
  });

  it('refuses a key written twice', () => {
    const problems = problemsOf('verify:\n  enabled: true\n  enabled: false\n');
    expect(problems).toHaveLength(1);
    expect(problems[0]?.line).toBe(3);
    expect(problems[0]?.message).toBe('YAML: this key is already set earlier in the same mapping');
  });

  it('refuses a domain configured twice in different spellings', () => {
    const problems = problemsOf('sign:\n  domains:\n    example.com: { selector: a }\n    EXAMPLE.com.: { selector: b }\n');
    expect(problems).toEqual([
      { file: FILE, line: 4, keyPath: 'sign.domains.example.com', message: 'domain example.com is already configured on line 3' },
    ]);
  });

  it('refuses a selector listed twice for one domain', () => {
    const problems = problemsOf('sign:\n  domains:\n    example.com:\n      selectors: [s1, s1]\n');
    expect(problems.map((p) => p.message)).toEqual(['selector s1 is listed twice for example.com']);
  });

  it('refuses selector and selectors together', () => {
    const problems = problemsOf('sign:\n  domains:\n    example.com:\n      selector: a\n      selectors: [b]\n');
    expect(problems).toEqual([
      { file: FILE, line: 5, keyPath: 'sign.domains.example.com', message: 'use either selector or selectors, not both' },
    ]);
  });

  it('refuses an identity outside the signing domain where it is set', () => {
    const text = 'sign:\n  domains:\n    example.com:\n      selector: s1\n      identity: "@example.net"\n';
    expect(problemsOf(text)).toEqual([
      {
        file: FILE,
        line: 5,
        keyPath: 'sign.domains.example.com.identity',
        message: 'identity @example.net is not within the signing domain example.com (RFC 6376 §3.5); use @example.com, a subdomain of it, or @%{d}',
      },
    ]);
  });

  it('accepts an identity in a subdomain of the signing domain, and %{d}', () => {
    const text = 'sign:\n  identity: "@%{d}"\n  domains:\n    example.com: { selector: s1, identity: "bounce@lists.example.com" }\n    example.net: { selector: s1 }\n';
    expect(configOf(text).config.sign.domains['example.com']?.overrides.identity).toBe('bounce@lists.example.com');
  });

  it('refuses two listeners on the same address and port', () => {
    const problems = problemsOf('listen:\n  - { port: 2525 }\n  - { port: 2525 }\n');
    expect(problems).toEqual([{ file: FILE, line: 3, keyPath: 'listen[1].port', message: 'listen[0] already listens on 127.0.0.1:2525' }]);
  });

  it('refuses listeners and a metrics listener that cannot all be bound (a wildcard covers the other address)', () => {
    const text = [
      'listen:',
      '  - { host: 0.0.0.0, port: 2525 }',
      '  - { host: 127.0.0.1, port: 2525 }',
      '  - { host: "::1", port: 2525 }',
      '  - { host: "::1", port: 0 }',
      '  - { host: "::1", port: 0 }',
      'metrics: { host: "::1", port: 2525 }',
      '',
    ].join('\n');
    expect(problemsOf(text)).toEqual([
      {
        file: FILE,
        line: 3,
        keyPath: 'listen[1].port',
        message: 'listen[0] listens on 0.0.0.0:2525, which covers 127.0.0.1:2525: only one of them can be bound; give each its own port',
      },
      { file: FILE, line: 7, keyPath: 'metrics.port', message: 'listen[2] already listens on [::1]:2525' },
    ]);
    // 0.0.0.0 leaves IPv6 addresses free; port 0 is any free port
    expect(configOf('listen:\n  - { host: 0.0.0.0, port: 2525 }\n  - { host: "::1", port: 2525 }\nmetrics: { host: 0.0.0.0, port: 0 }\n').config.listen).toHaveLength(2);
  });

  it('warns about next_hop.auth without TLS to another machine (the password in clear text), not on loopback', () => {
    const auth = (host: string, tls: string) => configOf(`next_hop: { host: "${host}", port: 587, tls: ${tls}, auth: { user: u, pass: p } }\n`).warnings;
    expect(auth('mta.example.net', 'none')).toEqual([
      {
        file: FILE,
        line: 1,
        keyPath: 'next_hop.auth',
        message:
          'next_hop.auth without TLS: the password goes to mta.example.net in clear text (and a next hop that offers AUTH only after STARTTLS refuses it, deferring every message); set next_hop.tls: starttls or implicit',
      },
    ]);
    expect([auth('mta.example.net', 'starttls'), auth('127.0.0.2', 'none'), auth('::1', 'none'), auth('localhost', 'none')]).toEqual([[], [], [], []]);
  });

  it('refuses a next_hop that is one of our own listeners (a relay loop), not a remote host on a wildcard listener\'s port', () => {
    expect(problemsOf('listen:\n  - { host: 0.0.0.0, port: 10027 }\nnext_hop: { host: 127.0.0.1, port: 10027 }\n')).toEqual([
      {
        file: FILE,
        line: 3,
        keyPath: 'next_hop.port',
        message:
          "next_hop 127.0.0.1:10027 is where listen[0] listens: every message would be relayed back to dkimgate itself; point next_hop at the MTA's re-injection port (e.g. Postfix's 127.0.0.1:10026)",
      },
    ]);
    expect(problemsOf('listen:\n  - { host: "::1", port: 25 }\nnext_hop: { host: "::1", port: 25 }\n').map((p) => p.keyPath)).toEqual(['next_hop.port']);
    expect(configOf('listen:\n  - { host: 0.0.0.0, port: 25 }\nnext_hop: { host: 192.0.2.25, port: 25 }\n').config.nextHop.port).toBe(25);
  });

  it('refuses a header size limit above the message size limit', () => {
    expect(problemsOf('limits:\n  max_message_size: 1000\n').map((p) => [p.line, p.keyPath])).toEqual([[1, 'limits.max_header_size']]);
  });

  it('takes an unquoted numeric selector as written', () => {
    const config = configOf('sign:\n  domains:\n    example.com: { selector: 0042 }\n').config;
    expect(config.sign.domains['example.com']?.selectors).toEqual([{ selector: '0042', overrides: {} }]);
  });

  it('normalizes domains to lower-case A-labels', () => {
    const config = configOf('sign:\n  domains:\n    Bücher.Example: { selector: s1 }\n').config;
    expect(Object.keys(config.sign.domains)).toEqual(['xn--bcher-kva.example']);
  });

  it('removes blanks from the headerlist', () => {
    expect(configOf('sign: { headerlist: "From : Subject :Cc?" }\n').config.sign.headerlist).toBe('From:Subject:Cc?');
  });

  it('resolves YAML aliases', () => {
    const text = 'relay_hosts: &trusted [192.0.2.0/24]\nxforward_hosts: *trusted\n';
    expect(configOf(text).config.xforwardHosts).toEqual(['192.0.2.0/24']);
  });

  // Nested aliases decode into n² (or 10^levels) nodes: before the limit, 400 domains of 400
  // selector aliases each took 39 s and reported 160,000 problems.
  it.each([
    ['nested aliases (400 domains × 400 selectors)', nestedAliases(400)],
    ['a billion laughs (9 levels of 10)', billionLaughs(9)],
  ])('refuses %s at once, with one problem', (_name, text) => {
    const started = performance.now();
    const parsed = parseConfigText(text, 'bomb.yaml');
    expect(performance.now() - started).toBeLessThan(2000);
    expect(parsed).toMatchObject({ kind: 'error', problems: [{ message: expect.stringMatching(/aliases \(\*name\) expand to more than 100 copies/) }] });
  });

  it('warns about signing with rsa-sha1 and about auth_user without a users file', () => {
    const parsed = configOf('sign:\n  sign_condition: auth_user\n  domains:\n    example.com: { selector: s1, digest: rsa-sha1 }\n');
    expect(parsed.warnings.map((w) => [w.line, w.keyPath])).toEqual([
      [4, 'sign.domains.example.com.digest'],
      [2, 'sign.sign_condition'],
    ]);
  });

  it('accepts the commented example configuration', () => {
    const parsed = configOf(readFileSync(new URL('../../../config/dkimgate.example.yaml', import.meta.url), 'utf8'));
    expect(parsed.warnings).toEqual([]);
    expect(Object.keys(parsed.config.sign.domains)).toEqual(['example.com', 'example.net', 'mail.example.org']);
    expect(parsed.config.listen).toHaveLength(2);
  });
});

/** n domains, each an alias of one entry whose selectors are n aliases of one selector entry. */
function nestedAliases(n: number): string {
  const selectors = Array<string>(n).fill('*s').join(', ');
  const domains = Array.from({ length: n }, (_, i) => `    d${i}.example: *d`).join('\n');
  return `verify: { enabled: true }\nsign:\n  domains:\n    d.example: &d\n      selectors: [&s { selector: s1 }, ${selectors}]\n${domains}\n`;
}

/** Each level a list of ten aliases of the level below: 10^levels strings from a few lines. */
function billionLaughs(levels: number): string {
  let text = 'policy:\n  require: []\nxforward_hosts: &a0 [192.0.2.1, 192.0.2.2]\n';
  for (let i = 1; i < levels; i++) text += `relay_hosts${i === levels - 1 ? '' : `_${i}`}: &a${i} [${Array<string>(10).fill(`*a${i - 1}`).join(', ')}]\n`;
  return text;
}
