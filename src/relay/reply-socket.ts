// One socket to a next hop with its reply parser: commands out, replies in, a deadline on every wait, TLS upgrade in place.
// Touches: a TCP/TLS socket it owns (noDelay always); trusts nothing the peer sends (unsolicited or garbled replies end the socket).

import type { Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { createSmtpReplyParser, type SmtpReply, type SmtpReplyEvent, type SmtpReplyParser } from './smtp-reply.js';

export type ReplyOutcome =
  | { kind: 'reply'; reply: SmtpReply }
  | { kind: 'timeout'; during: string }
  | { kind: 'lost'; during: string; detail: string };

export type SocketFailure = { kind: 'timeout' | 'lost'; during: string; detail: string };

export type TlsUpgradeOutcome = { kind: 'ok' } | { kind: 'timeout'; during: string } | { kind: 'lost'; during: string; detail: string };

type Waiter = { during: string; resolve: (outcome: ReplyOutcome) => void; timer: NodeJS.Timeout };

/** Most replies held that nobody asked for yet (LMTP answers one per recipient). */
const MAX_QUEUED_REPLIES = 1000;

export class ReplySocket {
  private socket: Socket | TLSSocket;
  private parser: SmtpReplyParser = createSmtpReplyParser();
  private readonly queue: SmtpReply[] = [];
  private owed = 0;
  private waiter: Waiter | null = null;
  private failure: SocketFailure | null = null;
  private sawClosing = false;
  private readonly closeListeners: Array<() => void> = [];
  /** Called when a reply is queued that nobody awaited (waitForDrain wakes on it: the peer spoke mid-message). */
  private onQueued: (() => void) | null = null;
  /** What the connection is doing, named in a failure that happens while nobody waits. */
  activity = 'idle';
  /** The reply that ended the socket because no command of ours was owed one (a peer out of step); else null. */
  unsolicited: SmtpReply | null = null;

  constructor(
    socket: Socket,
    private readonly timeoutMs: number,
    owedAtStart: number,
  ) {
    this.socket = socket;
    this.owed = owedAtStart;
    socket.setNoDelay(true);
    this.attach(socket);
  }

  /** The failure that ended this socket, if any. */
  get failed(): SocketFailure | null {
    return this.failure;
  }

  /** True after a 421 from the peer (it is closing the channel). */
  get closing(): boolean {
    return this.sawClosing;
  }

  get tlsSocket(): TLSSocket | null {
    return 'encrypted' in this.socket ? (this.socket as TLSSocket) : null;
  }

  onClose(listener: () => void): void {
    if (this.failure !== null) queueMicrotask(listener);
    else this.closeListeners.push(listener);
  }

  /** Writes a command line (CRLF appended) and waits for its reply. */
  command(line: string, during: string): Promise<ReplyOutcome> {
    if (this.failure !== null) return Promise.resolve(this.failedOutcome(during));
    this.activity = during;
    this.owed += 1;
    this.socket.write(line + '\r\n', 'utf8');
    return this.readReply(during);
  }

  /**
   * Writes several command lines in one write (RFC 2920 pipelining); their replies are then read with readReply, in
   * order. On a failed socket it writes nothing (the reads report the failure).
   */
  pipeline(lines: readonly string[], during: string): void {
    if (this.failure !== null) return;
    this.activity = during;
    this.owed += lines.length;
    this.socket.write(lines.join('\r\n') + '\r\n', 'utf8');
  }

  /** The next hop's IP address as connected (null once the socket is gone and Node no longer knows it). */
  get remoteAddress(): string | null {
    return this.socket.remoteAddress ?? null;
  }

  /** Replies received that nobody has read yet (mid-message: the next hop answered before our final dot). */
  get queued(): number {
    return this.queue.length;
  }

  /** Declares that `count` more replies are owed (e.g. one per LMTP recipient after the final dot). */
  expect(count: number): void {
    this.owed += count;
  }

  /** The next reply, from the queue or the wire; a timeout or a failure ends the socket. */
  readReply(during: string): Promise<ReplyOutcome> {
    const queued = this.queue.shift();
    if (queued !== undefined) return Promise.resolve({ kind: 'reply', reply: queued });
    if (this.failure !== null) return Promise.resolve(this.failedOutcome(during));
    if (this.waiter !== null) throw new Error('ReplySocket: a reply is already awaited (a bug in the caller)');
    this.activity = during;
    return new Promise<ReplyOutcome>((resolve) => {
      const timer = setTimeout(() => this.fail({ kind: 'timeout', during, detail: `no reply within ${this.timeoutMs} ms` }), this.timeoutMs);
      this.waiter = { during, resolve, timer };
    });
  }

  // ---- raw writes for the message body -------------------------------------------------------

  cork(): void {
    this.socket.cork();
  }
  uncork(): void {
    this.socket.uncork();
  }
  write(chunk: Buffer, callback?: (err?: Error | null) => void): void {
    this.socket.write(chunk, callback);
  }
  get writableLength(): number {
    return this.socket.writableLength;
  }
  get needsDrain(): boolean {
    return this.socket.writableNeedDrain;
  }

  /**
   * Waits for 'drain' (or the failure that prevents it); a peer that stops reading for timeoutMs is a timeout. A reply
   * that arrives meanwhile ends the wait too (see `queued`): a next hop refusing mid-message may never read on.
   */
  waitForDrain(during: string): Promise<SocketFailure | null> {
    if (this.failure !== null) return Promise.resolve(this.failure);
    if (!this.socket.writableNeedDrain || this.queue.length > 0) return Promise.resolve(null);
    this.activity = during;
    return new Promise((resolve) => {
      const socket = this.socket;
      const done = (): void => {
        clearTimeout(timer);
        socket.off('drain', done);
        socket.off('close', done);
        if (this.onQueued === done) this.onQueued = null;
        resolve(this.failure);
      };
      this.onQueued = done;
      const timer = setTimeout(() => {
        this.fail({ kind: 'timeout', during, detail: `next hop read nothing for ${this.timeoutMs} ms` });
        done();
      }, this.timeoutMs);
      socket.on('drain', done);
      socket.on('close', done);
    });
  }

  /**
   * Writes `chunk` and resolves true once it went to the kernel; false when the socket closed first or the peer
   * read nothing for timeoutMs (then the socket is ended as a timeout).
   */
  writeAndFlush(chunk: Buffer, during: string): Promise<boolean> {
    if (this.failure !== null) return Promise.resolve(false);
    const socket = this.socket;
    return new Promise((resolve) => {
      let settled = false;
      const settle = (flushed: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.off('close', onClose);
        resolve(flushed);
      };
      const onClose = (): void => settle(false);
      const timer = setTimeout(() => {
        this.fail({ kind: 'timeout', during, detail: `next hop read nothing for ${this.timeoutMs} ms` });
        settle(false);
      }, this.timeoutMs);
      socket.once('close', onClose);
      socket.write(chunk, (err) => settle(err == null));
    });
  }

  // ---- TLS ---------------------------------------------------------------------------------------

  /** Replaces the plaintext socket by TLS over it (after a 220 to STARTTLS, or at once for implicit TLS). */
  upgradeToTls(options: ConnectionOptions, during: string): Promise<TlsUpgradeOutcome> {
    if (this.failure !== null) return Promise.resolve({ kind: 'lost', during, detail: this.failure.detail });
    // RFC 3207 §5: bytes that came after the 220 would be read as if they came over TLS (command injection)
    if (!this.parser.idle || this.queue.length > 0) {
      this.fail({ kind: 'lost', during, detail: 'next hop sent data after its STARTTLS reply' });
      return Promise.resolve({ kind: 'lost', during, detail: 'next hop sent data after its STARTTLS reply' });
    }
    const raw = this.socket;
    this.detach(raw);
    raw.on('error', () => {}); // the TLS socket reports it
    this.activity = during;
    return new Promise((resolve) => {
      let settled = false;
      const secure = tlsConnect({ ...options, socket: raw });
      const settle = (outcome: TlsUpgradeOutcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        secure.off('secureConnect', onSecure);
        secure.off('error', onError);
        resolve(outcome);
      };
      const onSecure = (): void => {
        this.socket = secure;
        this.parser = createSmtpReplyParser();
        secure.setNoDelay(true);
        this.attach(secure);
        settle({ kind: 'ok' });
      };
      const onError = (err: Error): void => {
        const detail = `TLS handshake failed: ${describeError(err)}`;
        this.socket = secure;
        this.fail({ kind: 'lost', during, detail });
        raw.destroy();
        settle({ kind: 'lost', during, detail });
      };
      const timer = setTimeout(() => {
        this.socket = secure;
        this.fail({ kind: 'timeout', during, detail: `TLS handshake took over ${this.timeoutMs} ms` });
        raw.destroy();
        settle({ kind: 'timeout', during });
      }, this.timeoutMs);
      secure.once('secureConnect', onSecure);
      secure.on('error', onError);
    });
  }

  // ---- ending ------------------------------------------------------------------------------------

  /** Ends the socket now; later calls answer 'lost'. */
  destroy(detail = 'closed by us'): void {
    this.fail({ kind: 'lost', during: this.activity, detail });
  }

  /** Sends a last line without waiting for anything, then closes our side (a polite goodbye after a refusal). */
  endWith(line: string): void {
    const socket = this.socket;
    if (this.failure === null && socket.writable) {
      socket.end(line + '\r\n');
      // a peer that never closes its side must not keep the socket; one that does frees it (and the timer) at once:
      // a timer left to run would hold the closed socket for timeoutMs (minutes), once per refused connection
      const timer = setTimeout(() => socket.destroy(), this.timeoutMs).unref();
      socket.once('close', () => clearTimeout(timer));
      this.fail({ kind: 'lost', during: this.activity, detail: 'closed by us' }, false);
    } else {
      this.fail({ kind: 'lost', during: this.activity, detail: 'closed by us' });
    }
  }

  // ---- internals -----------------------------------------------------------------------------------

  private readonly onData = (chunk: Buffer): void => {
    for (const event of this.parser.push(chunk)) this.take(event);
  };
  private readonly onEnd = (): void => this.fail({ kind: 'lost', during: this.activity, detail: 'connection closed by the next hop' });
  private readonly onSocketClose = (): void => this.fail({ kind: 'lost', during: this.activity, detail: 'connection closed' });
  private readonly onError = (err: Error): void => this.fail({ kind: 'lost', during: this.activity, detail: describeError(err) });

  private attach(socket: Socket): void {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onSocketClose);
    socket.on('error', this.onError);
  }

  private detach(socket: Socket): void {
    socket.off('data', this.onData);
    socket.off('end', this.onEnd);
    socket.off('close', this.onSocketClose);
    socket.off('error', this.onError);
  }

  private take(event: SmtpReplyEvent): void {
    if (this.failure !== null) return;
    if (event.kind === 'garbled') {
      this.fail({ kind: 'lost', during: this.activity, detail: `garbled reply: ${event.detail}` });
      return;
    }
    const reply = event.reply;
    if (reply.code === 421) this.sawClosing = true;
    if (this.owed === 0) {
      // a reply to nothing: a peer out of step (or a 421 while idle); nothing it says later can be matched
      this.unsolicited = reply;
      this.fail({ kind: 'lost', during: this.activity, detail: `unsolicited reply ${reply.code}` });
      return;
    }
    this.owed -= 1;
    const waiter = this.waiter;
    if (waiter !== null) {
      this.waiter = null;
      clearTimeout(waiter.timer);
      waiter.resolve({ kind: 'reply', reply });
    } else if (this.queue.length < MAX_QUEUED_REPLIES) {
      this.queue.push(reply);
      this.onQueued?.();
    } else {
      this.fail({ kind: 'lost', during: this.activity, detail: 'too many replies' });
    }
  }

  /** A call after the socket ended: 'lost', naming what ended it. */
  private failedOutcome(during: string): ReplyOutcome {
    const failure = this.failure!;
    const detail = failure.kind === 'timeout' ? `connection ended after a timeout during ${failure.during}` : failure.detail;
    return { kind: 'lost', during, detail };
  }

  private fail(failure: SocketFailure, destroy = true): void {
    if (this.failure !== null) return;
    this.failure = failure;
    const waiter = this.waiter;
    this.waiter = null;
    if (waiter !== null) {
      clearTimeout(waiter.timer);
      waiter.resolve(failure.kind === 'timeout' ? { kind: 'timeout', during: waiter.during } : { kind: 'lost', during: waiter.during, detail: failure.detail });
    }
    if (destroy) this.socket.destroy();
    for (const listener of this.closeListeners.splice(0)) listener();
  }
}

export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    const text = err.message.replace(/[\x00-\x1f\x7f]/g, ' ').slice(0, 200);
    return code !== undefined && !text.includes(code) ? `${code}: ${text}` : text;
  }
  return 'unknown error';
}
