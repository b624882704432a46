// Byte-level fuzzing of every parser of untrusted or operator-written text: each returns a value or a
// reason and never throws, for random bytes, for the seed corpus (test/fixtures/fuzz-corpus/) and
// for corpus files mutated at random. Bounded in `npm test`; `npm run fuzz` runs longer (FUZZ_SECONDS).

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { findOurAuthResults, removeFields } from '../../src/auth-results/remove-auth-results.js';
import { checkDnsServer, checkHost, parseCidr, parseIpBytes } from '../../src/config/address-syntax.js';
import { defaultConfig } from '../../src/config/defaults.js';
import { checkIdentityTemplate, checkKeyTemplate, checkSelector, parseDomainName } from '../../src/config/dkim-syntax.js';
import { applyEnvironment } from '../../src/config/environment-overrides.js';
import { parseConfigText } from '../../src/config/parse-config-text.js';
import { parseHeaderList } from '../../src/dkim/header-selection.js';
import { parseKeyRecord } from '../../src/dkim/key-record.js';
import { RESULT_BY_REASON } from '../../src/dkim/results.js';
import { parseSignature } from '../../src/dkim/signature.js';
import { parseTagList } from '../../src/dkim/tag-list.js';
import type { TxtLookupOutcome } from '../../src/dkim/txt-lookup.js';
import { verifyMessage } from '../../src/dkim/verify.js';
import { parseServerAddress } from '../../src/dns/create-dns-resolver.js';
import { parseZoneFile } from '../../src/dns/zone-file.js';
import { addressDomain, authorDomains, firstAddress } from '../../src/mail/author-domains.js';
import { countHeaderFields, frameMessage } from '../../src/mail/header-fields.js';
import { LineEndingGuard } from '../../src/mail/line-ending-guard.js';
import { hasOnlyCrlf, toCrlf } from '../../src/mail/line-endings.js';
import { parseEhloCapabilities } from '../../src/relay/ehlo-capabilities.js';
import { createSmtpReplyParser, type SmtpReplyEvent } from '../../src/relay/smtp-reply.js';
import { parseUsersFile } from '../../src/smtp/users-file.js';
import { KeyLoadError, parsePrivateKeyPem } from '../../src/keys/load-private-key.js';
import { parseQueuedAs } from '../../src/observability/message-log.js';
import { fuzzParams, loadFuzzCorpus } from '../helpers/fuzz-budget.js';

const CORPUS = loadFuzzCorpus();
const REASONS = new Set(Object.keys(RESULT_BY_REASON));
const RESULTS = new Set(Object.values(RESULT_BY_REASON));
const AUTHSERV = 'gate.test.example';

/** What a parser made of one input; `check` throws (an expect) when the answer is not a value or a reason. */
type Target = { name: string; run: (bytes: Buffer) => void };

const text = (bytes: Buffer) => bytes.toString('latin1');
const utf8 = (bytes: Buffer) => bytes.toString('utf8');

function expectReason(reason: unknown): void {
  expect(typeof reason === 'string' && reason.length > 0, `reason ${String(reason)}`).toBe(true);
}

