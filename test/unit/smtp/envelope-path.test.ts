// readEnvelopePath: the address of a MAIL FROM / RCPT TO command as the client wrote it, and the command
// smtp-server's parser gets (quoted strings replaced by a stand-in it accepts).

import { describe, expect, it } from 'vitest';
import { readEnvelopePath } from '../../../src/smtp/envelope-path.js';

describe('readEnvelopePath', () => {
  it.each([
    ['MAIL FROM:<alice@example.com>', 'alice@example.com', 'MAIL FROM:<alice@example.com>'],
    ['MAIL FROM: <alice@example.com> SIZE=100', 'alice@example.com', 'MAIL FROM: <alice@example.com> SIZE=100'],
    ['MAIL FROM:<>', '', 'MAIL FROM:<>'],
    ['RCPT TO:<user@xn--bcher-kva.example>', 'user@xn--bcher-kva.example', 'RCPT TO:<user@xn--bcher-kva.example>'],
    ['RCPT TO:<Postmaster>', 'Postmaster', 'RCPT TO:<Postmaster>'],
    ['MAIL FROM:<@a.example,@b.example:user@example.org>', 'user@example.org', 'MAIL FROM:<@a.example,@b.example:user@example.org>'],
    ['MAIL FROM:<"john doe"@example.org> BODY=8BITMIME', '"john doe"@example.org', 'MAIL FROM:<"q"@example.org> BODY=8BITMIME'],
    ['RCPT TO:<"a>b"@example.org>', '"a>b"@example.org', 'RCPT TO:<"q"@example.org>'],
    ['RCPT TO:<"\\"x\\" y"@example.org>', '"\\"x\\" y"@example.org', 'RCPT TO:<"q"@example.org>'],
    ['RCPT TO:<"zoë z"@exämple.test>', '"zoë z"@exämple.test', 'RCPT TO:<"q"@exämple.test>'],
  ])('%s: the address as written, smtp-server parses a stand-in for quoted strings', (command, address, forParser) => {
    expect(readEnvelopePath(command)).toEqual({ address, forParser });
  });

  it.each([
    ['no colon', 'MAIL FROM <a@example.com>'],
    ['no angle brackets', 'MAIL FROM:a@example.com'],
    ['an unclosed bracket', 'MAIL FROM:<a@example.com'],
    ['an unclosed quote', 'MAIL FROM:<"a@example.com>'],
    ['a bracket inside the path', 'MAIL FROM:<a<b@example.com>'],
    ['a control character in a quoted string', 'MAIL FROM:<"a\tb"@example.com>'],
    ['a quoted pair of a control character', 'MAIL FROM:<"a\\\rb"@example.com>'],
    ['a C1 control in a quoted string', 'MAIL FROM:<"a\u0085b"@example.com>'],
    ['a zero-width space in a quoted string', 'RCPT TO:<"a\u200bb"@example.com>'],
    ['a quoted pair at the very end', 'RCPT TO:<"a\\'],
  ])('leaves a command with %s to smtp-server (null)', (_name, command) => {
    expect(readEnvelopePath(command)).toBeNull();
  });
});
