import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseZoneFile, type ZoneParse, type ZoneTxtRecord } from '../../../src/dns/zone-file.js';

function records(text: string, origin?: string): ZoneTxtRecord[] {
  const parsed = parseZoneFile(text, origin === undefined ? {} : { origin });
  if (parsed.kind !== 'ok') throw new Error(`expected ok, got line ${parsed.line}: ${parsed.message}`);
  return parsed.records;
}

const KEYGEN_FRAGMENT = [
  '; DKIM key for example.com, selector s2026',
  '$ORIGIN example.com.',
  '$TTL 3600',
  's2026._domainkey IN TXT ( "v=DKIM1; k=rsa; "   ; the key follows',
  '        "p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A"',
  '        "MIIBCgKCAQEA" )',
  '',
].join('\n');

describe('parseZoneFile: records', () => {
  it('reads a TXT record split over lines in parentheses, with comments', () => {
    expect(records(KEYGEN_FRAGMENT)).toEqual([
      {
        name: 's2026._domainkey.example.com',
        ttl: 3600,
        strings: ['v=DKIM1; k=rsa; ', 'p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A', 'MIIBCgKCAQEA'],
      },
    ]);
  });

  it.each<[string, string, ZoneTxtRecord[]]>([
    ['an absolute owner', 'S1._DomainKey.Example.COM. TXT "x"', [{ name: 's1._domainkey.example.com', ttl: null, strings: ['x'] }]],
    ['the root as owner', '. TXT "x"', [{ name: '', ttl: null, strings: ['x'] }]],
    ['TTL before class', 'a.test. 300 IN TXT "x"', [{ name: 'a.test', ttl: 300, strings: ['x'] }]],
    ['class before TTL', 'a.test. in 300 txt "x"', [{ name: 'a.test', ttl: 300, strings: ['x'] }]],
    ['a TTL in units', 'a.test. 1h30M IN TXT "x"', [{ name: 'a.test', ttl: 5400, strings: ['x'] }]],
    ['the largest TTL', 'a.test. 2147483647 TXT "x"', [{ name: 'a.test', ttl: 2147483647, strings: ['x'] }]],
    ['unquoted strings', 'a.test. TXT v=DKIM1; comment', [{ name: 'a.test', ttl: null, strings: ['v=DKIM1'] }]],
    ['a semicolon and parentheses inside quotes', 'a.test. TXT "k=rsa; (p)"', [{ name: 'a.test', ttl: null, strings: ['k=rsa; (p)'] }]],
    ['escaped quotes and backslashes', 'a.test. TXT "say \\"hi\\" \\\\o/"', [{ name: 'a.test', ttl: null, strings: ['say "hi" \\o/'] }]],
    ['decimal escapes', 'a.test. TXT "a\\059b\\000\\255"', [{ name: 'a.test', ttl: null, strings: ['a;b\u0000\u00ff'] }]],
    ['escapes in unquoted strings', 'a.test. TXT a\\ b\\;c', [{ name: 'a.test', ttl: null, strings: ['a b;c'] }]],
    ['an empty string', 'a.test. TXT ""', [{ name: 'a.test', ttl: null, strings: [''] }]],
    ['a string of 255 octets', `a.test. TXT "${'x'.repeat(255)}"`, [{ name: 'a.test', ttl: null, strings: ['x'.repeat(255)] }]],
    ['literal non-ASCII text as UTF-8 octets', 'a.test. TXT "é"', [{ name: 'a.test', ttl: null, strings: ['\u00c3\u00a9'] }]],
    ['strings glued to quotes', 'a.test. TXT "one""two"', [{ name: 'a.test', ttl: null, strings: ['one', 'two'] }]],
    ['CRLF line endings', 'a.test. TXT "x"\r\nb.test. TXT "y"\r\n', [
      { name: 'a.test', ttl: null, strings: ['x'] },
      { name: 'b.test', ttl: null, strings: ['y'] },
    ]],
    ['a byte order mark', '\ufeffa.test. TXT "x"', [{ name: 'a.test', ttl: null, strings: ['x'] }]],
    ['blank and comment lines, and no final newline', '\n; c\n   \n\r\na.test. TXT "x" ; c', [{ name: 'a.test', ttl: null, strings: ['x'] }]],
    ['an escaped non-dot character in a name', 'a\\_b.test. TXT "x"', [{ name: 'a_b.test', ttl: null, strings: ['x'] }]],
  ])('reads %s', (_title, text, expected) => {
    expect(records(text)).toEqual(expected);
  });

  it('skips records of other types and other classes without error', () => {
    const text = [
      '$ORIGIN example.com.',
      '@ 300 IN A 192.0.2.1',
      '@ IN MX 10 mail',
      'www CNAME @',
      '@ IN AAAA 2001:db8::1',
      '@ CH TXT "chaos"',
      '@ IN SOA ns hostmaster ( 1 7200 3600',
      '   1209600 3600 )',
      '@ TXT "v=spf1 -all"',
    ].join('\n');
    expect(records(text)).toEqual([{ name: 'example.com', ttl: 300, strings: ['v=spf1 -all'] }]);
  });

  it('resolves @, relative names and a blank owner against the origin', () => {
    const text = [
      '$ORIGIN example.com.',
      '@ TXT "apex"',
      '  TXT "apex again"',
      's1._domainkey TXT "rel"',
      '\tTXT "rel again"',
      '$ORIGIN sub',
      'deep TXT "relative origin"',
      '$ORIGIN other.test.',
      'x.example.com. TXT "absolute"',
      '  TXT "follows the last owner"',
    ].join('\n');
    expect(records(text).map((record) => [record.name, record.strings[0]])).toEqual([
      ['example.com', 'apex'],
      ['example.com', 'apex again'],
      ['s1._domainkey.example.com', 'rel'],
      ['s1._domainkey.example.com', 'rel again'],
      ['deep.sub.example.com', 'relative origin'],
      ['x.example.com', 'absolute'],
      ['x.example.com', 'follows the last owner'],
    ]);
  });

  it('takes the origin from the options, with or without a trailing dot', () => {
    expect(records('s1._domainkey TXT "x"', 'Example.COM')).toEqual([{ name: 's1._domainkey.example.com', ttl: null, strings: ['x'] }]);
    expect(records('@ TXT "x"', 'example.com.')).toEqual([{ name: 'example.com', ttl: null, strings: ['x'] }]);
    expect(records('@ TXT "x"', '.')).toEqual([{ name: '', ttl: null, strings: ['x'] }]);
  });

  it('uses an explicit TTL, else $TTL, else the last explicit TTL, else null', () => {
    const text = [
      'a.test. TXT "none yet"',
      'b.test. 60 TXT "explicit"',
      'c.test. TXT "last explicit"',
      '$TTL 1d',
      'd.test. TXT "default"',
      'e.test. 5 TXT "explicit again"',
      'f.test. TXT "default again"',
    ].join('\n');
    expect(records(text).map((record) => record.ttl)).toEqual([null, 60, 60, 86400, 5, 86400]);
  });

  it('keeps several records at one name as separate records, in order', () => {
    expect(records('a.test. TXT "one" "two"\na.test. TXT "three"')).toEqual([
      { name: 'a.test', ttl: null, strings: ['one', 'two'] },
      { name: 'a.test', ttl: null, strings: ['three'] },
    ]);
  });

  it('accepts nested parentheses and a parenthesis opening the line', () => {
    const text = 'a.test. ( 300\n IN ( TXT ) "x"\n)\n( TXT "y" )';
    expect(records(text)).toEqual([
      { name: 'a.test', ttl: 300, strings: ['x'] },
      { name: 'a.test', ttl: 300, strings: ['y'] },
    ]);
  });
});

