import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatAuthResults, maxAuthResultsBytes } from '../../../src/auth-results/format-auth-results.js';
import { PHRASE_BY_REASON, RESULT_BY_REASON, type DkimResult, type VerifyReason } from '../../../src/dkim/results.js';
import { verifyMessage, type SignatureVerdict } from '../../../src/dkim/verify.js';
import { authresParse } from '../../helpers/authres.js';
import { BASIC_MESSAGE, edit, NOW, rsaKey, sign, tableLookup, type TestKey } from '../../helpers/dkim-test-kit.js';

const REASONS = Object.keys(RESULT_BY_REASON) as VerifyReason[];

function verdict(over: Partial<SignatureVerdict> = {}): SignatureVerdict {
  return {
    result: 'pass',
    reason: null,
    detail: null,
    domain: 'example.com',
    selector: 's1',
    identity: '@example.com',
    algorithm: 'rsa-sha256',
    canonicalization: 'relaxed/relaxed',
    keyBits: 2048,
    headerB: 'abcdEFGH',
    testing: false,
    ...over,
  };
}

interface ParsedResinfo {
  method: string;
  result: string;
  comments: string[];
  props: [string, string][];
}

/**
 * A strict parser for the RFC 8601 field as we write it: unfolds, then reads authserv-id and each
 * resinfo. It throws on anything unexpected, so an injected `;`, result, property or line cannot hide.
 */
