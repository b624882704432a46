import { describe, expect, it } from 'vitest';
import {
  chooseSignedHeaders,
  parseHeaderList,
  selectSignedFields,
  type HeaderListEntry,
} from '../../../src/dkim/header-selection.js';
import { frameMessage, type FramedMessage } from '../../../src/mail/header-fields.js';

function frame(lines: string[]): FramedMessage {
  return frameMessage(Buffer.from(`${lines.join('\r\n')}\r\n\r\nbody\r\n`, 'latin1'));
}

/** The selected fields as their text without CRLF, null for "nothing". */
function select(framed: FramedMessage, signedHeaders: string[]): (string | null)[] {
  return selectSignedFields(framed.fields, signedHeaders).map((f) =>
    f ? framed.buf.toString('latin1', f.start, f.end).replace(/\r\n$/, '') : null,
  );
}

function entries(list: string): HeaderListEntry[] {
  const parsed = parseHeaderList(list);
  if (parsed.kind !== 'ok') throw new Error(parsed.reason);
  return parsed.entries;
}

describe('h= selection, bottom-up (RFC 6376 §5.4.2)', () => {
  const framed = frame(['Received: r1', 'X-A: 1', 'From: f@example.com', 'x-a: 2', 'Received: r2', 'X-a: 3', 'To: t@example.com']);

  it.each([
    ['one name takes the bottom instance', ['x-a'], ['X-a: 3']],
    ['the second occurrence takes the second from the bottom', ['x-a', 'x-a'], ['X-a: 3', 'x-a: 2']],
    ['the n-th occurrence takes the n-th from the bottom', ['x-a', 'x-a', 'x-a'], ['X-a: 3', 'x-a: 2', 'X-A: 1']],
    ['an occurrence beyond the instances selects nothing', ['x-a', 'x-a', 'x-a', 'x-a'], ['X-a: 3', 'x-a: 2', 'X-A: 1', null]],
    ['a nonexistent name selects nothing', ['cc'], [null]],
    ['a nonexistent name repeated selects nothing each time', ['cc', 'cc'], [null, null]],
    ['interleaved names count occurrences per name', ['received', 'x-a', 'received', 'x-a'], ['Received: r2', 'X-a: 3', 'Received: r1', 'x-a: 2']],
    ['the order of h= is kept, not the order of the message', ['to', 'from', 'received'], ['To: t@example.com', 'From: f@example.com', 'Received: r2']],
    ['names match whatever their case in the message', ['from', 'to'], ['From: f@example.com', 'To: t@example.com']],
  ])('%s', (_name, signedHeaders, expected) => {
    expect(select(framed, signedHeaders)).toEqual(expected);
  });

  it('never selects a line without a colon', () => {
    const odd = frame(['From: f@example.com', 'no colon here', 'Subject: s']);
    expect(odd.fields.map((f) => f.name)).toEqual(['From', '', 'Subject']);
    expect(select(odd, ['', 'from', 'subject'])).toEqual([null, 'From: f@example.com', 'Subject: s']);
  });

  it('selects a folded field whole', () => {
    const folded = frame(['From: f@example.com', 'Subject: a', ' b', '\tc']);
    expect(select(folded, ['subject'])).toEqual(['Subject: a\r\n b\r\n\tc']);
  });
});