describe('parseZoneFile: errors name the line', () => {
  it.each<[string, string, number, RegExp]>([
    ['an unterminated quote', 'a.test. TXT "x"\nb.test. TXT "open', 2, /unterminated quoted string/],
    ['a quoted string across lines', 'a.test. TXT ( "one\n two" )', 1, /cannot span lines/],
    ['a closing parenthesis without an opening one', 'a.test. TXT "x"\n\na.test. TXT "x" )', 3, /"\)" without a matching "\("/],
    ['a parenthesis never closed', '$ORIGIN a.test.\n@ TXT ( "x"\n "y"\n', 2, /"\(" is never closed/],
    ['$INCLUDE', '$ORIGIN a.test.\n$INCLUDE other.zone', 2, /\$INCLUDE is not supported/],
    ['an unknown directive', '$GENERATE 1-2 a$ TXT "x"', 1, /unknown directive "\$GENERATE"/],
    ['$ORIGIN without a value', '\n$ORIGIN ; none', 2, /\$ORIGIN needs a value/],
    ['$ORIGIN with two values', '$ORIGIN a.test. b.test.', 1, /takes one value/],
    ['a bad $TTL', '$TTL forever', 1, /invalid \$TTL "forever"/],
    ['a relative name without origin', 'a.test. TXT "x"\ns1._domainkey TXT "x"', 2, /relative name "s1._domainkey" needs an origin/],
    ['@ without origin', '@ TXT "x"', 1, /"@" needs an origin/],
    ['a relative $ORIGIN without origin', '$ORIGIN example', 1, /needs an origin/],
    ['a blank owner with no previous owner', '\n  TXT "x"', 2, /has no owner name/],
    ['an empty label', 'a..test. TXT "x"', 1, /empty label in name "a..test."/],
    ['a leading dot', '.a.test. TXT "x"', 1, /empty label/],
    ['a label over 63 octets', `${'l'.repeat(64)}.test. TXT "x"`, 1, /label of 64 octets/],
    ['a name over 253 characters', `${'abcdefghi.'.repeat(26)} TXT "x"`, 1, /longer than 253/],
    ['an escaped dot in a name', 'a\\.b.test. TXT "x"', 1, /escaped dot/],
    ['a quoted owner', '"a.test." TXT "x"', 1, /owner name must not be quoted/],
    ['a TTL over 2^31-1', 'a.test. 2147483648 TXT "x"', 1, /invalid TTL "2147483648"/],
    ['a malformed TTL', 'a.test. 3x TXT "x"', 1, /invalid TTL "3x"/],
    ['two TTLs', 'a.test. 1 2 TXT "x"', 1, /a second TTL "2"/],
    ['two classes', 'a.test. IN IN TXT "x"', 1, /a second class "IN"/],
    ['a missing type', 'a.test. 300 IN', 1, /has no type/],
    ['a quoted string where the type belongs', 'a.test. IN "v=DKIM1"', 1, /expected a record type.*found "v=DKIM1"/],
    ['TXT without strings', 'a.test. TXT ; nothing', 1, /has no strings/],
    ['TXT without strings on a later line', 'a.test. TXT "x"\nb.test. (\n TXT\n)', 3, /has no strings/],
    ['a string over 255 octets', `a.test. TXT "x"\na.test. TXT (\n "${'x'.repeat(256)}" )`, 3, /256 octets, over the limit of 255/],
    ['a string over 255 octets through UTF-8', `a.test. TXT "${'é'.repeat(128)}"`, 1, /256 octets/],
    ['a short decimal escape', 'a.test. TXT "\\25"', 1, /\\DDD needs three decimal digits/],
    ['a decimal escape over 255', 'a.test. TXT "\\256"', 1, /over 255/],
    ['a backslash at the end of a line', 'a.test. TXT x\\\nb', 1, /backslash at the end of a line/],
    ['a backslash at the end of the text', 'a.test. TXT "x" y\\', 1, /backslash at the end of a line/],
    ['the generic TYPE16 form', 'a.test. TYPE16 \\# 2 0178', 1, /TYPE16 form is not supported/],
    ['an error after a multi-line record', 'a.test. TXT (\n"x"\n"y" )\nb.test. TXT "z" )', 4, /without a matching/],
  ])('reports %s', (_title, text, line, message) => {
    const parsed = parseZoneFile(text);
    expect(parsed).toMatchObject({ kind: 'error', line });
    expect(parsed.kind === 'error' ? parsed.message : '').toMatch(message);
  });

  it('names the file in the $INCLUDE message when given', () => {
    expect(parseZoneFile('$INCLUDE x', { fileName: 'keys.zone' })).toMatchObject({ message: expect.stringMatching(/in keys\.zone/) });
  });

  it('reports an invalid origin option on line 0', () => {
    expect(parseZoneFile('a.test. TXT "x"', { origin: 'a..b' })).toMatchObject({ kind: 'error', line: 0, message: /invalid origin/ });
  });

  it('shows control characters in messages escaped and long tokens cut short', () => {
    const parsed = parseZoneFile(`a.test. IN "\u0007${'z'.repeat(100)}"`);
    expect(parsed.kind === 'error' ? parsed.message : '').toContain('\\x07zzz');
    expect(parsed.kind === 'error' ? parsed.message.length : 0).toBeLessThan(120);
  });
});

