import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatAuthResults } from '../../../src/auth-results/format-auth-results.js';
import { canonicalizeHeaderRelaxed } from '../../../src/dkim/canonicalize-header.js';
import { parseHeaderList } from '../../../src/dkim/header-selection.js';
import { parseKeyRecord } from '../../../src/dkim/key-record.js';
import { RESULT_BY_REASON, type DkimResult, type VerifyReason } from '../../../src/dkim/results.js';
import { parseSignature } from '../../../src/dkim/signature.js';
import { withEmptyB } from '../../../src/dkim/signature-field.js';
import { parseTagList } from '../../../src/dkim/tag-list.js';
import type { TxtLookup, TxtLookupOutcome } from '../../../src/dkim/txt-lookup.js';
import { verifyMessage, type SignatureVerdict, type VerifyReport } from '../../../src/dkim/verify.js';
import { frameMessage } from '../../../src/mail/header-fields.js';
import { hasOnlyCrlf, toCrlf } from '../../../src/mail/line-endings.js';
import { BASIC_MESSAGE, crlf, ed25519Key, edit, NOW, rsaKey, sign, tableLookup, type TestKey } from '../../helpers/dkim-test-kit.js';

let rsa: TestKey;
let ed: TestKey;
let signedRsa: Buffer;
let signedEd: Buffer;

beforeAll(async () => {
  rsa = rsaKey(1024);
  ed = ed25519Key();
  signedRsa = await sign(BASIC_MESSAGE, rsa, { selector: 'rsa' });
  signedEd = await sign(BASIC_MESSAGE, ed, { selector: 'ed' });
});

const REASONS = new Set(Object.keys(RESULT_BY_REASON));
const latin1 = (bytes: Uint8Array) => Buffer.from(bytes).toString('latin1');

/** Any text: full Unicode strings, and byte strings read as latin1 (how the engine reads header text). */
const anyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.uint8Array({ maxLength: 200 }).map(latin1),
  fc.string({ unit: fc.constantFrom(';', '=', ' ', '\t', '\r', '\n', '\r\n', ':', 'a', 'b', 'h', 'p', 'v', '1', '/', '+', '\xa0'), maxLength: 100 }),
);

const fws = fc.constantFrom('', '', ' ', '\t', '\r\n ', ' \r\n\t ');
/** `tag=value;` soups with valid-looking and broken tags, FWS, duplicates and junk segments. */
function tagSoup(names: string[], values: fc.Arbitrary<string>): fc.Arbitrary<string> {
  const tag = fc.oneof(
    { weight: 8, arbitrary: fc.tuple(fws, fc.constantFrom(...names), fws, fws, values, fws).map(([a, n, b, c, v, d]) => `${a}${n}${b}=${c}${v}${d}`) },
    { weight: 1, arbitrary: fc.tuple(fc.string({ maxLength: 6 }), values).map(([n, v]) => `${n}=${v}`) },
    { weight: 1, arbitrary: fc.constantFrom('', ' ', 'junk', '=', '==', '9x=1', 'a b=c') },
  );
  return fc.tuple(fc.array(tag, { maxLength: 14 }), fc.boolean()).map(([tags, trailing]) => tags.join(';') + (trailing ? ';' : ''));
}

const B64_32 = Buffer.alloc(32, 1).toString('base64');
const B64_128 = Buffer.alloc(128, 2).toString('base64');
const sigValue = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('1', 'rsa-sha256', 'ed25519-sha256', 'rsa-sha1', 'relaxed/relaxed', 'simple', 'relaxed/', 'example.com', 'EXAMPLE.com', 'bad_d', 'rsa', 'ed', 's1') },
  { weight: 3, arbitrary: fc.constantFrom('From', 'From:To', 'from:FROM:subject', 'From : \r\n To', '', ':', '@example.com', 'a@sub.example.com', '@evil.example', 'x') },
  { weight: 3, arbitrary: fc.constantFrom('0', '5', `${NOW}`, `${NOW + 10 ** 6}`, '999999999999999', '1'.repeat(20), '-1', 'dns/txt', 'dns', B64_32, B64_128, 'AAAA', '!!', '', '==', 'A') },
  { weight: 2, arbitrary: anyText },
);
const signatureSoup = tagSoup(['v', 'a', 'b', 'bh', 'c', 'd', 'h', 'i', 'l', 'q', 's', 't', 'x', 'z'], sigValue);

