// The YAML configuration schema (interface.md §3, Momentum dkim_sign names): the single source for
// validation (parse-config-text.ts) and the editor JSON Schema (json-schema.ts). Pure data.

import { parseHeaderList } from '../dkim/header-selection.js';
import { MAX_LIFETIME_HOURS } from '../dkim/sign.js';
import { MAX_RSA_KEY_BITS } from '../dkim/key-record.js';
import { checkDnsServer, checkHost, parseCidr } from './address-syntax.js';
import { DEFAULTS } from './defaults.js';
import {
  checkIdentityTemplate,
  checkKeyTemplate,
  checkSelector,
  normalizeIdentity,
  parseDomainName,
} from './dkim-syntax.js';
import type { ListNode, ObjectNode, SchemaNode, StringNode } from './schema-node.js';

/** A host name (RFC 1035: 253 characters, 254 with a final dot) fits. */
export const MAX_AUTHSERV_ID_CHARS = 255;

const text = (description: string, extra: Omit<StringNode, 'kind'> = {}): StringNode => ({
  kind: 'string',
  description,
  ...extra,
});

const port = (description: string, min: number): SchemaNode => ({ kind: 'integer', min, max: 65535, description });

const seconds = (description: string, exclusiveMin = true): SchemaNode => ({
  kind: 'number',
  min: 0,
  exclusiveMin,
  description: `${description} (seconds)`,
});

const domainName = (description: string): StringNode =>
  text(description, {
    check: (value) => {
      const parsed = parseDomainName(value);
      return parsed.kind === 'ok' ? null : parsed.reason;
    },
    normalize: (value) => {
      const parsed = parseDomainName(value);
      return parsed.kind === 'ok' ? parsed.domain : value;
    },
  });

const cidrList = (description: string): ListNode => ({
  kind: 'list',
  description,
  item: text('IPv4 or IPv6 address or CIDR block, e.g. 192.0.2.0/24 or "2001:db8::/32"', {
    check: (value) => {
      const parsed = parseCidr(value);
      return parsed.kind === 'ok' ? null : parsed.reason;
    },
    normalize: (value) => {
      const parsed = parseCidr(value);
      return parsed.kind === 'ok' ? parsed.cidr.text : value;
    },
  }),
});

const host = (description: string): StringNode => text(description, { check: checkHost });

const filePath = (description: string): StringNode => text(description);

/** The highest verify.max_signatures (and --max-signatures): each evaluated signature may cost a DNS lookup and an RSA operation. */
export const MAX_SIGNATURES_LIMIT = 1000;

export const SIGN_DIGESTS = ['rsa-sha256', 'rsa-sha1', 'ed25519-sha256'] as const;
export const CANONICALIZATIONS = ['relaxed', 'simple'] as const;
export const SIGN_CONDITIONS = ['can_relay', 'auth_user'] as const;

/** The options a domain (dk_domain) or a single selector entry may override. */
const SIGN_OPTION_FIELDS: Readonly<Record<string, SchemaNode>> = {
  digest: { kind: 'enum', values: SIGN_DIGESTS, description: 'Signature algorithm (a=). ed25519-sha256 needs an Ed25519 key (RFC 8463).' },
  header_canon: { kind: 'enum', values: CANONICALIZATIONS, description: 'Header canonicalization.' },
  body_canon: { kind: 'enum', values: CANONICALIZATIONS, description: 'Body canonicalization.' },
  headerlist: text(
    'Colon-separated header fields to sign (h=); suffix ? signs one copy without asserting absence, * signs all and asserts absence, + signs all without asserting. List a name twice to oversign. Must include From.',
    {
      check: (value) => {
        const parsed = parseHeaderList(value);
        return parsed.kind === 'ok' ? null : parsed.reason;
      },
      normalize: (value) => {
        const parsed = parseHeaderList(value);
        return parsed.kind === 'ok' ? parsed.normalized : value;
      },
    },
  ),
  key: text('Private key file (PEM); %{d} expands to the signing domain, %{s} to the selector. Relative to the working directory.', {
    check: checkKeyTemplate,
  }),
  identity: {
    kind: 'nullable',
    description: 'Agent or user identifier (i=), e.g. @example.com or @%{d}; null for none.',
    inner: text('i= value', { check: checkIdentityTemplate, normalize: normalizeIdentity }),
  },
  lifetime: { kind: 'number', min: 0, max: MAX_LIFETIME_HOURS, description: `Hours until the signature expires (x=); 0 for no x=; at most ${MAX_LIFETIME_HOURS} (ten years).` },
  body_length_limit: { kind: 'boolean', description: 'Add the signed body length (l=). Discouraged: RFC 6376 §8.2.' },
  copy_headers: { kind: 'boolean', description: 'Copy the signed header fields into z= (debugging).' },
};

