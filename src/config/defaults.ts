// The one home of every configuration default (interface.md §3): the whole config, and list items.
// Reads the host name once at import for authserv_id; touches nothing else.

import { hostname } from 'node:os';
import type { Config, ListenerConfig, RequireRule } from './config.js';

/** Defaults for list entries: keys an entry leaves out take these values. */
export interface ItemDefaults {
  listener: ListenerConfig;
  requireRule: Omit<RequireRule, 'domain'>;
}

const LISTENER_DEFAULTS: ListenerConfig = {
  host: '127.0.0.1',
  port: 10027,
  protocol: 'smtp',
  tls: null,
  relayHosts: null,
  xforwardHosts: null,
  allowInsecureAuth: false,
  lineEndings: 'normalize',
};

/** Every default, in one frozen object. `config` is what an empty file yields. */
export const DEFAULTS: Readonly<{ config: Readonly<Config>; items: Readonly<ItemDefaults> }> = deepFreeze({
  config: {
    authservId: hostname(),
    // The default listener is the list-item default: one listener with every key defaulted.
    listen: [LISTENER_DEFAULTS],
    nextHop: { host: '127.0.0.1', port: 10026, tls: 'none', caFile: null, auth: null },
    relayHosts: ['127.0.0.1/32', '::1/128'],
    xforwardHosts: [],
    usersFile: null,
    limits: {
      maxMessageSize: 52_428_800,
      maxHeaderSize: 1_048_576,
      maxHeaderFields: 1000,
      maxClients: 500,
      socketTimeout: 300,
      // An hour: far above a real session (Postfix reuses a connection for at most 300 s), and a
      // client that keeps a session alive by dribbling commands still ends.
      sessionTimeout: 3600,
      // Postfix's smtpd_min_data_rate: a 56k modem sends ten times this.
      minDataRate: 500,
      dataRateWindow: 30,
      // Postfix's smtpd_recipient_limit; RFC 5321 §4.5.3.1.8 asks for at least 100.
      maxRecipients: 1000,
      maxAuthFailures: 5,
      authFailureWindow: 300,
      nextHopTimeout: 120,
      drainTimeout: 60,
      spillThreshold: 262_144,
      spoolDir: null,
    },
    verify: { enabled: true, maxSignatures: 5, minKeyBits: 1024, allowSha1: false, clockSkew: 300 },
    policy: { onTemperror: 'accept', require: [], dryRun: false },
    sign: {
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
      domains: {},
    },
    dns: { servers: [], zoneFiles: [], timeout: 5000, cacheSize: 2048, cacheTtl: 300, negativeTtl: 3600 },
    metrics: null,
  },
  items: {
    listener: LISTENER_DEFAULTS,
    // Default aligned: a require rule exists to stop spoofing of the author domain, and a passing
    // signature from any other domain (a list, a forwarder) does not do that.
    requireRule: { aligned: true },
  },
});

/** The configuration used when there is no file: the defaults, as a fresh mutable copy. */
export function defaultConfig(): Config {
  return structuredClone(DEFAULTS.config) as Config;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
