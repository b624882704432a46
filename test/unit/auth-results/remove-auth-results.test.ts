import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { findOurAuthResults, removeFields } from '../../../src/auth-results/remove-auth-results.js';
import { frameMessage } from '../../../src/mail/header-fields.js';

const ID = 'mx.example.net';

function message(...headerLines: string[]): Buffer {
  return Buffer.from([...headerLines, 'From: a@example.com', '', 'body line', ''].join('\r\n'), 'latin1');
}

function ourFields(buf: Buffer, id = ID): string[] {
  const { fields } = frameMessage(buf);
  return findOurAuthResults(fields, buf, id).map((f) => buf.toString('latin1', f.start, f.end));
}

describe('findOurAuthResults', () => {
  it.each([
    ['the plain form', 'Authentication-Results: mx.example.net; dkim=pass header.d=example.com'],
    ['another case', 'Authentication-Results: MX.Example.NET; dkim=pass'],
    ['a lower-case field name', 'authentication-results: mx.example.net; dkim=pass'],
    ['blanks before the colon', 'Authentication-Results  : mx.example.net; dkim=pass'],
    ['no space after the colon', 'Authentication-Results:mx.example.net; dkim=pass'],
    ['a version', 'Authentication-Results: mx.example.net 1; dkim=pass'],
    ['a comment before the id', 'Authentication-Results: (forged) mx.example.net; dkim=pass'],
    ['nested comments with quoted-pairs', 'Authentication-Results: (a (b \\) c) d) mx.example.net; dkim=pass'],
    ['a comment right after the id', 'Authentication-Results: mx.example.net(comment); dkim=pass'],
    ['folding before the id', 'Authentication-Results:\r\n\tmx.example.net;\r\n\tdkim=pass'],
    ['a quoted-string id', 'Authentication-Results: "mx.example.net"; dkim=pass'],
    ['a quoted-string id with quoted-pairs', 'Authentication-Results: "mx\\.example.net"; dkim=pass'],
    ['a trailing dot', 'Authentication-Results: mx.example.net.; dkim=pass'],
    ['no result', 'Authentication-Results: mx.example.net; none'],
    ['garbage after the id', 'Authentication-Results: mx.example.net/evil dkim=pass'],
    ['nothing after the id', 'Authentication-Results: mx.example.net'],
  ])('finds our field in %s', (_name, line) => {
    expect(ourFields(message(line))).toEqual([`${line}\r\n`]);
  });

  it.each([
    ['another id', 'Authentication-Results: mx.example.org; dkim=pass'],
    ['our id as a prefix of theirs', 'Authentication-Results: mx.example.net.evil; dkim=pass'],
    ['their id ending in ours', 'Authentication-Results: evil-mx.example.net; dkim=pass'],
    ['our id inside a comment only', 'Authentication-Results: (mx.example.net) other.example; dkim=pass'],
    ['our id later in the field', 'Authentication-Results: other.example; dkim=pass header.d=mx.example.net'],
    ['an unterminated comment', 'Authentication-Results: (mx.example.net; dkim=pass'],
    ['an unterminated quote', 'Authentication-Results: "mx.example.net; dkim=pass'],
    ['an empty field', 'Authentication-Results:'],
    ['ARC-Authentication-Results', 'ARC-Authentication-Results: i=1; mx.example.net; dkim=pass'],
    ['a look-alike field name', 'X-Authentication-Results: mx.example.net; dkim=pass'],
  ])('keeps %s', (_name, line) => {
    expect(ourFields(message(line))).toEqual([]);
  });

  it('finds every copy, in header order, and keeps the others', () => {
    const buf = message(
      'Authentication-Results: mx.example.net; dkim=fail',
      'Received: from x by y',
      'Authentication-Results: other.example; dkim=pass',
      'Authentication-Results: mx.example.net; dkim=pass',
    );
    expect(ourFields(buf)).toEqual(['Authentication-Results: mx.example.net; dkim=fail\r\n', 'Authentication-Results: mx.example.net; dkim=pass\r\n']);
  });

  it('compares a UTF-8 authserv-id by its bytes', () => {
    const buf = Buffer.from('Authentication-Results: mx.bücher.example; dkim=pass\r\n\r\n', 'utf8');
    expect(ourFields(buf, 'mx.bücher.example')).toHaveLength(1);
    expect(ourFields(buf, 'mx.bucher.example')).toHaveLength(0);
  });

  it('finds nothing for an empty authserv-id', () => {
    expect(ourFields(message('Authentication-Results: ; dkim=pass'), '')).toEqual([]);
  });

  it('never throws on arbitrary header bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.constantFrom(ID, 'x', '"'), (bytes, id) => {
        const buf = Buffer.concat([Buffer.from('Authentication-Results:'), Buffer.from(bytes)]);
        const found = findOurAuthResults(frameMessage(buf).fields, buf, id);
        expect(Array.isArray(found)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('stays linear on a huge field of open comments', () => {
    const buf = Buffer.from(`Authentication-Results: ${'('.repeat(500_000)}\r\n\r\n`);
    const started = performance.now();
    expect(ourFields(buf)).toEqual([]);
    expect(performance.now() - started).toBeLessThan(500);
  });
});

describe('removeFields', () => {
  it('returns the message without the removed fields, body untouched and not copied', () => {
    const buf = message(
      'Authentication-Results: mx.example.net; dkim=fail',
      'Received: from x by y',
      'Authentication-Results: other.example; dkim=pass',
      'Authentication-Results: mx.example.net; dkim=pass',
    );
    const { fields } = frameMessage(buf);
    const slices = removeFields(buf, findOurAuthResults(fields, buf, ID));
    expect(Buffer.concat(slices).toString('latin1')).toBe(
      message('Received: from x by y', 'Authentication-Results: other.example; dkim=pass').toString('latin1'),
    );
    const last = slices[slices.length - 1]!;
    expect(last.buffer).toBe(buf.buffer);
    expect(last.byteOffset + last.length).toBe(buf.byteOffset + buf.length);
  });

  it('returns the whole buffer when nothing is removed', () => {
    const buf = message('Subject: hi');
    expect(removeFields(buf, [])).toEqual([buf]);
  });

  it('accepts fields in any order and removes a field at the very top', () => {
    const buf = message('Authentication-Results: mx.example.net; a', 'Subject: s', 'Authentication-Results: mx.example.net; b');
    const found = findOurAuthResults(frameMessage(buf).fields, buf, ID);
    expect(Buffer.concat(removeFields(buf, [...found].reverse())).toString('latin1')).toBe(message('Subject: s').toString('latin1'));
  });
});