/** Writes a string the way a careful operator would: quoted, with \DDD for bytes outside printable ASCII. */
function quoted(octets: string): string {
  let out = '"';
  for (const char of octets) {
    const code = char.charCodeAt(0);
    if (char === '"' || char === '\\') out += `\\${char}`;
    else if (code < 0x20 || code > 0x7e) out += `\\${String(code).padStart(3, '0')}`;
    else out += char;
  }
  return `${out}"`;
}

describe('parseZoneFile: properties', () => {
  it('reads back any records written in master-file form', () => {
    const label = fc.stringMatching(/^[a-z0-9_][a-z0-9_-]{0,20}$/);
    const octets = fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((code) => String.fromCharCode(code)), maxLength: 255 });
    const record = fc.record({
      labels: fc.array(label, { minLength: 1, maxLength: 5 }),
      ttl: fc.option(fc.integer({ min: 0, max: 2147483647 }), { nil: null }),
      strings: fc.array(octets, { minLength: 1, maxLength: 4 }),
      layout: fc.constantFrom('one line', 'parentheses', 'class first'),
    });
    fc.assert(
      fc.property(fc.array(record, { minLength: 1, maxLength: 6 }), (list) => {
        const text = list
          .map(({ labels, ttl, strings, layout }) => {
            const name = `${labels.join('.')}.`;
            const ttlText = ttl === null ? '' : ` ${ttl}`;
            const data = strings.map(quoted);
            if (layout === 'parentheses') return `${name}${ttlText} IN TXT (\n\t${data.join(' ; c\n\t')} )`;
            if (layout === 'class first') return `${name} IN${ttlText} TXT ${data.join(' ')}`;
            return `${name}${ttlText} TXT ${data.join('')}`;
          })
          .join('\n');
        let lastTtl: number | null = null;
        const expected = list.map(({ labels, ttl, strings }) => {
          lastTtl = ttl ?? lastTtl;
          return { name: labels.join('.'), ttl: lastTtl, strings };
        });
        expect(parseZoneFile(text)).toEqual({ kind: 'ok', records: expected });
      }),
      { numRuns: 300 },
    );
  });

  it('never throws, and errors name a line of the text', () => {
    const alphabet = fc.constantFrom(...'a.@$();"\\ \t\r\n0123456789TXINé\u0000'.split(''), 'TXT', '$ORIGIN', '$TTL', 'IN', '\\0', 'A.', '\ud800');
    const texts = fc.oneof(fc.string({ unit: alphabet, maxLength: 200 }), fc.string({ unit: 'grapheme', maxLength: 200 }));
    fc.assert(
      fc.property(texts, fc.option(fc.string({ maxLength: 20 }), { nil: undefined }), (text, origin) => {
        const parsed: ZoneParse = parseZoneFile(text, origin === undefined ? {} : { origin });
        if (parsed.kind === 'error') {
          expect(parsed.line).toBeGreaterThanOrEqual(0);
          expect(parsed.line).toBeLessThanOrEqual(text.split('\n').length);
          expect(parsed.message.length).toBeGreaterThan(0);
          expect(parsed.message).not.toMatch(/internal zone parser error/);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it.each<[string, (n: number) => string]>([
    ['many records', (n) => 'a.test. 300 IN TXT "v=DKIM1; p=abc" "def"\n'.repeat(n / 40)],
    ['one long unquoted token', (n) => `a.test. TXT ${'x\\;'.repeat(n / 3)}`],
    ['an unterminated quote', (n) => `a.test. TXT "${'\\"'.repeat(n / 2)}`],
    ['one record of many strings in parentheses', (n) => `a.test. TXT (\n${'"x"\n'.repeat(n / 4)})`],
    ['a name of many labels', (n) => `${'a.'.repeat(n / 2)} TXT "x"`],
    ['deep parentheses', (n) => `a.test. TXT ${'('.repeat(n)}`],
    ['long comments', (n) => `; ${'x'.repeat(n)}\na.test. TXT "x"`],
  ])('parses %s in linear time', (_title, make) => {
    const small = make(200_000);
    const large = make(1_600_000);
    const time = (text: string): number => {
      const started = performance.now();
      parseZoneFile(text);
      return performance.now() - started;
    };
    time(small); // warm up
    const smallMs = Math.max(time(small), 1);
    const largeMs = time(large);
    expect(largeMs).toBeLessThan(2000);
    expect(largeMs / smallMs).toBeLessThan(8 * 4); // 8x the input, well under 64x (quadratic)
  });
});
