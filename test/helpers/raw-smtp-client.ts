// A line-oriented SMTP/LMTP client on a raw socket for tests that must control every byte
// (smuggling sequences, pipelining, disconnects); every read is bounded.

import { connect, type Socket } from 'node:net';
import { expect } from 'vitest';

export type Reply = { code: number; text: string };

export class RawClient {
  private buffer = '';
  private waiters: Array<() => void> = [];
  private closed = false;
  constructor(readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }
  /** Connects to 127.0.0.1:port, from `localAddress` (another loopback address, e.g. 127.0.0.9) when given. */
  static async open(port: number, localAddress?: string): Promise<RawClient> {
    const socket = connect({ host: '127.0.0.1', port, ...(localAddress ? { localAddress } : {}) });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new RawClient(socket);
    const greeting = await client.read();
    expect(greeting.code).toBe(220);
    return client;
  }
  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
  /** Reads one complete (possibly multi-line) reply; bounded by timeoutMs. */
  async read(timeoutMs = 5000): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = /^(?:\d{3}-[^\n]*\n)*(\d{3})(?: [^\n]*)?\r?\n/.exec(this.buffer);
      if (match) {
        const text = match[0];
        this.buffer = this.buffer.slice(text.length);
        return { code: Number(match[1]), text };
      }
      if (this.closed) throw new Error(`connection closed; unread: ${JSON.stringify(this.buffer)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms; unread: ${JSON.stringify(this.buffer)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
  async command(line: string, timeoutMs?: number): Promise<Reply> {
    this.socket.write(`${line}\r\n`);
    return this.read(timeoutMs);
  }
  write(data: Buffer | string): void {
    this.socket.write(data);
  }
  /** Everything received and not yet read, after waiting ms. */
  async drain(ms: number): Promise<string> {
    await new Promise((r) => setTimeout(r, ms));
    const out = this.buffer;
    this.buffer = '';
    return out;
  }
  close(): void {
    this.socket.destroy();
  }
}