const selectorName: StringNode = text('DKIM selector (s=): the key is published at <selector>._domainkey.<domain>.', {
  check: checkSelector,
  numbersAsText: true,
  pattern: '^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$',
});

const SELECTOR_ENTRY: ObjectNode = {
  kind: 'object',
  description: 'A selector with its own overrides of the sign options.',
  fields: { selector: selectorName, ...SIGN_OPTION_FIELDS },
  required: ['selector'],
};

/**
 * One signing domain (Momentum dk_domain). Either one selector or several signed side by side:
 *
 *   example.com: { selector: s2026 }
 *   example.net:
 *     selectors:                       # one DKIM-Signature per entry, in this order
 *       - rsa2026                      # inherits every option
 *       - { selector: ed2026, digest: ed25519-sha256 }
 *   mail.example.org: { selector: s1, base_domain: example.org }   # d=example.org
 *
 * Any sign option set here applies to all of the domain's selectors; an entry of `selectors`
 * may override it again. base_domain and sign_condition are per domain only.
 */
const DOMAIN_ENTRY: ObjectNode = {
  kind: 'object',
  description: 'A signing domain: `selector` or `selectors`, optional base_domain, and any sign option overridden.',
  fields: {
    selector: selectorName,
    selectors: {
      kind: 'list',
      minItems: 1,
      description: 'Several selectors signed side by side (e.g. RSA and Ed25519), each may override sign options.',
      item: { kind: 'union', scalar: selectorName, object: SELECTOR_ENTRY },
    },
    base_domain: domainName('Sign as this (parent) domain: d= and %{d} become it.'),
    sign_condition: { kind: 'enum', values: SIGN_CONDITIONS, description: 'Overrides sign.sign_condition for this domain.' },
    ...SIGN_OPTION_FIELDS,
  },
  exactlyOneOf: ['selector', 'selectors'],
};

const LISTENER: ObjectNode = {
  kind: 'object',
  description: 'An SMTP or LMTP listener.',
  defaults: DEFAULTS.items.listener,
  fields: {
    host: host('Address to bind.'),
    port: port('TCP port (0: any free port).', 0),
    protocol: { kind: 'enum', values: ['smtp', 'lmtp'], description: 'smtp or lmtp (LMTP answers per recipient).' },
    tls: {
      kind: 'nullable',
      description: 'Offer STARTTLS with this key and certificate.',
      inner: {
        kind: 'object',
        fields: { key: filePath('PEM private key file.'), cert: filePath('PEM certificate chain file.') },
        required: ['key', 'cert'],
      },
    },
    relay_hosts: { kind: 'nullable', inner: cidrList('Overrides the global relay_hosts on this listener.') },
    xforward_hosts: { kind: 'nullable', inner: cidrList('Overrides the global xforward_hosts on this listener.') },
    allow_insecure_auth: { kind: 'boolean', description: 'Offer AUTH before STARTTLS (loopback only, please).' },
    line_endings: {
      kind: 'enum',
      values: ['normalize', 'reject'],
      description: 'Bare LF: turned into CRLF (normalize) or refused with 550 5.5.2 (reject). A bare CR or NUL is always refused.',
    },
  },
};

