// Replies to pipelined commands (RFC 2920): the client that sends MAIL, RCPT and DATA together gets their three
// replies in one write, after the next hop answered each; a client that waits for each reply gets each at once.
// Touches: loopback sockets (the daemon in-process, an smtp-server next hop), a temp dir of keys.

import { connect, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Harness } from '../../helpers/daemon-harness.js';

const harness = new Harness();
beforeAll(() => harness.setup());
afterEach(() => harness.cleanup());
afterAll(() => harness.dispose());

/** A socket that keeps each chunk it reads apart, so a test can tell one write of the server's from several. */
class ChunkClient {
  readonly chunks: string[] = [];
  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.chunks.push(d.toString('latin1')));
    socket.on('error', () => {});
  }
  static async open(port: number): Promise<ChunkClient> {
    const socket = connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new ChunkClient(socket);
    await client.until((text) => text.includes('220 '));
    return client;
  }
  get text(): string {
    return this.chunks.join('');
  }
  send(text: string): void {
    this.socket.write(text);
  }
  /** Waits (bounded) until everything read so far passes `done`; returns the chunks read since `from`. */
  async until(done: (text: string) => boolean, from = 0, timeoutMs = 5000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    while (!done(this.chunks.slice(from).join(''))) {
      if (Date.now() > deadline) throw new Error(`timed out; read so far: ${JSON.stringify(this.chunks.slice(from))}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.chunks.slice(from);
  }
  close(): void {
    this.socket.destroy();
  }
}

const MESSAGE = 'From: <a@example.com>\r\nSubject: pipelined\r\n\r\nbody\r\n.\r\n';

describe('replies to pipelined commands', () => {
  it('answers MAIL, RCPT and DATA sent together in one write, then relays the message', async () => {
    // the next hop takes its time with RCPT: the reply to MAIL must wait for it rather than go out alone
    const gate = await harness.startGate(harness.config(), { onRcptTo: () => null });
    const client = await ChunkClient.open(gate.port);
    client.send('EHLO client.test\r\n');
    await client.until((t) => /\r\n250 [^\r\n]*\r\n$/.test(t) && t.includes('PIPELINING'));
    for (let n = 0; n < 3; n++) {
      const from = client.chunks.length;
      client.send('MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n');
      const replies = await client.until((t) => t.includes('354 '), from);
      expect(replies.join('')).toMatch(/^250 [^\r\n]*\r\n250 [^\r\n]*\r\n354 [^\r\n]*\r\n$/);
      expect(replies).toHaveLength(1);
      const sent = client.chunks.length;
      client.send(MESSAGE);
      const final = await client.until((t) => t.includes('\r\n'), sent);
      expect(final.join('')).toMatch(/^250 2\.0\.0 Ok: queued as /);
    }
    expect(gate.nextHop.messages).toHaveLength(3);
    client.close();
  });

  it('answers each command at once when the client waits for each reply', async () => {
    const gate = await harness.startGate(harness.config());
    const client = await ChunkClient.open(gate.port);
    for (const [command, code] of [
      ['EHLO client.test', '250 '],
      ['MAIL FROM:<a@example.com>', '250 '],
      ['RCPT TO:<b@example.org>', '250 '],
      ['DATA', '354 '],
    ] as const) {
      const from = client.chunks.length;
      client.send(`${command}\r\n`);
      const reply = await client.until((t) => new RegExp(`(^|\\n)${code}`).test(t), from);
      expect(reply.join('')).toContain(code);
    }
    client.send(MESSAGE);
    await client.until((t) => /\n250 2\.0\.0 Ok: queued as [^\r\n]*\r\n$/.test(t));
    expect(gate.nextHop.messages).toHaveLength(1);
    client.close();
  });

  it('sends a refused recipient straight after the held MAIL reply, in order', async () => {
    const gate = await harness.startGate(harness.config(), { onRcptTo: (address) => (address.startsWith('nobody') ? { code: 550, message: 'no such user' } : null) });
    const client = await ChunkClient.open(gate.port);
    client.send('EHLO client.test\r\n');
    await client.until((t) => /\r\n250 [^\r\n]*\r\n$/.test(t));
    const from = client.chunks.length;
    client.send('MAIL FROM:<a@example.com>\r\nRCPT TO:<nobody@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n');
    const replies = (await client.until((t) => t.includes('354 '), from)).join('');
    expect(replies.split('\r\n').filter(Boolean).map((l) => l.slice(0, 3))).toEqual(['250', '550', '250', '354']);
    client.close();
  });
});