function parseAuthResults(field: string): { authservId: string; resinfos: ParsedResinfo[] } {
  const name = 'Authentication-Results:';
  if (!field.startsWith(name) || !field.endsWith('\r\n')) throw new Error(`not one CRLF-terminated A-R field: ${JSON.stringify(field)}`);
  const value = field.slice(name.length, -2).replace(/\r\n(?=[\t ])/g, '');
  if (/[^\t\x20-\x7e]/.test(value)) throw new Error(`CR, LF or a non-printable byte survives unfolding: ${JSON.stringify(value)}`);
  let i = 0;
  const comments: string[] = [];
  const escaped = (): string => {
    const c = value[i++];
    if (c === undefined) throw new Error('dangling backslash');
    return c;
  };
  const comment = (): string => {
    let depth = 0;
    let text = '';
    do {
      const c = value[i++];
      if (c === undefined) throw new Error(`unterminated comment in ${value}`);
      if (c === '\\') text += escaped();
      else if (c === '(') text += depth++ > 0 ? c : '';
      else if (c === ')') text += --depth > 0 ? c : '';
      else text += c;
    } while (depth > 0);
    return text;
  };
  const cfws = (): void => {
    for (;;) {
      while (value[i] === ' ' || value[i] === '\t') i++;
      if (value[i] !== '(') return;
      comments.push(comment());
    }
  };
  const quoted = (): string => {
    i++;
    let text = '';
    for (;;) {
      const c = value[i++];
      if (c === undefined) throw new Error(`unterminated quoted-string in ${value}`);
      if (c === '"') return text;
      text += c === '\\' ? escaped() : c;
    }
  };
  const match = (re: RegExp): string => {
    re.lastIndex = i;
    const m = re.exec(value);
    if (!m) throw new Error(`expected ${re} at ${JSON.stringify(value.slice(i, i + 40))} in ${value}`);
    i += m[0].length;
    return m[0];
  };
  cfws();
  const authservId = value[i] === '"' ? quoted() : match(/[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+/y);
  cfws();
  const resinfos: ParsedResinfo[] = [];
  while (i < value.length) {
    match(/;/y);
    cfws();
    const method = match(/[a-z]+/y);
    match(/=/y);
    const result = match(/[a-z]+/y);
    const first = comments.length;
    cfws();
    const props: [string, string][] = [];
    while (i < value.length && value[i] !== ';') {
      const prop = match(/header\.[disab]=/y).slice(0, -1);
      // RFC 8601 pvalue: a quoted-string, an RFC 2045 token, or [local-part] "@" domain.
      const pvalue = value[i] === '"' ? quoted() : match(/[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]*@[A-Za-z0-9.-]+|[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+/y);
      if (i < value.length && !/[ \t;(]/.test(value[i]!)) throw new Error(`pvalue runs on at ${JSON.stringify(value.slice(i, i + 40))}`);
      props.push([prop, pvalue]);
      cfws();
    }
    resinfos.push({ method, result, comments: comments.slice(first), props });
  }
  return { authservId, resinfos };
}

/** What an RFC 8601 reader must get back for one verdict: every label made printable, nothing more. */
function expectedResinfo(v: SignatureVerdict): ParsedResinfo {
  const printable = (s: string) => s.replace(/[^\x20-\x7e]/g, '?');
  const notes = [v.reason ? PHRASE_BY_REASON[v.reason] : v.keyBits ? `${v.keyBits}-bit key` : null, v.testing ? 'test mode' : null].filter((n) => n !== null);
  const props: [string, string][] = [];
  for (const [p, value] of [['d', v.domain], ['i', v.identity], ['s', v.selector], ['a', v.algorithm], ['b', v.headerB]] as const) {
    if (value) props.push([`header.${p}`, printable(value)]);
  }
  return { method: 'dkim', result: v.result, comments: notes.length > 0 ? [notes.join(', ')] : [], props };
}

function checkField(authservId: string, verdicts: SignatureVerdict[]): void {
  const { field, unfolded } = formatAuthResults(authservId, verdicts);
  const parsed = parseAuthResults(field);
  expect(parsed.authservId).toBe(authservId.replace(/[^\x20-\x7e]/g, '?'));
  // Two or more signatures beyond max_signatures share one resinfo, listed last.
  const skipped = verdicts.filter((v) => v.reason === 'not_evaluated').length;
  const listed = skipped > 1 ? verdicts.filter((v) => v.reason !== 'not_evaluated') : verdicts;
  const summary = skipped > 1 ? [{ method: 'dkim', result: 'neutral', comments: [`${skipped} signatures beyond max_signatures, not evaluated`], props: [] }] : [];
  expect(parsed.resinfos).toEqual(
    verdicts.length === 0 ? [{ method: 'dkim', result: 'none', comments: [], props: [] }] : [...listed.map(expectedResinfo), ...summary],
  );
  // Folding: every line after the first is a continuation, and unfolding gives the one-line form.
  const lines = field.slice(0, -2).split('\r\n');
  for (const line of lines.slice(1)) expect(line.startsWith('\t')).toBe(true);
  expect(field.slice(0, -2).replace(/\r\n\t/g, ' ')).toBe(unfolded);
  expect(parseAuthResults(`${unfolded}\r\n`)).toEqual(parsed);
}

describe('the Authentication-Results field (RFC 8601, RFC 6008)', () => {
  it('says dkim=none when there is no signature', () => {
    expect(formatAuthResults('mx.example.net', [])).toEqual({
      field: 'Authentication-Results: mx.example.net;\r\n\tdkim=none\r\n',
      unfolded: 'Authentication-Results: mx.example.net; dkim=none',
    });
  });

  it('reports a pass with its key size and header.d, header.i, header.s, header.a and header.b', () => {
    expect(formatAuthResults('mx.example.net', [verdict()]).unfolded).toBe(
      'Authentication-Results: mx.example.net; dkim=pass (2048-bit key) header.d=example.com header.i=@example.com header.s=s1 header.a=rsa-sha256 header.b=abcdEFGH',
    );
  });

  it('reports one resinfo per signature, in order, each on its own line', () => {
    const { field } = formatAuthResults('mx.example.net', [
      verdict({ headerB: 'AAAAAAAA' }),
      verdict({ result: 'fail', reason: 'body_hash_mismatch', selector: 'ed', algorithm: 'ed25519-sha256', headerB: 'BBBBBBBB' }),
    ]);
    expect(field).toBe(
      'Authentication-Results: mx.example.net;\r\n' +
        '\tdkim=pass (2048-bit key) header.d=example.com header.i=@example.com\r\n' +
        '\theader.s=s1 header.a=rsa-sha256 header.b=AAAAAAAA;\r\n' +
        '\tdkim=fail (body hash did not verify) header.d=example.com\r\n' +
        '\theader.i=@example.com header.s=ed header.a=ed25519-sha256 header.b=BBBBBBBB\r\n',
    );
  });

  it('leaves out the properties a broken signature did not give', () => {
    const v = verdict({ result: 'neutral', reason: 'bad_tag_syntax', domain: null, selector: null, identity: null, algorithm: null, headerB: null, keyBits: null });
    expect(formatAuthResults('mx.example.net', [v]).unfolded).toBe(
      'Authentication-Results: mx.example.net; dkim=neutral (signature tag list is malformed)',
    );
  });

  it.each([
    ['a token', 'abcd+EFG', 'header.b=abcd+EFG'],
    ['a value with "/"', 'ab/cdEFG', 'header.b="ab/cdEFG"'],
    ['a value with "="', 'AA==', 'header.b="AA=="'],
  ])('writes header.b as %s', (_name, headerB, expected) => {
    expect(formatAuthResults('mx.example.net', [verdict({ headerB })]).unfolded.endsWith(` ${expected}`)).toBe(true);
  });

  it.each(REASONS)('writes the phrase of %s as a balanced comment', (reason) => {
    const v = verdict({ result: RESULT_BY_REASON[reason], reason, testing: true });
    checkField('mx.example.net', [v]);
    expect(formatAuthResults('mx.example.net', [v]).unfolded).toContain(`dkim=${RESULT_BY_REASON[reason]} (${PHRASE_BY_REASON[reason]}, test mode)`);
  });

  describe('with header.b from a real signature', () => {
    let key: TestKey;
    beforeAll(() => {
      key = rsaKey(1024);
    });

    it('gives the first 8 characters of b=', async () => {
      const signed = await sign(BASIC_MESSAGE, key);
      const report = await verifyMessage(signed, { lookupTxt: tableLookup({ 's1._domainkey.example.com': key.record }), nowSec: NOW });
      const field = signed.subarray(0, signed.length - BASIC_MESSAGE.length).toString('latin1');
      const b = /[;\s]b=([^;]+)$/.exec(field)![1]!.replace(/\s/g, '');
      const parsed = parseAuthResults(formatAuthResults('mx.example.net', report.signatures).field);
      expect(parsed.resinfos[0]!.props).toContainEqual(['header.b', b.slice(0, 8)]);
      expect(b.slice(0, 8)).toHaveLength(8);
    });
  });
});

const HOSTILE = [
  'x; dkim=pass header.d=bank.example',
  'x\r\nX-Injected: yes',
  'x\r\n\r\nbody',
  '"; dkim=pass',
  'a"b\\c\\',
  '(x) ) (',
  '\\(',
  'tab\there',
  'évil\u0000\u2028\u{1F600}',
  '\r\n\tdkim=pass',
  'a@b; dkim=pass',
  '"x"@example.com; dkim=pass',
  '=?utf-8?q?x?=',
  '',
  ' ',
];

describe('values a sender chose', () => {
  it.each([
    ['an injected resinfo', 'Authentication-Results: mx; dkim=fail header.i=x; dkim=pass\r\n', /resinfo/],
    ['an unquoted value with a space', 'Authentication-Results: mx; dkim=fail header.i=x dkim=pass\r\n', /header/],
    ['an injected header line', 'Authentication-Results: mx; dkim=fail header.i=x\r\nX-Injected: yes\r\n', /CR, LF/],
    ['an unbalanced comment', 'Authentication-Results: mx; dkim=fail (a ( b)\r\n', /comment/],
  ])('are read by a strict reader that rejects %s', (_name, field, problem) => {
    const read = () => {
      const parsed = parseAuthResults(field);
      if (parsed.resinfos.length !== 1) throw new Error(`${parsed.resinfos.length} resinfos`);
    };
    expect(read).toThrow(problem);
  });

  it.each(HOSTILE.map((h) => [JSON.stringify(h), h]))('cannot inject anything through %s', (_name, hostile) => {
    for (const label of ['domain', 'identity', 'selector', 'algorithm', 'headerB'] as const) {
      checkField('mx.example.net', [verdict({ [label]: hostile }), verdict({ result: 'fail', reason: 'signature_mismatch' })]);
    }
    checkField(hostile, [verdict()]);
  });

  const label = fc.oneof(
    fc.constantFrom(...HOSTILE),
    fc.string({ unit: 'binary', maxLength: 30 }),
    fc.string({ unit: fc.constantFrom(';', '"', '\\', '(', ')', '\r', '\n', ' ', '\t', '=', '@', 'a', '/', '.'), maxLength: 20 }),
  );
  const verdictArb = fc.record({
    result: fc.constantFrom<DkimResult>('pass', 'fail', 'neutral', 'policy', 'permerror', 'temperror'),
    reason: fc.option(fc.constantFrom(...REASONS), { nil: null }),
    detail: fc.constant(null),
    domain: fc.option(label, { nil: null }),
    selector: fc.option(label, { nil: null }),
    identity: fc.option(label, { nil: null }),
    algorithm: fc.option(label, { nil: null }),
    canonicalization: fc.option(label, { nil: null }),
    keyBits: fc.option(fc.integer({ min: 0, max: 16384 }), { nil: null }),
    headerB: fc.option(label, { nil: null }),
    testing: fc.boolean(),
  });

  it('never yield more resinfos or properties than the verdicts hold, whatever the labels', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }), fc.array(verdictArb, { maxLength: 4 }), (authservId, verdicts) => {
        checkField(authservId, verdicts);
      }),
      { numRuns: 500 },
    );
  });
});

