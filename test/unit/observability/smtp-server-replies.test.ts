import { describe, expect, it } from 'vitest';
import { MAX_KEPT_COMMAND, watchSmtpServerReplies } from '../../../src/observability/smtp-server-replies.js';

function watch() {
  const seen: Array<[string, string | null, string]> = [];
  const logger = watchSmtpServerReplies((...args) => seen.push(args));
  const command = (cid: string, name: string, line: string) => logger.debug({ tnx: 'command', cid, command: name }, 'C:', line);
  const reply = (cid: string, line: string) => logger.debug({ tnx: 'send', cid }, 'S:', line);
  return { seen, logger, command, reply };
}

describe('watchSmtpServerReplies', () => {
  it('reports each 4xx/5xx reply with the last command of its session, and no 2xx/3xx', () => {
    const { seen, command, reply } = watch();
    command('a', 'MAIL', 'MAIL FROM:<x@example.com> SIZE=9');
    command('b', 'EHLO', 'EHLO b.test');
    reply('b', '250-hello');
    reply('a', '552 5.3.4 too big');
    reply('b', '354 go ahead');
    reply('b', '421 4.3.2 shutting down');
    expect(seen).toEqual([
      ['a', 'MAIL FROM:<x@example.com> SIZE=9', '552 5.3.4 too big'],
      ['b', 'EHLO b.test', '421 4.3.2 shutting down'],
    ]);
  });

  it('keeps only the mechanism of an AUTH command, and no continuation line', () => {
    const { seen, command, reply } = watch();
    command('a', 'AUTH', 'AUTH PLAIN AGFsaWNlAHNlY3JldA==');
    reply('a', '535 5.7.8 bad credentials');
    command('a', 'AUTH', 'AUTH LOGIN');
    command('a', 'AUTH', '/* secured */');
    reply('a', '535 5.7.8 bad credentials');
    expect(seen.map((s) => s[1])).toEqual(['AUTH PLAIN', 'AUTH']);
  });

  it('says null before any command, keeps a bounded line, and forgets a session once it closed', () => {
    const { seen, logger, command, reply } = watch();
    reply('a', '421 4.7.0 too many connections');
    command('a', 'NOOP', `NOOP ${'x'.repeat(20_000)}`);
    reply('a', '500 5.5.2 line too long');
    logger.info({ tnx: 'close', cid: 'a' }, 'closed');
    reply('a', '421 4.4.2 timeout');
    expect(seen[0]![1]).toBeNull();
    expect(seen[1]![1]!.length).toBe(MAX_KEPT_COMMAND);
    expect(seen[2]![1]).toBeNull();
  });
});