const TARGETS: Target[] = [
  {
    name: 'tag list',
    run: (bytes) => {
      const parsed = parseTagList(text(bytes));
      if (parsed.kind === 'ok') for (const name of parsed.tags.keys()) expect(name).toMatch(/^[A-Za-z][A-Za-z0-9_]*$/);
      else expect(['duplicate_tag', 'bad_tag_syntax']).toContain(parsed.reason);
    },
  },
  {
    name: 'DKIM-Signature field',
    run: (bytes) => {
      const parsed = parseSignature(text(bytes));
      if (parsed.kind === 'error') expect(REASONS.has(parsed.reason), parsed.reason).toBe(true);
      else expect(parsed.signature.signedHeaders.length).toBeGreaterThan(0);
    },
  },
  {
    name: 'key record',
    run: (bytes) => {
      const parsed = parseKeyRecord(text(bytes));
      if (parsed.kind === 'error') expect(REASONS.has(parsed.reason), parsed.reason).toBe(true);
      else expect(parsed.key.keyBits).toBeGreaterThan(0);
    },
  },
  {
    name: 'header framing',
    run: (bytes) => {
      const framed = frameMessage(bytes);
      let at = 0;
      for (const f of framed.fields) {
        expect(f.start).toBe(at);
        expect(f.end).toBeGreaterThan(f.start);
        at = f.end;
      }
      expect(at).toBe(framed.headerBytes);
      expect(framed.bodyStart).toBeLessThanOrEqual(bytes.length);
      // The cheap count that guards max_header_fields must agree with framing.
      expect(countHeaderFields(bytes, framed.fields.length + 1)).toBe(framed.fields.length);
      for (const domain of authorDomains(framed)) if (domain !== null) expect(typeof domain).toBe('string');
    },
  },
  {
    name: 'Authentication-Results removal',
    run: (bytes) => {
      const framed = frameMessage(bytes);
      const ours = findOurAuthResults(framed.fields, bytes, AUTHSERV);
      for (const f of ours) expect(f.hasName('authentication-results')).toBe(true);
      const kept = Buffer.concat(removeFields(bytes, ours));
      expect(kept.length).toBe(bytes.length - ours.reduce((n, f) => n + f.end - f.start, 0));
    },
  },
  {
    name: 'zone file',
    run: (bytes) => {
      const parsed = parseZoneFile(utf8(bytes), { fileName: 'fuzz.zone' });
      if (parsed.kind === 'error') {
        expect(parsed.message).not.toMatch(/internal zone parser error/);
        expect(parsed.line).toBeGreaterThanOrEqual(0);
      } else {
        for (const r of parsed.records) for (const s of r.strings) expect(s.length).toBeLessThanOrEqual(255);
      }
    },
  },
  {
    name: 'configuration YAML',
    run: (bytes) => {
      const parsed = parseConfigText(utf8(bytes), 'fuzz.yaml');
      if (parsed.kind === 'error') {
        expect(parsed.problems.length).toBeGreaterThan(0);
        for (const p of parsed.problems) {
          expectReason(p.message);
          expect(Number.isInteger(p.line)).toBe(true);
        }
      }
    },
  },
  {
    name: 'next-hop SMTP replies and EHLO capabilities',
    run: (bytes) => {
      const whole = createSmtpReplyParser().push(bytes);
      checkReplies(whole);
      // Chunking must not change what is parsed (up to the first garbled event, which ends parsing).
      const split = createSmtpReplyParser();
      const chunked: SmtpReplyEvent[] = [];
      for (let i = 0; i < bytes.length; i += 7) chunked.push(...split.push(bytes.subarray(i, i + 7)));
      expect(stripGarbledDetail(chunked)).toEqual(stripGarbledDetail(whole));
    },
  },
  {
    name: 'users file',
    run: (bytes) => {
      const parsed = parseUsersFile(utf8(bytes), 'fuzz.users');
      if (parsed.kind === 'error') parsed.problems.forEach(expectReason);
    },
  },
  {
    name: 'headerlist',
    run: (bytes) => {
      const parsed = parseHeaderList(text(bytes));
      if (parsed.kind === 'error') expectReason(parsed.reason);
      else expect(parsed.entries.some((e) => e.lowerName === 'from')).toBe(true);
    },
  },
  {
    name: 'addresses, domains, CIDR blocks and resolvers',
    run: (bytes) => {
      const value = utf8(bytes);
      const address = firstAddress(value);
      if (address !== null) addressDomain(address);
      for (const parsed of [parseCidr(value), parseDomainName(value), parseServerAddress(value)]) {
        if (parsed.kind === 'error') expectReason(parsed.reason);
      }
      for (const problem of [checkDnsServer(value), checkHost(value), checkSelector(value), checkKeyTemplate(value), checkIdentityTemplate(value)]) {
        if (problem !== null) expectReason(problem);
      }
      const ip = parseIpBytes(value);
      if (ip !== null) expect([4, 16]).toContain(ip.length);
    },
  },
  {
    name: "next hop's queue id in its 250 reply",
    run: (bytes) => {
      const id = parseQueuedAs(utf8(bytes));
      if (id !== null) expect(id.length).toBeGreaterThan(0);
    },
  },
  {
    // A key file is the operator's, read at start-up: a bad one is a KeyLoadError naming the file, nothing else.
    name: 'private key PEM',
    run: (bytes) => {
      for (const pem of [utf8(bytes), `-----BEGIN PRIVATE KEY-----\n${utf8(bytes)}\n-----END PRIVATE KEY-----\n`]) {
        try {
          parsePrivateKeyPem(pem, 'fuzz.pem');
        } catch (error) {
          expect(error).toBeInstanceOf(KeyLoadError);
          expect((error as Error).message).toContain('fuzz.pem');
        }
      }
    },
  },
  {
    name: 'environment overrides',
    run: (bytes) => {
      const value = utf8(bytes);
      const env = {
        DKIMGATE_LISTEN: value,
        DKIMGATE_NEXT_HOP: value,
        DKIMGATE_RELAY_HOSTS: value,
        DKIMGATE_DNS_SERVERS: value,
        DKIMGATE_METRICS: value,
        DKIMGATE_AUTHSERV_ID: value,
        DKIMGATE_SIGN_KEY: value,
        DKIMGATE_NOT_A_SETTING: value,
      };
      const applied = applyEnvironment(defaultConfig(), env);
      if (applied.kind === 'error') applied.problems.forEach((p) => expectReason(p.message));
    },
  },
  {
    name: 'line endings (guard and conversion)',
    run: (bytes) => {
      for (const policy of ['normalize', 'reject'] as const) {
        const guard = new LineEndingGuard(policy);
        const out: Buffer[] = [];
        let refused = false;
        for (let i = 0; i < bytes.length && !refused; i += 5) {
          const step = guard.write(bytes.subarray(i, i + 5));
          if (step.kind === 'refused') refused = true;
          else out.push(step.chunk);
        }
        const last = refused ? null : guard.end();
        if (last?.kind === 'ok') out.push(last.chunk);
        if (!refused && last?.kind === 'ok') expect(hasOnlyCrlf(Buffer.concat(out))).toBe(true);
      }
      expect(hasOnlyCrlf(toCrlf(bytes))).toBe(true);
    },
  },
];