describe('the signer\'s headerlist (Momentum modifiers, interface.md §3)', () => {
  // Two To, two Received, one From, one Subject; no Cc, no Reply-To.
  const framed = frame(['Received: r1', 'Received: r2', 'From: f@example.com', 'To: t1@example.com', 'Subject: s', 'To: t2@example.com']);

  it.each([
    ['From', ['From']],
    ['From:From', ['From', 'From']],
    ['From:From:From', ['From', 'From', 'From']],
    ['From:To', ['From', 'To']],
    ['From:To:To', ['From', 'To', 'To']],
    ['From:To:To:To', ['From', 'To', 'To', 'To']],
    ['From:To?', ['From', 'To']],
    ['From:To?:To?:To?', ['From', 'To', 'To']],
    ['From:To+', ['From', 'To', 'To']],
    ['From:To+:To', ['From', 'To', 'To', 'To']],
    ['From:To+:To?', ['From', 'To', 'To']],
    ['From:To+:To+', ['From', 'To', 'To']],
    ['From:To*', ['From', 'To', 'To']],
    ['From:To*:To*', ['From', 'To', 'To', 'To']],
    ['From:To:To*', ['From', 'To', 'To']],
    ['From:Cc', ['From', 'Cc']],
    ['From:Cc:Cc', ['From', 'Cc', 'Cc']],
    ['From:Cc?', ['From']],
    ['From:Cc+', ['From']],
    ['From:Cc*', ['From', 'Cc']],
    ['From:Received+:Subject', ['From', 'Received', 'Received', 'Subject']],
    ['Subject:From:Subject', ['Subject', 'From', 'Subject']],
    ['from:SUBJECT:tO', ['from', 'SUBJECT', 'tO']],
    [' From : Subject ', ['From', 'Subject']],
    ['From:From:Reply-To:Subject:Date:To:Cc?:Message-ID?:MIME-Version?:Content-Type?', ['From', 'From', 'Reply-To', 'Subject', 'Date', 'To']],
  ])('%s gives h=%j', (list, expected) => {
    expect(chooseSignedHeaders(framed.fields, entries(list))).toEqual(expected);
  });

  it.each([
    ['From:To:To:To', ['From: f@example.com', 'To: t2@example.com', 'To: t1@example.com', null]],
    ['From:Cc*:Received+', ['From: f@example.com', null, 'Received: r2', 'Received: r1']],
  ])('%s covers the instances the verifier will select, and asserts the rest absent', (list, expected) => {
    const h = chooseSignedHeaders(framed.fields, entries(list)).map((n) => n.toLowerCase());
    expect(select(framed, h)).toEqual(expected);
  });

  it('reads each modifier', () => {
    expect(entries('From:To?:Cc+:Bcc*')).toEqual([
      { name: 'From', lowerName: 'from', mode: 'one' },
      { name: 'To', lowerName: 'to', mode: 'one-optional' },
      { name: 'Cc', lowerName: 'cc', mode: 'all' },
      { name: 'Bcc', lowerName: 'bcc', mode: 'all-assert' },
    ]);
  });

  it('accepts From with a modifier as the required From', () => {
    expect(parseHeaderList('From*:Subject').kind).toBe('ok');
    expect(parseHeaderList('fROM?').kind).toBe('ok');
  });
});

describe('headerlist errors', () => {
  it.each([
    ['an empty list', '', /empty/],
    ['only separators', ' : :: ', /empty/],
    ['an empty entry between names', 'From::Subject', /entry 2 is empty/],
    ['a list without From', 'To:Subject:Date', /From/],
    ['From only inside another name', 'From-X:X-From', /From/],
    ['a name with a space', 'From:Reply To', /bad header name/],
    ['a name with a tab', 'From:Reply\tTo', /bad header name/],
    ['a name with a non-ASCII character', 'From:Sübject', /bad header name/],
    ['a name with a control character', 'From:Sub\x01ject', /bad header name/],
    ['a modifier alone', 'From:?', /bad header name/],
    ['two modifiers', 'From:To+*', /bad header name/],
    ['a modifier inside a name', 'From:T?o', /bad header name/],
    ['a modifier at the start', 'From:*To', /bad header name/],
  ])('refuses %s', (_name, list, message) => {
    const parsed = parseHeaderList(list);
    expect(parsed.kind).toBe('error');
    if (parsed.kind === 'error') expect(parsed.reason).toMatch(message);
  });

  // ";" is ftext, but a DKIM tag value cannot hold it (RFC 6376 §3.2 VALCHAR excludes %x3B):
  // a signer that accepted it would write "h=From:X;Y" and make unparseable signatures.
  it('refuses a name with ";", which cannot appear in h= (RFC 6376 §3.2)', () => {
    expect(parseHeaderList('From:X-A;b=1').kind).toBe('error');
  });
});