describe('folding', () => {
  const ldh = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?$/);
  const realistic = fc.record({
    result: fc.constantFrom<DkimResult>('pass', 'fail', 'neutral', 'policy', 'permerror', 'temperror'),
    reason: fc.option(fc.constantFrom(...REASONS), { nil: null }),
    detail: fc.constant(null),
    domain: fc.array(ldh, { minLength: 1, maxLength: 3 }).map((l) => l.join('.')),
    selector: ldh,
    identity: fc.tuple(fc.stringMatching(/^[a-z0-9.+_-]{0,12}$/), fc.array(ldh, { minLength: 1, maxLength: 2 })).map(([local, labels]) => `${local}@${labels.join('.')}`),
    algorithm: fc.constantFrom('rsa-sha256', 'ed25519-sha256', 'rsa-sha1'),
    canonicalization: fc.constant('relaxed/relaxed'),
    keyBits: fc.constantFrom(256, 1024, 2048, 4096),
    headerB: fc.base64String({ minLength: 8, maxLength: 8 }),
    testing: fc.boolean(),
  });

  it('keeps every line within 78 characters when each word fits on a line', () => {
    fc.assert(
      fc.property(fc.array(realistic, { maxLength: 6 }), (verdicts) => {
        const { field } = formatAuthResults('mx.example.net', verdicts);
        for (const line of field.slice(0, -2).split('\r\n')) expect(line.length).toBeLessThanOrEqual(78);
        checkField('mx.example.net', verdicts);
      }),
      { numRuns: 500 },
    );
  });

  // The local part of i= is the sender's choice and unbounded: a 5,000-character i= must not become a
  // 5,000-character line in our field (RFC 5322 §2.1.1: a line MUST NOT exceed 998 characters).
  it('keeps every line within 998 characters even for a 5,000-character i= chosen by the sender', async () => {
    const key = rsaKey(1024);
    const signed = edit(await sign(BASIC_MESSAGE, key), /s=s1;/, `s=s1; i=${'x'.repeat(5000)}@example.com;`);
    const report = await verifyMessage(signed, { lookupTxt: tableLookup({ 's1._domainkey.example.com': key.record }), nowSec: NOW });
    const { field } = formatAuthResults('mx.example.net', report.signatures);
    for (const line of field.slice(0, -2).split('\r\n')) expect(line.length).toBeLessThanOrEqual(998);
  });
});

