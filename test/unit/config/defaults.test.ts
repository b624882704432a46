import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { DEFAULTS, defaultConfig } from '../../../src/config/defaults.js';
import { parseConfigText } from '../../../src/config/parse-config-text.js';

function parseOk(text: string) {
  const parsed = parseConfigText(text, 'test.yaml');
  if (parsed.kind !== 'ok') throw new Error(parsed.problems.map((p) => `${p.line}: ${p.keyPath}: ${p.message}`).join('\n'));
  return parsed.config;
}

describe('configuration defaults', () => {
  it('yields the built-in defaults for an empty file', () => {
    expect(parseOk('')).toEqual(defaultConfig());
  });

  it('yields the defaults for a file of comments only', () => {
    expect(parseOk('# nothing configured yet\n')).toEqual(defaultConfig());
  });

  it('uses the host name as authserv_id by default', () => {
    expect(defaultConfig().authservId).toBe(hostname());
  });

  it.each([
    ['listen', [{ host: '127.0.0.1', port: 10027, protocol: 'smtp', tls: null, relayHosts: null, xforwardHosts: null, allowInsecureAuth: false, lineEndings: 'normalize' }]],
    ['nextHop', { host: '127.0.0.1', port: 10026, tls: 'none', caFile: null, auth: null }],
    ['relayHosts', ['127.0.0.1/32', '::1/128']],
    ['xforwardHosts', []],
    ['usersFile', null],
    ['limits', { maxMessageSize: 52428800, maxHeaderSize: 1048576, maxHeaderFields: 1000, maxClients: 500, socketTimeout: 300, sessionTimeout: 3600, minDataRate: 500, dataRateWindow: 30, maxRecipients: 1000, maxAuthFailures: 5, authFailureWindow: 300, nextHopTimeout: 120, drainTimeout: 60, spillThreshold: 262144, spoolDir: null }],
    ['verify', { enabled: true, maxSignatures: 5, minKeyBits: 1024, allowSha1: false, clockSkew: 300 }],
    ['policy', { onTemperror: 'accept', require: [], dryRun: false }],
    ['dns', { servers: [], zoneFiles: [], timeout: 5000, cacheSize: 2048, cacheTtl: 300, negativeTtl: 3600 }],
    ['metrics', null],
  ] as const)('defaults %s as interface.md §3 says', (key, expected) => {
    expect(defaultConfig()[key]).toEqual(expected);
  });

  it('defaults the sign options to the seed operator documentation values', () => {
    const { domains, ...options } = defaultConfig().sign;
    expect(domains).toEqual({});
    expect(options).toEqual({
      signCondition: 'can_relay',
      digest: 'rsa-sha256',
      headerCanon: 'relaxed',
      bodyCanon: 'relaxed',
      headerlist: 'From:From:Reply-To:Subject:Date:To:Cc?:Message-ID?:MIME-Version?:Content-Type?',
      key: 'keys/%{d}/%{s}.pem',
      identity: null,
      lifetime: 0,
      bodyLengthLimit: false,
      copyHeaders: false,
    });
  });

  it('fills in the keys a section leaves out and keeps the ones it sets', () => {
    const config = parseOk('verify:\n  max_signatures: 3\nlimits: { max_clients: 10 }\n');
    expect(config.verify).toEqual({ ...DEFAULTS.config.verify, maxSignatures: 3 });
    expect(config.limits).toEqual({ ...DEFAULTS.config.limits, maxClients: 10 });
  });

  it('takes an empty section (all its keys commented out) as its defaults', () => {
    const config = parseOk('verify:\n  # enabled: false\nnext_hop:\n');
    expect(config.verify).toEqual(DEFAULTS.config.verify);
    expect(config.nextHop).toEqual(DEFAULTS.config.nextHop);
  });

  it('fills in listener keys a listener leaves out', () => {
    expect(parseOk('listen:\n  - { port: 2525 }\n').listen).toEqual([{ ...DEFAULTS.items.listener, port: 2525 }]);
  });

  it('requires author alignment by default in policy.require', () => {
    expect(parseOk('policy:\n  require: [{ domain: example.bank }]\n').policy.require).toEqual([{ domain: 'example.bank', aligned: true }]);
  });

  it('hands out copies, never the frozen defaults', () => {
    const config = defaultConfig();
    config.relayHosts.push('10.0.0.0/8');
    config.limits.maxClients = 1;
    expect(defaultConfig().relayHosts).toEqual(['127.0.0.1/32', '::1/128']);
    expect(defaultConfig().limits.maxClients).toBe(500);
    expect(Object.isFrozen(DEFAULTS.config.limits)).toBe(true);
  });
});
