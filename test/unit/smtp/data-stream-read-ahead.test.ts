// The DATA stream of the patched smtp-server reads no chunk ahead of a slow reader: the bytes taken off a client's
// socket but not yet given to the reader stay within one 64 KB read and the parser's high-water mark, so 500 clients of a daemon that has fallen
// behind wait in the kernel (TCP flow control) instead of in our memory. The message still arrives whole.
// Touches: loopback sockets (an smtp-server in-process and a client).

import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { getDefaultHighWaterMark } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { SMTPServer } from 'smtp-server';
import { afterEach, describe, expect, it } from 'vitest';
import { installSmtpServerAdapter } from '../../../src/smtp/smtp-server-adapter.js';

installSmtpServerAdapter();

/** A 2 MB body of 76-character lines (no line starts with a dot). */
function bigBody(): Buffer {
  const line = 'x'.repeat(74) + '\r\n';
  return Buffer.from(`Subject: big\r\n\r\n${line.repeat(Math.ceil((2 * 1024 * 1024) / line.length))}`, 'latin1');
}

let server: SMTPServer | null = null;
let client: Socket | null = null;
afterEach(async () => {
  client?.destroy();
  if (server) await new Promise<void>((resolve) => server!.close(() => resolve()));
  server = null;
  client = null;
});

describe('DATA stream read-ahead', () => {
  it('holds at most a few reads of a client whose message is read slowly, and delivers it whole', async () => {
    let serverSocket: Socket | null = null;
    let consumed = 0;
    let mostAhead = 0;
    let received: Promise<string> | null = null;
    server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onData(stream, _session, callback) {
        received = (async () => {
          const hash = createHash('sha256');
          for await (const chunk of stream as AsyncIterable<Buffer>) {
            consumed += chunk.length;
            hash.update(chunk);
            await sleep(5); // a reader that has fallen behind (a slow spool)
            // what the process read from the client but the reader has not had yet
            mostAhead = Math.max(mostAhead, serverSocket!.bytesRead - consumed);
          }
          callback(null, 'ok');
          return hash.digest('hex');
        })();
      },
    });
    server.server.on('connection', (s: Socket) => (serverSocket = s));
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const port = (server.server.address() as { port: number }).port;

    client = connect({ host: '127.0.0.1', port });
    let replies = '';
    client.on('data', (d: Buffer) => (replies += d.toString('latin1')));
    const until = async (pattern: RegExp) => {
      for (let i = 0; i < 3000 && !pattern.test(replies); i++) await sleep(10);
      expect(replies).toMatch(pattern);
    };
    await until(/^220 /m);
    client.write('EHLO client.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n');
    await until(/^354 /m);
    const body = bigBody();
    client.write(body);
    client.write('\r\n.\r\n');
    await until(/^250 ok/m);

    const expected = createHash('sha256').update(Buffer.concat([body, Buffer.from('\r\n')])).digest('hex');
    expect(await received).toBe(expected);
    // ahead of the reader: one read of at most 64 KB, what the parser's writable side takes before it says
    // "wait" (Node's default high-water mark: 16 KB on Node 20, 64 KB from Node 22), and the commands; a DATA
    // stream that reads ahead holds a read more (Node 20: 128 KB against 64 KB; Node 24: 147 KB against 128 KB)
    expect(mostAhead).toBeLessThan(64 * 1024 + getDefaultHighWaterMark(false) + 16 * 1024);
  }, 60_000);
});