const keyValue = fc.oneof(
  fc.constantFrom('DKIM1', 'DKIM2', 'rsa', 'ed25519', 'RSA', 'dsa', 'sha256', 'sha1:sha256', 'email', '*', 'y', 's', 'y:s', '', 'AAAA', '!!', 'AAAAA'),
  fc.constantFrom('RSAKEY', 'EDKEY'),
  fc.base64String({ maxLength: 400 }),
  anyText,
);
// Real keys are substituted for the placeholders once the test keys exist.
const keySoup = tagSoup(['v', 'k', 'p', 'h', 's', 't', 'n'], keyValue).map((s) => () => s.replace(/RSAKEY/g, rsa.p).replace(/EDKEY/g, ed.p));

describe('parsers return a value or a reason and never throw', () => {
  it('parseTagList returns tags or a reason for any text and any tag soup', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, signatureSoup), (text) => {
        const parsed = parseTagList(text);
        if (parsed.kind === 'ok') {
          for (const name of parsed.tags.keys()) expect(name).toMatch(/^[A-Za-z][A-Za-z0-9_]*$/);
        } else {
          expect(['duplicate_tag', 'bad_tag_syntax']).toContain(parsed.reason);
          expect(parsed.detail).toMatch(/^[\x20-\x7e…]*$/);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('parseSignature returns a signature or a reason for any text and any DKIM-Signature soup', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, signatureSoup, signatureSoup), (text) => {
        const parsed = parseSignature(text);
        expect(parsed.labels).toBeTypeOf('object');
        if (parsed.kind === 'error') {
          expect(REASONS.has(parsed.reason)).toBe(true);
          expect(parsed.detail).toMatch(/^[\x20-\x7e…]*$/);
        } else {
          expect(parsed.signature.signedHeaders.length).toBeGreaterThan(0);
          expect(parsed.signature.headerB).toBe(parsed.labels.headerB);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('parseKeyRecord returns a key or a reason for any text and any key record soup', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, keySoup.map((f) => f()), keySoup.map((f) => f())), (text) => {
        const parsed = parseKeyRecord(text);
        if (parsed.kind === 'error') {
          expect(['key_syntax', 'key_record_too_large', 'key_revoked', 'key_type_mismatch']).toContain(parsed.reason);
          expect(parsed.detail).toMatch(/^[\x20-\x7e…]*$/);
        } else {
          expect(parsed.key.keyBits).toBeGreaterThan(0);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('parseHeaderList returns entries or a message for any text', () => {
    const list = fc.oneof(anyText, fc.array(fc.constantFrom('From', 'from', 'To?', 'Cc+', 'X*', '', ' ', '?', 'A B', 'Sübject', '+*'), { maxLength: 8 }).map((p) => p.join(':')));
    fc.assert(
      fc.property(list, (text) => {
        const parsed = parseHeaderList(text);
        if (parsed.kind === 'ok') expect(parsed.entries.some((e) => e.lowerName === 'from')).toBe(true);
        else expect(parsed.reason).toBeTypeOf('string');
      }),
      { numRuns: 1000 },
    );
  });

  it('frameMessage frames any bytes into contiguous fields that end where the header section ends', () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 400 }),
      fc.array(fc.constantFrom('\r\n', '\r', '\n', ' ', '\t', ':', 'a', 'From', 'DKIM-Signature'), { maxLength: 60 }).map((p) => new Uint8Array(Buffer.from(p.join('')))),
    );
    fc.assert(
      fc.property(bytes, (raw) => {
        const buf = Buffer.from(raw);
        const framed = frameMessage(buf);
        let prev = 0;
        for (const f of framed.fields) {
          expect(f.start).toBe(prev);
          expect(f.colon).toBeGreaterThanOrEqual(f.start);
          expect(f.colon).toBeLessThanOrEqual(f.end);
          expect(f.end).toBeGreaterThan(f.start);
          prev = f.end;
        }
        expect(prev).toBe(framed.headerBytes);
        expect(framed.bodyStart).toBe(framed.headerBytes === buf.length ? buf.length : framed.headerBytes + 2);
      }),
      { numRuns: 2000 },
    );
  });

  it('toCrlf turns any bytes into the same lines with only CRLF endings', () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.array(fc.constantFrom('\r\n', '\r', '\n', '\n\r', 'a', ' '), { maxLength: 60 }).map((p) => new Uint8Array(Buffer.from(p.join('')))),
    );
    fc.assert(
      fc.property(bytes, (raw) => {
        const buf = Buffer.from(raw);
        const out = toCrlf(buf);
        expect(hasOnlyCrlf(out)).toBe(true);
        const lines = (b: Buffer) => b.toString('latin1').split(/\r\n|\r|\n/);
        expect(lines(out)).toEqual(lines(buf));
        if (hasOnlyCrlf(buf)) expect(out).toBe(buf);
      }),
      { numRuns: 2000 },
    );
  });

  it('formatAuthResults writes one printable field for verdicts with any labels', () => {
    const label = fc.option(anyText, { nil: null });
    const verdictArb: fc.Arbitrary<SignatureVerdict> = fc.record({
      result: fc.constantFrom<DkimResult>('pass', 'fail', 'neutral', 'policy', 'permerror', 'temperror', 'none'),
      reason: fc.option(fc.constantFrom(...(REASONS as Set<VerifyReason>)), { nil: null }),
      detail: label,
      domain: label,
      selector: label,
      identity: label,
      algorithm: label,
      canonicalization: label,
      keyBits: fc.option(fc.integer(), { nil: null }),
      headerB: label,
      testing: fc.boolean(),
    });
    fc.assert(
      fc.property(anyText, fc.array(verdictArb, { maxLength: 5 }), (authservId, verdicts) => {
        const { field, unfolded } = formatAuthResults(authservId, verdicts);
        expect(field.endsWith('\r\n')).toBe(true);
        expect(field.slice(0, -2).replace(/\r\n\t/g, ' ')).toBe(unfolded);
        expect(unfolded).toMatch(/^[\x20-\x7e]*$/);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('verifyMessage never rejects', () => {
  function checkReport(message: Buffer, report: VerifyReport): void {
    const fields = frameMessage(message).fields.filter((f) => f.lowerName === 'dkim-signature');
    expect(report.signatures).toHaveLength(fields.length);
    report.signatures.forEach((v, n) => {
      expect(v.result).toBe(v.reason === null ? 'pass' : RESULT_BY_REASON[v.reason]);
      if (n >= 5) expect(v.reason).toBe('not_evaluated');
    });
  }

  const OUTCOMES = ['nxdomain', 'nodata', 'timeout', 'servfail'] as const;
  /** A lookup answering each name from a random table of outcomes and records. */
  const lookupArb = fc
    .array(fc.oneof(fc.constantFrom(...OUTCOMES), fc.array(fc.oneof(keySoup.map((f) => ({ soup: f })), fc.constantFrom('RSA', 'ED', 'v=DKIM1; p=')), { maxLength: 3 })), {
      minLength: 1,
      maxLength: 6,
    })
    .map((answers): TxtLookup => {
      return async (name: string): Promise<TxtLookupOutcome> => {
        let h = 0;
        for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
        const answer = answers[h % answers.length]!;
        if (typeof answer === 'string') return { kind: answer };
        const records = answer.map((r) => (r === 'RSA' ? rsa.record : r === 'ED' ? ed.record : typeof r === 'string' ? r : r.soup()));
        return { kind: 'found', records };
      };
    });

  const headerLine = fc.oneof(
    fc.constantFrom('From: a@example.com', 'fRoM : b@example.com', 'To: c@example.org', 'Subject: hi', 'X: \xa0', ' folded', '\tfolded', 'no colon', ':', ''),
    fc.uint8Array({ maxLength: 40 }).map((b) => latin1(b).replace(/[\r\n]/g, '')),
  );
  const spliced = fc.oneof(
    signatureSoup.map((s) => `DKIM-Signature:${s}`),
    signatureSoup.map((s) => `dkim-signature :${s.replace(/\r\n(?![ \t])/g, ' ')}`),
    fc.constantFrom('REAL-RSA', 'REAL-ED'),
  );
  const messageArb = fc
    .tuple(fc.array(fc.oneof(headerLine, spliced), { maxLength: 12 }), fc.option(fc.uint8Array({ maxLength: 200 }).map(latin1), { nil: null }))
    .map(([lines, body]) => () => {
      const real = (m: Buffer) => m.toString('latin1').split(/\r\n(?=From:|Received:)/)[0]!;
      const header = lines
        .map((l) => (l === 'REAL-RSA' ? real(signedRsa) : l === 'REAL-ED' ? real(signedEd) : l))
        .map((l) => l.replace(/\r\n(?![ \t])/g, ' '))
        .join('\r\n');
      return Buffer.from(body === null ? header : `${header}\r\n\r\n${body}`, 'latin1');
    });

  it('resolves with one consistent verdict per DKIM-Signature soup spliced into random headers, whatever DNS answers', async () => {
    await fc.assert(
      fc.asyncProperty(messageArb, lookupArb, fc.integer({ min: 0, max: 7 }), async (make, lookupTxt, maxSignatures) => {
        const message = make();
        const report = await verifyMessage(message, { lookupTxt, nowSec: NOW + 60, maxSignatures });
        const fields = frameMessage(message).fields.filter((f) => f.lowerName === 'dkim-signature');
        expect(report.signatures).toHaveLength(fields.length);
        report.signatures.forEach((v, n) => {
          expect(v.result).toBe(v.reason === null ? 'pass' : RESULT_BY_REASON[v.reason]);
          if (n >= maxSignatures) expect(v.reason).toBe('not_evaluated');
        });
      }),
      { numRuns: 400 },
    );
  });

  it('resolves with one consistent verdict per signature for random bytes', async () => {
    const lookupTxt = tableLookup({ 'rsa._domainkey.example.com': rsa.record });
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), async (raw) => {
        const message = Buffer.from(raw);
        checkReport(message, await verifyMessage(message, { lookupTxt, nowSec: NOW }));
      }),
      { numRuns: 500 },
    );
  });

  it('resolves for a real signature with any one byte of its field changed', async () => {
    const lookupTxt = tableLookup({ 'rsa._domainkey.example.com': rsa.record, 'ed._domainkey.example.com': ed.record });
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.nat(), fc.integer({ min: 0, max: 255 }), async (useEd, pick, byte) => {
        const signed = useEd ? signedEd : signedRsa;
        const message = Buffer.from(signed);
        message[pick % (signed.length - BASIC_MESSAGE.length)] = byte;
        // (Some changes still pass: relaxed canonicalization hides WSP and name case, h= is case-insensitive.)
        checkReport(message, await verifyMessage(message, { lookupTxt, nowSec: NOW + 60 }));
      }),
      { numRuns: 400 },
    );
  });
});

// ---- Blow-up detectors: the same input shape at N and 4N. Linear work grows ~4×, quadratic ~16×. ----
// These are not speed tests: the ratio bound is loose, the absolute bounds generous.

const RATIO = 10;
/** Small inputs are timed against a floor, so that timer noise on sub-millisecond runs cannot trip the ratio. */
const FLOOR_MS = 2;

function bestMs(run: () => unknown, reps = 3): number {
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    run();
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

async function bestMsAsync(run: () => Promise<unknown>, reps = 3): Promise<number> {
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    await run();
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

function expectNoBlowUp(small: number, large: number, absoluteMs: number): void {
  expect(large, `N: ${small.toFixed(2)} ms, 4N: ${large.toFixed(2)} ms`).toBeLessThan(RATIO * Math.max(small, FLOOR_MS));
  expect(large).toBeLessThan(absoluteMs);
}

describe('hostile shapes cost time linear in their size', () => {
  it('parses a tag list of 100,000 semicolons', () => {
    const run = (n: number) => () => expect(parseTagList(';'.repeat(n))).toMatchObject({ kind: 'ok' });
    expectNoBlowUp(bestMs(run(25_000)), bestMs(run(100_000)), 2000);
  });

  it('parses a tag list of 100,000 distinct tags', () => {
    const list = (n: number) => Array.from({ length: n }, (_, i) => `t${i}=v`).join(';');
    const small = list(25_000);
    const large = list(100_000);
    expectNoBlowUp(
      // Best of 5: this one allocates 100,000 entries, so a collection during a run is likely (~5x normally).
      bestMs(() => parseTagList(small), 5),
      bestMs(() => expect(parseTagList(large)).toMatchObject({ kind: 'ok' }), 5),
      2000,
    );
  });

  it('refuses a DKIM-Signature with 10,000 h= entries', () => {
    const value = (n: number) => ` v=1; a=rsa-sha256; d=example.com; s=s1; bh=${B64_32}; b=${B64_128}; h=${Array(n).fill('a').join(':')}`;
    const small = value(2_500);
    const large = value(10_000);
    expect(parseSignature(large)).toMatchObject({ kind: 'error', reason: 'header_too_large' });
    expectNoBlowUp(bestMs(() => parseSignature(small)), bestMs(() => parseSignature(large)), 2000);
  });

  it('verifies a real signature over 960 instances of one field (h= near its limit)', async () => {
    const lookupTxt = tableLookup({ 'rsa._domainkey.example.com': rsa.record });
    const message = (n: number) => crlf(`${'X-A: some value\n'.repeat(n)}${BASIC_MESSAGE.toString('latin1')}`);
    const small = await sign(message(240), rsa, { selector: 'rsa', headerList: 'From:X-A+' });
    const large = await sign(message(960), rsa, { selector: 'rsa', headerList: 'From:X-A+' });
    const run = (m: Buffer) => async () => expect((await verifyMessage(m, { lookupTxt, nowSec: NOW })).signatures[0]?.result).toBe('pass');
    expectNoBlowUp(await bestMsAsync(run(small)), await bestMsAsync(run(large)), 3000);
  });

  it('refuses a key record of 100 KB', () => {
    const record = (n: number) => `v=DKIM1; k=rsa; n=${'x'.repeat(n)}; p=${'A'.repeat(n)}`;
    const small = record(12_800);
    const large = record(51_200);
    expect(parseKeyRecord(large)).toMatchObject({ kind: 'error', reason: 'key_record_too_large' });
    expectNoBlowUp(bestMs(() => parseKeyRecord(small)), bestMs(() => parseKeyRecord(large)), 1000);
  });

  it('evaluates only the first 5 of 1,000 signatures on one message', async () => {
    const lookupTxt = tableLookup({ 'rsa._domainkey.example.com': rsa.record });
    const field = signedRsa.subarray(0, signedRsa.length - BASIC_MESSAGE.length);
    const message = (n: number) => Buffer.concat([...Array<Buffer>(n).fill(field), BASIC_MESSAGE]);
    const small = message(250);
    const large = message(1000);
    const report = await verifyMessage(large, { lookupTxt, nowSec: NOW });
    expect(report.signatures).toHaveLength(1000);
    expect(report.signatures.slice(0, 5).map((v) => v.result)).toEqual(Array(5).fill('pass'));
    expect(new Set(report.signatures.slice(5).map((v) => `${v.result}/${v.reason}`))).toEqual(new Set(['neutral/not_evaluated']));
    const run = (m: Buffer) => () => verifyMessage(m, { lookupTxt, nowSec: NOW });
    expectNoBlowUp(await bestMsAsync(run(small)), await bestMsAsync(run(large)), 3000);
  });

  it('canonicalizes (relaxed) a field of 200,000 folded lines', () => {
    const field = (n: number) => Buffer.from(`Subject: a${' \r\n\t b'.repeat(n)}\r\n`);
    const small = field(50_000);
    const large = field(200_000);
    expectNoBlowUp(bestMs(() => canonicalizeHeaderRelaxed(small, 0, small.length)), bestMs(() => canonicalizeHeaderRelaxed(large, 0, large.length)), 2000);
  });

  it.each([
    ['lines that all change under relaxed', 'a  b \r\n'],
    ['whitespace-only lines between text lines', 'a\r\n \t \r\n'],
    ['bare CRs inside lines', 'a\rb\r \r\n'],
    ['lines of one tab', '\t\r\n'],
  ])('hashes a 4 MB body of %s', async (_name, line) => {
    const lookupTxt = tableLookup({ 'rsa._domainkey.example.com': rsa.record });
    const make = async (bytes: number) => sign(Buffer.concat([BASIC_MESSAGE.subarray(0, BASIC_MESSAGE.indexOf('\r\n\r\n') + 4), Buffer.from(line.repeat(bytes / line.length))]), rsa, { selector: 'rsa' });
    const small = await make(1 << 20);
    const large = await make(4 << 20);
    const run = (m: Buffer) => async () => expect((await verifyMessage(m, { lookupTxt, nowSec: NOW })).signatures[0]?.result).toBe('pass');
    expectNoBlowUp(await bestMsAsync(run(small), 2), await bestMsAsync(run(large), 2), 5000);
  });

  // Each colon-less header line must not rescan the rest of the message for a colon (a 1 MB header
  // of such lines before a 50 MB body would otherwise take minutes).
  it('frames a header of colon-less lines before a colon-less body in linear time', () => {
    const message = (n: number) => Buffer.from(`From: a@example.com\r\n${'x\r\n'.repeat(n)}\r\n${'body line\r\n'.repeat(4 * n)}`);
    const small = message(5_000);
    const large = message(20_000);
    expect(frameMessage(large).fields).toHaveLength(20_001);
    expectNoBlowUp(bestMs(() => frameMessage(small)), bestMs(() => frameMessage(large), 2), 2000);
  });

  // A run of empty segments (";;;;", which the tag-list grammar allows) before b= must not make
  // each segment rescan for the next "=".
  it('empties b= in linear time whatever the segments before it', () => {
    const segments = (n: number) => `;${' '.repeat(15)}`.repeat(n);
    const field = (n: number) => Buffer.from(`DKIM-Signature: v=1${segments(n)}; b=abc\r\n`);
    const small = field(15_000);
    const large = field(60_000);
    expect(withEmptyB(large, 14).toString()).toBe(`DKIM-Signature: v=1${segments(60_000)}; b=\r\n`);
    expectNoBlowUp(bestMs(() => withEmptyB(small, 14)), bestMs(() => withEmptyB(large, 14), 2), 2000);
  });

  it('verifies a signature whose field has 30,000 empty segments before b=', async () => {
    const lookupTxt = tableLookup({ 'rsa._domainkey.example.com': rsa.record });
    const message = edit(signedRsa, /([;\s])b=/, `$1${';'.repeat(30_000)} b=`);
    const started = performance.now();
    const report = await verifyMessage(message, { lookupTxt, nowSec: NOW });
    // The empty segments were not signed, so the signature fails; what matters is the cost (the 64 KB cap bounds it).
    expect(report.signatures.map((v) => v.reason)).toEqual(['signature_mismatch']);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