describe('the field as python3-authres reads it', () => {
  it('parses dkim=none, one pass, and several results with every property', () => {
    const cases: SignatureVerdict[][] = [
      [],
      [verdict()],
      [
        verdict({ headerB: 'ab/cdEFG' }),
        verdict({ result: 'fail', reason: 'signature_mismatch', domain: 'mail.example.org', identity: 'alice@mail.example.org', selector: 'ed2026', algorithm: 'ed25519-sha256', headerB: 'x+y=' }),
        verdict({ result: 'neutral', reason: 'bad_version', identity: null, algorithm: null, headerB: null, keyBits: null }),
        verdict({ result: 'temperror', reason: 'dns_timeout', testing: true, keyBits: null }),
        verdict({ result: 'pass', testing: true, identity: 'bob+tag@example.com' }),
      ],
    ];
    const parsed = authresParse(cases.map((verdicts) => formatAuthResults('mx.example.net', verdicts).field));
    expect(parsed[0]).toEqual({ authservId: 'mx.example.net', results: [{ method: 'dkim', result: 'none', props: [] }] });
    expect(parsed[1]).toEqual({
      authservId: 'mx.example.net',
      results: [
        {
          method: 'dkim',
          result: 'pass',
          props: [['header.d', 'example.com'], ['header.i', '@example.com'], ['header.s', 's1'], ['header.a', 'rsa-sha256'], ['header.b', 'abcdEFGH']],
        },
      ],
    });
    expect(parsed[2]).toEqual({
      authservId: 'mx.example.net',
      results: cases[2]!.map((v) => ({ method: 'dkim', result: v.result, props: expectedResinfo(v).props })),
    });
  });

  it('reads exactly our results, and only values we wrote, from fields with hostile labels', () => {
    const cases = HOSTILE.map((hostile) => [
      verdict({ identity: hostile, headerB: hostile }),
      verdict({ result: 'fail', reason: 'body_hash_mismatch', domain: hostile, selector: hostile, algorithm: hostile }),
    ]);
    const parsed = authresParse(cases.map((verdicts) => formatAuthResults('mx.example.net', verdicts).field));
    parsed.forEach((p, n) => {
      const verdicts = cases[n]!;
      expect(p.error).toBeUndefined();
      expect(p.authservId).toBe('mx.example.net');
      expect(p.results!.map((r) => [r.method, r.result])).toEqual(verdicts.map((v) => ['dkim', v.result]));
      // authres 1.2.0 drops a quoted pvalue that another property follows (its parser wants ";" or the
      // end after a quoted-string), so it may read fewer properties than we wrote — never others.
      p.results!.forEach((r, k) => {
        const written = expectedResinfo(verdicts[k]!).props;
        for (const prop of r.props) expect(written).toContainEqual(prop);
        expect(r.props.map(([name]) => name)).toEqual(written.map(([name]) => name).filter((name) => r.props.some(([n]) => n === name)));
      });
    });
  });
});

