// A line-oriented SMTP/LMTP client on a raw socket for tests that must control every byte
// (smuggling sequences, pipelining, disconnects, STARTTLS); every read is bounded.

import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { expect } from 'vitest';

export type Reply = { code: number; text: string };

export class RawClient {
  private buffer = '';
  private waiters: Array<() => void> = [];
  private closed = false;
  private readonly onData = (chunk: string): void => {
    this.buffer += chunk;
    this.wake();
  };
  private readonly onClose = (): void => {
    this.closed = true;
    this.wake();
  };
  constructor(public socket: Socket | TLSSocket) {
    this.attach(socket);
  }
  private attach(socket: Socket): void {
    socket.setEncoding('latin1');
    socket.on('data', this.onData);
    socket.on('close', this.onClose);
    socket.on('error', () => {});
  }
  /** Connects to 127.0.0.1:port, from `localAddress` (another loopback address, e.g. 127.0.0.9) when given. */
  static async open(port: number, localAddress?: string): Promise<RawClient> {
    const socket = connect({ host: '127.0.0.1', port, noDelay: true, ...(localAddress ? { localAddress } : {}) });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new RawClient(socket);
    const greeting = await client.read();
    expect(greeting.code).toBe(220);
    return client;
  }
  /** After a 220 to STARTTLS: TLS over the same socket (the test certificate is self-signed, so it is not checked). */
  async startTls(): Promise<void> {
    const plain = this.socket;
    plain.off('data', this.onData);
    plain.off('close', this.onClose);
    const secure = tlsConnect({ socket: plain, rejectUnauthorized: false, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    this.socket = secure;
    this.attach(secure);
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
  get isClosed(): boolean {
    return this.closed;
  }
  close(): void {
    this.socket.destroy();
  }
}

/** RFC 5321 §4.5.2 transparency for a test message, with a final CRLF added when missing. */
export function dotStuff(data: Buffer): Buffer {
  let text = data.toString('latin1').replace(/(^|\r\n)\./g, '$1..');
  if (!text.endsWith('\r\n')) text += '\r\n';
  return Buffer.from(text, 'latin1');
}

export type MailOptions = {
  from?: string;
  to?: string[];
  data: Buffer;
  helo?: string;
  /** Sent after EHLO; must be answered 250. */
  xforward?: string;
  lmtp?: boolean;
  /** MAIL FROM parameters, e.g. "SIZE=123 BODY=8BITMIME". */
  mailParams?: string;
  /** RCPT TO parameters for every recipient, e.g. "NOTIFY=SUCCESS,FAILURE". */
  rcptParams?: string;
  timeoutMs?: number;
};

export type MailReplies = { ehlo: Reply; mail: Reply; rcpts: Reply[]; data: Reply | null; final: Reply[] };

/** One SMTP/LMTP transaction on a new connection; returns every reply, stopping at the first failing step. */
export async function sendMail(port: number, opts: MailOptions): Promise<MailReplies> {
  const client = await RawClient.open(port);
  try {
    return await sendMailOn(client, opts);
  } finally {
    client.write('QUIT\r\n');
    setTimeout(() => client.close(), 50).unref();
  }
}

/** One transaction on an open (greeted) connection: EHLO/LHLO, optional XFORWARD, MAIL, RCPT…, DATA. */
export async function sendMailOn(client: RawClient, opts: MailOptions): Promise<MailReplies> {
  const ehlo = await client.command(`${opts.lmtp ? 'LHLO' : 'EHLO'} ${opts.helo ?? 'client.outside.test'}`);
  if (opts.xforward) {
    const xf = await client.command(`XFORWARD ${opts.xforward}`);
    expect(xf.code).toBe(250);
  }
  return transaction(client, ehlo, opts);
}

/** MAIL, RCPT…, DATA and the message on a connection that already said EHLO. */
export async function transaction(client: RawClient, ehlo: Reply, opts: MailOptions): Promise<MailReplies> {
  const mailParams = opts.mailParams ? ` ${opts.mailParams}` : '';
  const rcptParams = opts.rcptParams ? ` ${opts.rcptParams}` : '';
  const mail = await client.command(`MAIL FROM:<${opts.from ?? 'alice@example.com'}>${mailParams}`, opts.timeoutMs);
  const result: MailReplies = { ehlo, mail, rcpts: [], data: null, final: [] };
  if (mail.code !== 250) return result;
  for (const rcpt of opts.to ?? ['bob@example.org']) result.rcpts.push(await client.command(`RCPT TO:<${rcpt}>${rcptParams}`, opts.timeoutMs));
  if (!result.rcpts.some((r) => r.code === 250)) return result;
  result.data = await client.command('DATA');
  if (result.data.code !== 354) return result;
  client.write(dotStuff(opts.data));
  client.write('.\r\n');
  const answers = opts.lmtp ? result.rcpts.filter((r) => r.code === 250).length : 1;
  for (let i = 0; i < answers; i++) result.final.push(await client.read(opts.timeoutMs ?? 10_000));
  return result;
}
