import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { allAuthorDomains, authorDomains, firstAddress, mailboxAddresses } from '../../../src/mail/author-domains.js';
import { frameMessage } from '../../../src/mail/header-fields.js';

describe('author domains', () => {
  it.each([
    ['a bare address', 'alice@Example.COM', 'alice@Example.COM'],
    ['an angle address with a name', 'Alice <alice@example.com>', 'alice@example.com'],
    ['a quoted name with an @ and a comma', '"Bob, the @boss" <bob@example.org>', 'bob@example.org'],
    ['a comment', 'alice@example.com (Alice at work, @home)', 'alice@example.com'],
    ['a comment that looks like an address', '(x@evil.example) Alice <alice@example.com>', 'alice@example.com'],
    ['several mailboxes', 'Alice <alice@a.example>, Bob <bob@b.example>', 'alice@a.example'],
    ['a group', 'friends: Alice <alice@a.example>, bob@b.example;', 'alice@a.example'],
    ['folding', 'Alice\r\n <alice@example.com>', 'alice@example.com'],
    ['no address', 'undisclosed', null],
    ['a quoted local part', '"a@b"@example.com', '"a@b"@example.com'.replace('"a@b"', '"a@b"')],
  ])('reads %s', (_name, value, expected) => {
    const got = firstAddress(value);
    if (expected === null) expect(got).toBeNull();
    else expect(got?.endsWith(expected.slice(expected.lastIndexOf('@')))).toBe(true);
  });

  it('gives one domain per From field, lower-cased', () => {
    const framed = frameMessage(Buffer.from('From: Alice <alice@Example.COM>\r\nTo: x@y\r\nFrom: nobody\r\n\r\nbody\r\n'));
    expect(authorDomains(framed)).toEqual(['example.com', null]);
  });

  it('gives the domain of every mailbox of every From field, for the signing limits', () => {
    const framed = frameMessage(
      Buffer.from('From: "Smith, J" <j@A.example.>, (x@evil.example) b@b.example\r\nTo: x@y\r\nFrom: friends: c@c.example, nobody;\r\n\r\nbody\r\n'),
    );
    expect(allAuthorDomains(framed)).toEqual(['a.example', 'b.example', 'c.example']);
    expect(mailboxAddresses('Alice <alice@a.example>, Bob <bob@b.example>')).toEqual(['alice@a.example', 'bob@b.example']);
  });

  it('never throws on any From value', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (v) => {
        const a = firstAddress(v);
        expect(a === null || a.includes('@')).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});
