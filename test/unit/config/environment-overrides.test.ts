import { describe, expect, it } from 'vitest';
import { DEFAULTS, defaultConfig } from '../../../src/config/defaults.js';
import { applyEnvironment, ENVIRONMENT_OVERRIDES, fileWarningsUnderEnvironment, overriddenKeys } from '../../../src/config/environment-overrides.js';
import { formatConfigProblem } from '../../../src/config/load-config.js';

function applied(env: Record<string, string>) {
  const outcome = applyEnvironment(defaultConfig(), env);
  if (outcome.kind === 'error') throw new Error(outcome.problems.map(formatConfigProblem).join('\n'));
  return outcome;
}

function problems(env: Record<string, string>): string[] {
  const outcome = applyEnvironment(defaultConfig(), env);
  if (outcome.kind === 'ok') throw new Error('expected problems');
  return outcome.problems.map(formatConfigProblem);
}

describe('applyEnvironment', () => {
  it('changes nothing when no DKIMGATE_* variable is set', () => {
    const outcome = applied({ PATH: '/usr/bin', HOME: '/root' });
    expect(outcome.config).toEqual(defaultConfig());
    expect([outcome.applied, outcome.warnings]).toEqual([[], []]);
  });

  it('sets the next hop host and port and keeps its tls and auth', () => {
    const base = defaultConfig();
    base.nextHop = { host: '127.0.0.1', port: 10026, tls: 'starttls', auth: { user: 'u', pass: 'p' }, caFile: null };
    const outcome = applyEnvironment(base, { DKIMGATE_NEXT_HOP: 'postfix:10026' });
    expect(outcome.kind === 'ok' && outcome.config.nextHop).toEqual({ host: 'postfix', port: 10026, tls: 'starttls', auth: { user: 'u', pass: 'p' }, caFile: null });
    expect(base.nextHop.host).toBe('127.0.0.1'); // the input is not changed
  });

  it('takes an IPv6 next hop in brackets', () => {
    expect(applied({ DKIMGATE_NEXT_HOP: '[2001:db8::25]:2525' }).config.nextHop).toMatchObject({ host: '2001:db8::25', port: 2525 });
  });

  it('replaces the listeners; each gets the listener defaults, protocol smtp unless lmtp:// says otherwise', () => {
    const { config } = applied({ DKIMGATE_LISTEN: '0.0.0.0:10027, lmtp://[::]:10029' });
    expect(config.listen).toEqual([
      { ...DEFAULTS.items.listener, host: '0.0.0.0', port: 10027 },
      { ...DEFAULTS.items.listener, host: '::', port: 10029, protocol: 'lmtp' },
    ]);
  });

  it('sets relay_hosts and xforward_hosts in normalized CIDR form, and empty text means none', () => {
    const { config } = applied({ DKIMGATE_RELAY_HOSTS: '10.0.0.0/8 192.0.2.7,2001:DB8::/32', DKIMGATE_XFORWARD_HOSTS: '' });
    expect(config.relayHosts).toEqual(['10.0.0.0/8', '192.0.2.7/32', '2001:db8::/32']);
    expect(config.xforwardHosts).toEqual([]);
  });

  it.each([
    ['DKIMGATE_AUTHSERV_ID', 'mx.example.net', (c: ReturnType<typeof defaultConfig>) => c.authservId, 'mx.example.net'],
    ['DKIMGATE_SIGN_KEY', '/run/secrets/%{d}-%{s}.pem', (c: ReturnType<typeof defaultConfig>) => c.sign.key, '/run/secrets/%{d}-%{s}.pem'],
    ['DKIMGATE_USERS_FILE', '/etc/dkimgate/users', (c: ReturnType<typeof defaultConfig>) => c.usersFile, '/etc/dkimgate/users'],
    ['DKIMGATE_USERS_FILE', 'off', (c: ReturnType<typeof defaultConfig>) => c.usersFile, null],
    ['DKIMGATE_DNS_SERVERS', '127.0.0.11, [::1]:53', (c: ReturnType<typeof defaultConfig>) => c.dns.servers, ['127.0.0.11', '[::1]:53']],
    ['DKIMGATE_METRICS', '0.0.0.0:9110', (c: ReturnType<typeof defaultConfig>) => c.metrics, { host: '0.0.0.0', port: 9110 }],
    ['DKIMGATE_METRICS', 'off', (c: ReturnType<typeof defaultConfig>) => c.metrics, null],
  ] as const)('%s=%s sets the key', (name, value, read, expected) => {
    const outcome = applied({ [name]: value });
    expect(read(outcome.config)).toEqual(expected);
    expect(outcome.applied).toEqual([name]);
  });

  it.each([
    [{ DKIMGATE_NEXT_HOP: 'postfix' }, 'environment: DKIMGATE_NEXT_HOP: "postfix": write HOST:PORT, e.g. 192.0.2.25:10026, postfix:10026 or [2001:db8::25]:10026'],
    [{ DKIMGATE_NEXT_HOP: 'postfix:smtp' }, 'environment: DKIMGATE_NEXT_HOP: "postfix:smtp": port: must be a whole number from 1 to 65535'],
    [{ DKIMGATE_LISTEN: '0.0.0.0:10027,::1' }, 'environment: DKIMGATE_LISTEN: "0.0.0.0:10027,::1": entry 2: write HOST:PORT'],
    [{ DKIMGATE_NEXT_HOP: 'postfix:99999' }, 'environment: DKIMGATE_NEXT_HOP: "postfix:99999": port: must be a whole number from 1 to 65535'],
    [{ DKIMGATE_NEXT_HOP: 'bad_host!:25' }, 'environment: DKIMGATE_NEXT_HOP: "bad_host!:25": host: "bad_host!" is not an IP address or host name'],
    [{ DKIMGATE_RELAY_HOSTS: '10.0.0.1/8' }, 'environment: DKIMGATE_RELAY_HOSTS: "10.0.0.1/8": entry 1: "10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?'],
    [{ DKIMGATE_LISTEN: '' }, 'environment: DKIMGATE_LISTEN: "": needs at least 1 entry'],
    [{ DKIMGATE_LISTEN: 'smtps://0.0.0.0:465' }, 'environment: DKIMGATE_LISTEN: "smtps://0.0.0.0:465": entry 1 protocol: must be one of smtp, lmtp'],
    [{ DKIMGATE_LISTEN: '0.0.0.0:25,0.0.0.0:25' }, 'environment: DKIMGATE_LISTEN: listen[1].port: listen[0] already listens on 0.0.0.0:25'],
    // start would bind the first, then fail on the second: refused here, as the file is
    [{ DKIMGATE_LISTEN: '0.0.0.0:25,127.0.0.1:25' }, 'environment: DKIMGATE_LISTEN: listen[1].port: listen[0] listens on 0.0.0.0:25, which covers 127.0.0.1:25'],
    [{ DKIMGATE_METRICS: '127.0.0.1:10027' }, 'environment: DKIMGATE_METRICS: metrics.port: listen[0] already listens on 127.0.0.1:10027'],
    [{ DKIMGATE_LISTEN: '[::]:9110', DKIMGATE_METRICS: '0.0.0.0:9110' }, 'environment: DKIMGATE_METRICS: metrics.port: listen[0] listens on [::]:9110, which covers 0.0.0.0:9110'],
    // the Postfix ports swapped: dkimgate would relay to itself
    [{ DKIMGATE_NEXT_HOP: '127.0.0.1:10027' }, 'environment: DKIMGATE_NEXT_HOP: next_hop 127.0.0.1:10027 is where listen[0] listens'],
    [{ DKIMGATE_AUTHSERV_ID: 'mx example' }, 'environment: DKIMGATE_AUTHSERV_ID: "mx example": "mx example" is not a valid authserv-id; use a host name such as mx.example.net'],
    [{ DKIMGATE_DNS_SERVERS: 'dns.google' }, 'environment: DKIMGATE_DNS_SERVERS: "dns.google": entry 1: "dns.google" is not a resolver address; write an IP address with an optional port, e.g. 127.0.0.1:5353 or [::1]:53'],
  ])('refuses %o, naming the variable', (env, message) => {
    expect(problems(env)).toEqual([expect.stringContaining(message)]);
  });

  it('warns about a DKIMGATE_* variable that is not a setting (a typo) and applies the others', () => {
    const outcome = applied({ DKIMGATE_NEXTHOP: 'postfix:10026', DKIMGATE_AUTHSERV_ID: 'mx.example.net' });
    expect(outcome.applied).toEqual(['DKIMGATE_AUTHSERV_ID']);
    expect(outcome.warnings.map(formatConfigProblem)).toEqual([expect.stringMatching(/^environment: DKIMGATE_NEXTHOP: not a dkimgate setting, ignored; the settings are DKIMGATE_AUTHSERV_ID, /)]);
  });

  it('warns when DKIMGATE_NEXT_HOP moves a next hop with auth and no TLS off this machine', () => {
    const base = defaultConfig();
    const withAuth = { ...base, nextHop: { ...base.nextHop, auth: { user: 'u', pass: 'p' } } };
    const outcome = applyEnvironment(withAuth, { DKIMGATE_NEXT_HOP: 'mta.example.net:587' });
    expect(outcome.kind === 'ok' && outcome.warnings.map(formatConfigProblem)).toEqual([
      expect.stringMatching(/^environment: DKIMGATE_NEXT_HOP: next_hop\.auth without TLS: the password goes to mta\.example\.net in clear text/),
    ]);
    expect(applyEnvironment(withAuth, { DKIMGATE_NEXT_HOP: '127.0.0.1:10026' })).toMatchObject({ kind: 'ok', warnings: [] });
  });

  it('judges auth_user without users again when DKIMGATE_USERS_FILE is set, and drops the file warning it makes moot', () => {
    const base = defaultConfig();
    const authUser = { ...base, usersFile: '/etc/dkimgate/users', sign: { ...base.sign, signCondition: 'auth_user' as const, domains: { 'example.com': { baseDomain: null, signCondition: null, overrides: {}, selectors: [{ selector: 's1', overrides: {} }] } } } };
    const off = applyEnvironment(authUser, { DKIMGATE_USERS_FILE: 'off' });
    expect(off.kind === 'ok' && off.warnings.map(formatConfigProblem)).toEqual([
      'environment: DKIMGATE_USERS_FILE: auth_user needs SMTP AUTH, but users_file is not set: no client can authenticate, so nothing will be signed',
    ]);
    const fileWarning = { file: 'd.yaml', line: 5, keyPath: 'sign.sign_condition', message: 'auth_user needs SMTP AUTH, but users_file is not set: …' };
    const other = { file: 'd.yaml', line: 9, keyPath: 'sign.digest', message: 'rsa-sha1 …' };
    expect(fileWarningsUnderEnvironment([fileWarning, other], { DKIMGATE_USERS_FILE: '/run/secrets/users' })).toEqual([other]);
    expect(fileWarningsUnderEnvironment([fileWarning, other], {})).toEqual([fileWarning, other]);
  });

  it('documents every variable and lists the ones set', () => {
    for (const override of Object.values(ENVIRONMENT_OVERRIDES)) expect(override.syntax.length).toBeGreaterThan(10);
    expect(overriddenKeys({ DKIMGATE_METRICS: 'off', DKIMGATE_CONFIG: '/x', OTHER: '1' })).toEqual(['DKIMGATE_METRICS']);
  });
});