/** The whole file. Keys are snake_case; the decoded Config is camelCase. */
export const CONFIG_SCHEMA: ObjectNode = {
  kind: 'object',
  description: 'dkimgate configuration (DKIM signing and verifying SMTP/LMTP filter).',
  defaults: DEFAULTS.config,
  fields: {
    authserv_id: text('authserv-id of our Authentication-Results fields (RFC 8601). Default: the host name.', {
      numbersAsText: true,
      check: (value) =>
        // RFC 2045 token: no spaces, controls or tspecials; at most a host name's length, so our field's
        // first line stays far below the 998 characters a header line may have (RFC 5322 §2.1.1).
        value.length > MAX_AUTHSERV_ID_CHARS
          ? `is ${value.length} characters long: an authserv-id is a host name, at most ${MAX_AUTHSERV_ID_CHARS} characters`
          : /^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+$/.test(value)
            ? null
            : `"${value}" is not a valid authserv-id; use a host name such as mx.example.net`,
    }),
    listen: { kind: 'list', minItems: 1, item: LISTENER, description: 'One or more listeners.' },
    next_hop: {
      kind: 'object',
      description: 'Where accepted mail is relayed.',
      fields: {
        host: host('Next hop host.'),
        port: port('Next hop port.', 1),
        tls: { kind: 'enum', values: ['none', 'starttls', 'implicit'], description: 'TLS to the next hop.' },
        ca_file: {
          kind: 'nullable',
          description: "PEM file of the CA certificates the next hop's certificate is checked against (default: the system's).",
          inner: text('file'),
        },
        auth: {
          kind: 'nullable',
          description: 'SMTP AUTH credentials for the next hop.',
          inner: {
            kind: 'object',
            fields: { user: text('User name.', { numbersAsText: true }), pass: text('Password.', { numbersAsText: true }) },
            required: ['user', 'pass'],
          },
        },
      },
    },
    relay_hosts: cidrList('Clients that can_relay (CIDR blocks).'),
    xforward_hosts: cidrList('Proxies (e.g. Postfix) whose XFORWARD is trusted.'),
    users_file: {
      kind: 'nullable',
      description: 'SMTP AUTH users: htpasswd file with bcrypt hashes (htpasswd -B).',
      inner: filePath('htpasswd file'),
    },
    limits: {
      kind: 'object',
      description: 'Resource limits.',
      fields: {
        max_message_size: { kind: 'integer', min: 1, max: Number.MAX_SAFE_INTEGER, description: 'Bytes, advertised as SIZE; over it: 552 5.3.4.' },
        max_header_size: { kind: 'integer', min: 1, max: Number.MAX_SAFE_INTEGER, description: 'Bytes of header section; over it: 552 5.3.4.' },
        max_header_fields: {
          kind: 'integer',
          min: 1,
          max: 1_000_000,
          description: 'Header fields per message (a 1 MB header of tiny fields holds 250,000); over it: 552 5.3.4.',
        },
        max_clients: { kind: 'integer', min: 1, max: 1_000_000, description: 'Concurrent connections; over it: 421 4.7.0.' },
        socket_timeout: seconds('Client silence before 421 4.4.2'),
        session_timeout: seconds('Longest client session; then 421 4.4.2'),
        min_data_rate: { kind: 'integer', min: 0, max: 1_000_000_000, description: 'Bytes per second a client must send while it is in the middle of a command line or a message, measured over data_rate_window; slower: 421 4.4.2 (0: no floor).' },
        data_rate_window: seconds('Period over which min_data_rate is measured'),
        max_recipients: { kind: 'integer', min: 1, max: 1_000_000, description: 'Recipients per transaction; past it: 452 4.5.3.' },
        max_auth_failures: { kind: 'integer', min: 1, max: 1_000_000, description: 'Failed AUTH attempts per client address within auth_failure_window; then 421 4.7.0 until the window passes.' },
        auth_failure_window: seconds('Time a failed AUTH attempt counts against its client address'),
        next_hop_timeout: seconds('Time for the next hop to answer any command'),
        drain_timeout: seconds('Time SIGTERM waits for transactions in flight', false),
        spill_threshold: { kind: 'integer', min: 0, max: Number.MAX_SAFE_INTEGER, description: 'Bodies over this many bytes are spooled to a temporary file.' },
        spool_dir: { kind: 'nullable', description: 'Directory for spool files (default: the system temporary directory).', inner: text('directory') },
      },
    },
    verify: {
      kind: 'object',
      description: 'Verification of mail that is not signed here.',
      fields: {
        enabled: { kind: 'boolean', description: 'Verify and add Authentication-Results.' },
        max_signatures: { kind: 'integer', min: 1, max: MAX_SIGNATURES_LIMIT, description: 'Signatures evaluated per message, from the top; the rest are dkim=neutral.' },
        // Bounded by the largest key verified: a higher minimum would refuse every RSA signature.
        min_key_bits: {
          kind: 'integer',
          min: 512,
          max: MAX_RSA_KEY_BITS,
          description: `Smaller RSA keys yield dkim=policy (RFC 8301); keys over ${MAX_RSA_KEY_BITS} bits always do.`,
        },
        allow_sha1: { kind: 'boolean', description: 'Accept rsa-sha1 signatures (RFC 8301 says no).' },
        clock_skew: seconds('Allowed future t=', false),
      },
    },
    policy: {
      kind: 'object',
      description: 'What to do with verified mail.',
      fields: {
        on_temperror: { kind: 'enum', values: ['accept', 'tempfail'], description: 'tempfail answers 451 4.7.5 on DNS failure.' },
        require: {
          kind: 'list',
          description: 'Author domains whose mail must carry a passing signature (RFC 7372 codes 5.7.20-22).',
          item: {
            kind: 'object',
            defaults: DEFAULTS.items.requireRule,
            fields: {
              domain: domainName('Author (From) domain.'),
              aligned: { kind: 'boolean', description: 'The passing signature must be author-aligned: d= is the From domain or a parent of it, never a subdomain or a bare TLD (default true).' },
            },
            required: ['domain'],
          },
        },
        dry_run: { kind: 'boolean', description: 'Log and count what would be rejected; reject nothing.' },
      },
    },
    sign: {
      kind: 'object',
      description: 'Signing (Momentum dkim_sign options).',
      fields: {
        sign_condition: { kind: 'enum', values: SIGN_CONDITIONS, description: 'auth_user (SMTP AUTH) or can_relay (relay host; auth_user implies it).' },
        ...SIGN_OPTION_FIELDS,
        domains: {
          kind: 'map',
          keyName: 'domain',
          description: 'Signing domains (dk_domain), keyed by From domain.',
          checkKey: (key) => {
            const parsed = parseDomainName(key);
            return parsed.kind === 'ok' ? null : parsed.reason;
          },
          normalizeKey: (key) => {
            const parsed = parseDomainName(key);
            return parsed.kind === 'ok' ? parsed.domain : key;
          },
          value: DOMAIN_ENTRY,
        },
      },
    },
    dns: {
      kind: 'object',
      description: 'Key lookups.',
      fields: {
        servers: {
          kind: 'list',
          description: 'Resolvers instead of the system ones, asked in turn within timeout, e.g. ["127.0.0.1:5353", "[::1]:53"].',
          item: text('IP[:PORT] or [IPv6]:PORT', { check: checkDnsServer }),
        },
        zone_files: { kind: 'list', description: 'Static TXT records in master-file form, answered first.', item: filePath('zone file') },
        timeout: { kind: 'integer', min: 1, max: 600_000, description: 'Milliseconds per lookup, shared by all the resolvers.' },
        cache_size: { kind: 'integer', min: 0, max: 10_000_000, description: 'Keys cached (0: no cache).' },
        cache_ttl: seconds('Longest time a found key is cached', false),
        negative_ttl: seconds('Time a missing key is cached', false),
      },
    },
    metrics: {
      kind: 'nullable',
      description: 'Prometheus /metrics and /healthz over HTTP; null: off.',
      inner: {
        kind: 'object',
        fields: { host: host('Address to bind.'), port: port('TCP port (0: any free port).', 0) },
        required: ['host', 'port'],
      },
    },
  },
};