function checkReplies(events: SmtpReplyEvent[]): void {
  for (const e of events) {
    if (e.kind === 'garbled') expectReason(e.detail);
    else {
      expect(e.reply.code).toBeGreaterThanOrEqual(200);
      expect(e.reply.code).toBeLessThanOrEqual(599);
      expect(e.reply.text).not.toMatch(/[\x00-\x1f\x7f]/);
      const caps = parseEhloCapabilities(e.reply);
      expect(caps.authMechanisms.length).toBeLessThanOrEqual(32);
      if (caps.maxSizeBytes !== null) expect(Number.isSafeInteger(caps.maxSizeBytes)).toBe(true);
    }
  }
}

function stripGarbledDetail(events: SmtpReplyEvent[]): unknown[] {
  return events.map((e) => (e.kind === 'garbled' ? 'garbled' : e.reply));
}

/** Random bytes; corpus files as they are, cut, or with random bytes spliced in; short lines of DKIM-ish tokens. */
const corpusFile = fc.constantFrom(...CORPUS.map((c) => c.bytes));
const fuzzInput: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 3, arbitrary: fc.uint8Array({ maxLength: 512 }).map((a) => Buffer.from(a)) },
  { weight: 2, arbitrary: corpusFile },
  {
    weight: 4,
    arbitrary: fc
      .tuple(corpusFile, fc.nat(), fc.nat(), fc.uint8Array({ maxLength: 64 }))
      .map(([file, at, cut, insert]) => {
        const i = file.length === 0 ? 0 : at % file.length;
        const j = Math.min(file.length, i + (cut % 64));
        return Buffer.concat([file.subarray(0, i), Buffer.from(insert), file.subarray(j)]);
      }),
  },
  {
    weight: 3,
    arbitrary: fc
      .array(fc.constantFrom('\r\n', '\n', '\r', ' ', '\t', ':', ';', '=', '"', '\\', '(', ')', '[', ']', '{', '}', '&a', '*a', '- ', '250', '-', '2.0.0', 'From', 'DKIM-Signature', 'v=1', 'b=', 'p=', 'h=', '@', '.', 'x', '\0', '\xff', '$ORIGIN', 'TXT', 'IN'), { maxLength: 200 })
      .map((parts) => Buffer.from(parts.join(''), 'latin1')),
  },
);

describe('every parser returns a value or a reason for the seed corpus', () => {
  it.each(TARGETS.map((t) => [t.name, t] as const))('%s', (_name, target) => {
    for (const { name, bytes } of CORPUS) {
      try {
        target.run(bytes);
      } catch (error) {
        throw new Error(`corpus file ${name}: ${(error as Error).message}`);
      }
    }
  });
});

describe('every parser returns a value or a reason for random and mutated bytes', () => {
  it.each(TARGETS.map((t) => [t.name, t] as const))('%s', (_name, target) => {
    fc.assert(
      fc.property(fuzzInput, (bytes) => target.run(bytes)),
      fuzzParams(300),
    );
  });

  it('verification gives one verdict per DKIM-Signature field, whatever the bytes and DNS answers', async () => {
    const answers: TxtLookupOutcome[] = [
      { kind: 'nxdomain' },
      { kind: 'timeout' },
      { kind: 'servfail' },
      { kind: 'too_large', bytes: 70_000 },
      { kind: 'found', records: ['v=DKIM1; p=!!'] },
      { kind: 'found', records: [] },
    ];
    await fc.assert(
      fc.asyncProperty(fuzzInput, fc.constantFrom(...answers), async (bytes, answer) => {
        const message = toCrlf(bytes);
        const report = await verifyMessage(message, { lookupTxt: async () => answer, nowSec: 1_700_000_000 });
        const fields = frameMessage(message).fields.filter((f) => f.hasName('dkim-signature'));
        expect(report.signatures).toHaveLength(fields.length);
        for (const v of report.signatures) {
          expect(RESULTS.has(v.result)).toBe(true);
          if (v.reason !== null) expect(REASONS.has(v.reason)).toBe(true);
        }
      }),
      fuzzParams(200),
    );
  });
});
