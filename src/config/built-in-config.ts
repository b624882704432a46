// The configuration dkimgate runs on when there is no config file: the defaults of interface.md §3, plus
// the demo domain example.test signed with a key (and a zone file) that `dkimgate serve` creates in var/demo/. Pure.

import type { Config } from './config.js';
import { defaultConfig } from './defaults.js';

/**
 * The quick-start demo. example.test is reserved (RFC 2606), so its demo key can never sign real mail;
 * everything it creates lives under var/ (ignored by git), so a demo key is never committed.
 */
export const DEMO = Object.freeze({
  domain: 'example.test',
  selector: 'demo',
  /** Only the demo domain uses this template; keys of configured domains stay in keys/. */
  keyTemplate: 'var/demo/%{d}/%{s}.pem',
  keyPath: 'var/demo/example.test/demo.pem',
  /** The demo key's TXT record, read through dns.zone_files. */
  zoneFile: 'var/demo/example.test.zone',
  /** Where the embedded next hop stores what it receives, one .eml file per message. */
  outboxDir: 'var/outbox',
});

/**
 * The built-in configuration. The demo zone file is listed only once it exists, so that `verify`,
 * `keycheck` and `doctor` on a fresh clone (before the first `serve` created it) still run.
 */
export function builtInConfig(opts: { demoZonePresent: boolean }): Config {
  const config = defaultConfig();
  config.sign.domains[DEMO.domain] = {
    baseDomain: null,
    signCondition: null,
    overrides: { key: DEMO.keyTemplate },
    selectors: [{ selector: DEMO.selector, overrides: {} }],
  };
  if (opts.demoZonePresent) config.dns.zoneFiles = [DEMO.zoneFile];
  return config;
}