describe('signatures beyond max_signatures', () => {
  it('share one dkim=neutral resinfo however many there are, so the field stays within maxAuthResultsBytes', () => {
    const evaluated = [verdict(), verdict({ result: 'fail', reason: 'body_hash_mismatch' })];
    const skipped = Array.from({ length: 5000 }, () => verdict({ result: 'neutral', reason: 'not_evaluated', domain: null, selector: null, identity: null, algorithm: null, headerB: null, keyBits: null }));
    const { field } = formatAuthResults('mx.example.net', [...evaluated, ...skipped]);
    const [parsed] = authresParse([field]);
    expect(parsed!.results!.map((r) => r.result)).toEqual(['pass', 'fail', 'neutral']);
    expect(field).toContain('(5000 signatures beyond max_signatures, not evaluated)');
    expect(Buffer.byteLength(field)).toBeLessThanOrEqual(maxAuthResultsBytes('mx.example.net', 2));
  });

  it('keeps the plain phrase for a single one', () => {
    const { field } = formatAuthResults('mx.example.net', [verdict({ result: 'neutral', reason: 'not_evaluated', domain: null, selector: null, identity: null, algorithm: null, headerB: null, keyBits: null })]);
    expect(field).toContain(`dkim=neutral (${PHRASE_BY_REASON.not_evaluated})`);
  });

  it('stays within maxAuthResultsBytes with the longest values a signature can carry', () => {
    const long = 'x'.repeat(255);
    const hostile = '"\\'.repeat(127);
    const verdicts = Array.from({ length: 5 }, () =>
      verdict({ result: 'temperror', reason: 'dns_timeout', testing: true, domain: hostile, identity: hostile, selector: long, algorithm: hostile, headerB: 'abcdEFGH' }),
    );
    const { field } = formatAuthResults('mx.example.net', verdicts);
    expect(Buffer.byteLength(field)).toBeLessThanOrEqual(maxAuthResultsBytes('mx.example.net', 5));
  });
});

