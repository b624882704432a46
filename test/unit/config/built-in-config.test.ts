import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { builtInConfig, DEMO } from '../../../src/config/built-in-config.js';
import { defaultConfig } from '../../../src/config/defaults.js';
import { parseConfigText } from '../../../src/config/parse-config-text.js';
import { resolveSigningSelectors } from '../../../src/config/resolve-signing-selectors.js';

describe('the built-in configuration (no config file)', () => {
  it('listens on 127.0.0.1:10027 and relays to 127.0.0.1:10026, as interface.md §1 says', () => {
    const config = builtInConfig({ demoZonePresent: true });
    expect(config.listen.map((l) => `${l.host}:${l.port}`)).toEqual(['127.0.0.1:10027']);
    expect(config.nextHop).toEqual({ host: '127.0.0.1', port: 10026, tls: 'none', auth: null, caFile: null });
  });

  it('is the defaults plus the demo domain, signed from var/demo/ and resolved through the demo zone file', () => {
    const config = builtInConfig({ demoZonePresent: true });
    const { sign, dns, ...rest } = config;
    const { sign: defaultSign, dns: defaultDns, ...defaultRest } = defaultConfig();
    expect(rest).toEqual(defaultRest);
    expect({ ...sign, domains: {} }).toEqual(defaultSign);
    expect(dns).toEqual({ ...defaultDns, zoneFiles: ['var/demo/example.test.zone'] });
    expect(resolveSigningSelectors(config)).toEqual([
      expect.objectContaining({ fromDomain: 'example.test', signingDomain: 'example.test', selector: 'demo', keyPath: DEMO.keyPath, algorithm: 'rsa-sha256' }),
    ]);
  });

  it('lists the demo zone file only once it exists, so commands on a fresh clone still run', () => {
    expect(builtInConfig({ demoZonePresent: false }).dns.zoneFiles).toEqual([]);
  });

  it('is never what a config file yields: an empty file signs nothing and reads no zone file', () => {
    const parsed = parseConfigText('', 'dkimgate.yaml');
    if (parsed.kind !== 'ok') throw new Error('the empty file must parse');
    expect(parsed.config.sign.domains).toEqual({});
    expect(parsed.config.dns.zoneFiles).toEqual([]);
  });

  it('keeps the demo key, its zone and the outbox where git ignores them, so a demo key is never committed', () => {
    const repo = fileURLToPath(new URL('../../..', import.meta.url));
    for (const path of [DEMO.keyPath, DEMO.zoneFile, `${DEMO.outboxDir}/x.eml`]) {
      const r = spawnSync('git', ['check-ignore', '--no-index', '-q', path], { cwd: repo });
      expect(r.error, 'git is needed to check .gitignore').toBeUndefined();
      expect(r.status, `${path} must be ignored by git`).toBe(0);
    }
  });
});