describe('header.b (RFC 6008 §4)', () => {
  const shared = 'AbCdEfGhIjKl';
  const b1 = `${shared}1mnopQRST+/=`;
  const b2 = `${shared}2mnopQRST+/=`;

  it('is longer than 8 characters where two signatures share them, so each result names its signature', () => {
    const verdicts = [
      verdict({ headerB: b1.slice(0, 8), bPrefix: b1 }),
      verdict({ result: 'fail', reason: 'signature_mismatch', headerB: b2.slice(0, 8), bPrefix: b2 }),
      verdict({ domain: 'other.example', headerB: 'ZZZZzzzz', bPrefix: 'ZZZZzzzzYYYY' }),
    ];
    const [parsed] = authresParse([formatAuthResults('mx.example.net', verdicts).field]);
    const headerB = parsed!.results!.map((r) => r.props.find(([name]) => name === 'header.b')?.[1]);
    expect(headerB).toEqual([`${shared}1`, `${shared}2`, 'ZZZZzzzz']);
  });

  it('stays at 8 characters for signatures whose b= is the same (nothing more can tell them apart)', () => {
    const verdicts = [verdict({ headerB: b1.slice(0, 8), bPrefix: b1 }), verdict({ result: 'fail', reason: 'signature_mismatch', headerB: b1.slice(0, 8), bPrefix: b1 })];
    expect(formatAuthResults('mx.example.net', verdicts).unfolded.match(/header\.b=[^;\s]+/g)).toEqual([`header.b=${shared.slice(0, 8)}`, `header.b=${shared.slice(0, 8)}`]);
  });

  it('tells apart a verified signature and a copy with a b= altered after its 8th character', async () => {
    const key = rsaKey(2048);
    const signed = await sign(BASIC_MESSAGE, key);
    const field = signed.toString('latin1').match(/^DKIM-Signature:[^]*?\r\n(?![ \t])/)![0];
    const b = field.match(/ b=([^;]*)$/)![1]!.replace(/\s/g, '');
    const copy = field.replace(/ b=[^;]*$/, ` b=${b.slice(0, 20)}${b[20] === 'A' ? 'B' : 'A'}${b.slice(21)}\r\n`);
    const report = await verifyMessage(Buffer.concat([Buffer.from(copy, 'latin1'), signed]), { lookupTxt: tableLookup({ 's1._domainkey.example.com': key.record }), nowSec: NOW });
    expect(report.signatures.map((s) => s.result)).toEqual(['fail', 'pass']);
    const [parsed] = authresParse([formatAuthResults('mx.example.net', report.signatures).field]);
    const headerB = parsed!.results!.map((r) => r.props.find(([name]) => name === 'header.b')?.[1]);
    expect(headerB).toEqual([expect.stringMatching(/^.{21}$/), b.slice(0, 21)]);
    expect(headerB[0]).not.toBe(headerB[1]);
  });
});
