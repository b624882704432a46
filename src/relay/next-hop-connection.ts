// Our SMTP/LMTP client for one connection to the next hop: greeting, EHLO/LHLO, STARTTLS, AUTH, then MAIL/RCPT/DATA/RSET/QUIT.
// Touches: one TCP or TLS socket to the configured next hop; credentials go only onto that socket, never into outcomes or logs.

import { connect as netConnect, isIP, type Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { describeError, ReplySocket, type ReplyOutcome } from './reply-socket.js';
import { NO_CAPABILITIES, parseEhloCapabilities, type NextHopCapabilities } from './ehlo-capabilities.js';
import { formatMailParams, formatRcptParams, type EnvelopeParams } from './envelope-params.js';
import { formatXforwardCommands, type XforwardAttributes } from './xforward.js';
import { createDotStuffer } from './dot-stuffer.js';
import type { SmtpReply } from './smtp-reply.js';

export type { ReplyOutcome } from './reply-socket.js';
export type { NextHopCapabilities } from './ehlo-capabilities.js';
export type { EnvelopeParams } from './envelope-params.js';
export type { XforwardAttributes } from './xforward.js';

export type NextHopOptions = {
  host: string;
  port: number;
  tls: 'none' | 'starttls' | 'implicit';
  /** Merged into tls.connect options (ca, rejectUnauthorized, servername, …). */
  tlsOptions?: ConnectionOptions;
  auth: { user: string; pass: string } | null;
  /** LHLO instead of EHLO, and one end-of-data reply per accepted recipient. */
  lmtp: boolean;
  heloName: string;
  /** Deadline of every step: connect, greeting, each command's reply, each wait for the peer to read. */
  timeoutMs: number;
};

export type ConnectOutcome =
  | { kind: 'ok'; connection: NextHopConnection }
  /** ECONNREFUSED, EHOSTUNREACH, DNS failure, connect timeout */
  | { kind: 'unreachable'; detail: string }
  /** a 4xx/5xx to the greeting, EHLO/HELO, STARTTLS or AUTH (`during` names which) */
  | { kind: 'refused'; reply: SmtpReply; during: string }
  | { kind: 'timeout'; during: string }
  | { kind: 'lost'; during: string; detail: string };

/**
 * `afterEndOfData` is true once the final ".\r\n" went to the kernel: the next hop may hold the message although
 * we never saw its reply (the ambiguous case). `received` holds the LMTP replies that came before the failure.
 */
export type DataOutcome =
  /** one reply for SMTP; one per accepted recipient for LMTP, in RCPT order */
  | { kind: 'replies'; replies: SmtpReply[] }
  /** DATA itself was answered with something other than 354 (for LMTP: the answer for every recipient) */
  | { kind: 'refused'; reply: SmtpReply }
  | { kind: 'timeout'; during: 'data' | 'end-of-data'; afterEndOfData: boolean; received: SmtpReply[] }
  | { kind: 'lost'; during: string; detail: string; afterEndOfData: boolean; received: SmtpReply[] };

/** Message bytes buffered (corked) before they are handed to the kernel in one writev. */
/** Bounded: hundreds of messages may be relayed at once, each holding this much in its socket's buffer. */
const FLUSH_BYTES = 64 * 1024;
const HELO_NAME_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\]|\[IPv6:[0-9A-Fa-f:.]+\])$/;
const ADDRESS_UNSAFE_RE = /[\x00-\x1f\x7f<>]/;
const GREETING_HOST_RE = /^[A-Za-z0-9._:\[\]-]{1,255}$/;

export class NextHopConnection {
  private busy = false;

  /** @internal use connectNextHop */
  constructor(
    private readonly sock: ReplySocket,
    private readonly lmtp: boolean,
    /** Extensions from the last EHLO/LHLO (after STARTTLS: the one over TLS). */
    readonly capabilities: NextHopCapabilities,
    /** The next hop's own name from its greeting; null if none. */
    readonly remoteGreetingHost: string | null,
    /** Every name the next hop gave itself (greeting, EHLO/LHLO/HELO replies), so callers can keep them out of texts they pass on. */
    readonly remoteNames: readonly string[] = remoteGreetingHost === null ? [] : [remoteGreetingHost],
  ) {}

  /** False after any timeout, lost connection, garbled reply, 421, QUIT or close. */
  get reusable(): boolean {
    return this.sock.failed === null && !this.sock.closing;
  }

  /** True once the socket is gone (closed by either side or after a failure). */
  get closed(): boolean {
    return this.sock.failed !== null;
  }

  /** True when the session runs over TLS (implicit or STARTTLS). */
  get secure(): boolean {
    return this.sock.tlsSocket !== null;
  }

  /** The address this connection reached (a name in next_hop.host resolves to it): internal, kept out of passed-on texts. */
  get remoteAddress(): string | null {
    return this.sock.remoteAddress;
  }

  /** The reply that ended the connection because no command was owed one (see ReplySocket.unsolicited); else null. */
  get unsolicitedReply(): SmtpReply | null {
    return this.sock.unsolicited;
  }

  /** Calls `listener` once when the socket ends for any reason (at once, asynchronously, if it already has). */
  onClosed(listener: () => void): void {
    this.sock.onClose(listener);
  }

  /**
   * MAIL FROM:<address> with the parameters the next hop announced the extensions for (see formatMailParams), after
   * XFORWARD with `xforward` when the next hop announced it (its attributes last for this one transaction).
   */
  async mailFrom(address: string, params: EnvelopeParams, xforward: XforwardAttributes = {}): Promise<ReplyOutcome> {
    assertAddress(address, true);
    const unsendable = this.smtpUtf8Refusal(address);
    if (unsendable) return unsendable;
    const mail = `MAIL FROM:<${address}>${formatMailParams(params, this.capabilities).text}`;
    const xforwardLines = formatXforwardCommands(xforward, this.capabilities.xforwardAttributes);
    return this.exclusive(async () => {
      if (xforwardLines.length === 0) return this.sock.command(mail, 'mail-from');
      const pipelined = this.capabilities.pipelining;
      const failed = await this.sendXforward(xforwardLines, pipelined ? [mail] : []);
      if (failed) return failed;
      return pipelined ? this.sock.readReply('mail-from') : this.sock.command(mail, 'mail-from');
    });
  }

  /**
   * XFORWARD lines, pipelined with `then` when the next hop pipelines (their replies are left to the caller). A refusal
   * is passed over: the next hop then logs us as the client, nothing worse; a 421 or a lost connection is returned.
   */
  private async sendXforward(lines: readonly string[], then: readonly string[]): Promise<ReplyOutcome | null> {
    const pipelined = this.capabilities.pipelining;
    if (pipelined) this.sock.pipeline([...lines, ...then], 'xforward');
    for (const line of lines) {
      const outcome = pipelined ? await this.sock.readReply('xforward') : await this.sock.command(line, 'xforward');
      if (outcome.kind !== 'reply' || outcome.reply.code === 421) return outcome;
    }
    return null;
  }

  /** RCPT TO:<address> with NOTIFY/ORCPT when the next hop announced DSN (see formatRcptParams). */
  async rcptTo(address: string, params: EnvelopeParams): Promise<ReplyOutcome> {
    assertAddress(address, false);
    const unsendable = this.smtpUtf8Refusal(address);
    if (unsendable) return unsendable;
    const { text } = formatRcptParams(params, this.capabilities);
    return this.exclusive(() => this.sock.command(`RCPT TO:<${address}>${text}`, 'rcpt-to'));
  }

  /**
   * MAIL FROM and the first RCPT TO in one write, for a next hop that announced PIPELINING: one round trip instead of
   * two. Both replies, in order; when MAIL got no reply, neither did RCPT (`rcpt` repeats the failure).
   */
  async mailAndRcpt(from: string, mailParams: EnvelopeParams, to: string, rcptParams: EnvelopeParams, xforward: XforwardAttributes = {}): Promise<{ mail: ReplyOutcome; rcpt: ReplyOutcome }> {
    if (!this.capabilities.pipelining) throw new Error('NextHopConnection.mailAndRcpt: the next hop did not announce PIPELINING (a bug in the caller)');
    assertAddress(from, true);
    assertAddress(to, false);
    const mailUnsendable = this.smtpUtf8Refusal(from);
    if (mailUnsendable) return { mail: mailUnsendable, rcpt: mailUnsendable };
    const rcptUnsendable = this.smtpUtf8Refusal(to);
    if (rcptUnsendable) return { mail: await this.mailFrom(from, mailParams, xforward), rcpt: rcptUnsendable };
    const mail = `MAIL FROM:<${from}>${formatMailParams(mailParams, this.capabilities).text}`;
    const rcpt = `RCPT TO:<${to}>${formatRcptParams(rcptParams, this.capabilities).text}`;
    const xforwardLines = formatXforwardCommands(xforward, this.capabilities.xforwardAttributes);
    return this.exclusive(async () => {
      if (xforwardLines.length > 0) {
        const failed = await this.sendXforward(xforwardLines, [mail, rcpt]);
        if (failed) return { mail: failed, rcpt: failed };
      } else {
        this.sock.pipeline([mail, rcpt], 'mail-from');
      }
      const mailOutcome = await this.sock.readReply('mail-from');
      if (mailOutcome.kind !== 'reply') return { mail: mailOutcome, rcpt: mailOutcome };
      return { mail: mailOutcome, rcpt: await this.sock.readReply('rcpt-to') };
    });
  }

  /**
   * RFC 6531: a non-ASCII address goes only to a next hop that announced SMTPUTF8. For one that did not, the reply a
   * relay gives (553 5.6.7, as Postfix does), and nothing is sent: raw UTF-8 in its envelope is not its protocol.
   */
  private smtpUtf8Refusal(address: string): ReplyOutcome | null {
    if (this.capabilities.smtpUtf8 || !NON_ASCII_RE.test(address)) return null;
    const text = 'SMTPUTF8 is required for a non-ASCII address, but was not offered by the next hop';
    return { kind: 'reply', reply: { code: 553, enhanced: '5.6.7', text, lines: [text] } };
  }

  rset(): Promise<ReplyOutcome> {
    return this.exclusive(() => this.sock.command('RSET', 'rset'));
  }

  /** QUIT, then the socket is closed whatever the answer. */
  async quit(): Promise<ReplyOutcome> {
    const outcome = await this.exclusive(() => this.sock.command('QUIT', 'quit'));
    this.sock.destroy('closed after QUIT');
    return outcome;
  }

  /** Ends the socket at once. */
  close(): void {
    this.sock.destroy();
  }

  /**
   * DATA, then the message dot-stuffed and ended with ".\r\n". `recipients` is the number of recipients the next hop
   * accepted (LMTP: as many replies are read). Parts are written corked so a small message goes out in one writev;
   * past FLUSH_BYTES the socket's backpressure is respected.
   */
  async data(message: Iterable<Buffer> | AsyncIterable<Buffer>, recipients: number): Promise<DataOutcome> {
    if (this.lmtp && !(Number.isInteger(recipients) && recipients >= 1)) {
      throw new RangeError('NextHopConnection.data: LMTP needs the number of accepted recipients (>= 1)');
    }
    return this.exclusive(() => this.sendData(message, this.lmtp ? recipients : 1));
  }

  private async sendData(message: Iterable<Buffer> | AsyncIterable<Buffer>, expected: number): Promise<DataOutcome> {
    const go = await this.sock.command('DATA', 'data');
    if (go.kind === 'timeout') return { kind: 'timeout', during: 'data', afterEndOfData: false, received: [] };
    if (go.kind === 'lost') return { ...go, afterEndOfData: false, received: [] };
    if (go.reply.code >= 400) return { kind: 'refused', reply: go.reply };
    // a 2xx to DATA accepts nothing: no message was sent yet (RFC 5321 §4.3.2: 354, or a refusal)
    if (go.reply.code !== 354) return this.outOfStep(go.reply, 'to DATA', 'data', false, []);

    // owed from now on, so that a reply before our final dot is kept (and judged below), not dropped as unsolicited
    this.sock.expect(expected);
    const sent = await this.writeMessage(message);
    if (!sent) {
      // A reply before our final dot answers no end of data. A next hop refusing mid-message (out of space, too
      // big) sends its 4xx/5xx and may close: that is its answer for the message. A 2xx/3xx before the dot is a
      // peer out of step: it does not hold the message, so it never counts as delivery (garbled: 451 4.4.2).
      if (this.sock.queued > 0) {
        const early = await this.sock.readReply('data');
        this.sock.destroy('the next hop answered before the end of the message'); // our message was cut short
        if (early.kind === 'reply' && early.reply.code >= 400) return { kind: 'refused', reply: early.reply };
        if (early.kind === 'reply') return this.outOfStep(early.reply, 'before the end of the message', 'data', false, []);
      }
      const failure = this.sock.failed;
      if (failure?.kind === 'timeout') return { kind: 'timeout', during: 'data', afterEndOfData: false, received: [] };
      return { kind: 'lost', during: 'data', detail: failure?.detail ?? 'connection lost', afterEndOfData: false, received: [] };
    }

    const replies: SmtpReply[] = [];
    for (let i = 0; i < expected; i++) {
      const outcome = await this.sock.readReply('end-of-data');
      if (outcome.kind === 'timeout') return { kind: 'timeout', during: 'end-of-data', afterEndOfData: true, received: replies };
      if (outcome.kind === 'lost') return { kind: 'lost', during: 'end-of-data', detail: outcome.detail, afterEndOfData: true, received: replies };
      // a 354 (or any 3xx) to the final dot: out of step; whether it holds the message is unknown (ambiguous)
      if (outcome.reply.code < 200 || (outcome.reply.code >= 300 && outcome.reply.code < 400)) return this.outOfStep(outcome.reply, 'to the end of data', 'end-of-data', true, replies);
      replies.push(outcome.reply);
    }
    this.sock.activity = 'idle';
    return { kind: 'replies', replies };
  }

  /** A reply no command of ours can get at this point: the connection is ended, and the outcome is a garbled (lost) one. */
  private outOfStep(reply: SmtpReply, when: string, during: 'data' | 'end-of-data', afterEndOfData: boolean, received: SmtpReply[]): DataOutcome {
    const detail = `garbled reply: ${reply.code} ${when}`;
    this.sock.destroy(detail);
    return { kind: 'lost', during, detail, afterEndOfData, received };
  }

  /**
   * True when the final dot went to the kernel; false when the socket failed (or timed out) before, or the next hop
   * answered before it (see ReplySocket.queued): then the rest of the message is not sent.
   */
  private async writeMessage(message: Iterable<Buffer> | AsyncIterable<Buffer>): Promise<boolean> {
    const stuffer = createDotStuffer();
    const sock = this.sock;
    const stopped = (): boolean => sock.failed !== null || sock.queued > 0;
    sock.cork();
    try {
      for await (const part of message) {
        if (stopped()) return false;
        for (const slice of stuffer.push(part)) sock.write(slice);
        if (sock.writableLength >= FLUSH_BYTES) {
          sock.uncork();
          if (sock.needsDrain && (await sock.waitForDrain('data')) !== null) return false;
          sock.cork();
        }
      }
      // checked in the same tick as the final write: a reply seen until here came before our dot
      if (stopped()) return false;
      const tail = stuffer.finish();
      for (const slice of tail.slice(0, -1)) sock.write(slice);
      const flushed = sock.writeAndFlush(tail[tail.length - 1]!, 'data');
      sock.uncork();
      sock.activity = 'end-of-data';
      return await flushed;
    } catch (err) {
      // the message source failed: the next hop must not take a truncated message for a whole one
      sock.uncork();
      sock.destroy(`message source failed: ${describeError(err)}`);
      return false;
    } finally {
      // balance a cork left by an early return (uncork on an uncorked socket is a no-op)
      sock.uncork();
    }
  }

  private async exclusive<T>(run: () => Promise<T>): Promise<T> {
    if (this.busy) throw new Error('NextHopConnection: one command at a time (a bug in the caller)');
    this.busy = true;
    try {
      return await run();
    } finally {
      this.busy = false;
    }
  }
}

/** Opens and prepares one connection: greeting, EHLO/LHLO, STARTTLS and EHLO again, AUTH. Never rejects. */
export async function connectNextHop(opts: NextHopOptions): Promise<ConnectOutcome> {
  if (!HELO_NAME_RE.test(opts.heloName)) throw new TypeError(`next hop: helo name ${JSON.stringify(opts.heloName)} is not a host name or address literal`);
  const opened = await openSocket(opts);
  if (opened.kind !== 'ok') return opened;
  const sock = new ReplySocket(opened.socket, opts.timeoutMs, 1);
  const outcome = await prepare(sock, opts);
  if (outcome.kind !== 'ok') {
    if (outcome.kind === 'refused' && !sock.closing) sock.endWith('QUIT');
    else sock.destroy();
  }
  return outcome;
}

type OpenOutcome = { kind: 'ok'; socket: Socket } | { kind: 'unreachable'; detail: string };

function openSocket(opts: NextHopOptions): Promise<OpenOutcome> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: opts.host, port: opts.port, noDelay: true });
    const settle = (outcome: OpenOutcome): void => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      resolve(outcome);
    };
    const onConnect = (): void => settle({ kind: 'ok', socket });
    const onError = (err: Error): void => {
      socket.destroy();
      settle({ kind: 'unreachable', detail: describeError(err) });
    };
    const timer = setTimeout(() => {
      socket.destroy();
      settle({ kind: 'unreachable', detail: `connect timeout after ${opts.timeoutMs} ms` });
    }, opts.timeoutMs);
    socket.once('connect', onConnect);
    socket.once('error', onError);
  });
}

async function prepare(sock: ReplySocket, opts: NextHopOptions): Promise<ConnectOutcome> {
  // The certificate is checked against next_hop.host: a name is also sent as SNI; an address is not (RFC 6066 §3), so
  // Node is given it as `host` (without either, tls.connect over our socket checks the certificate against "localhost").
  const tlsOptions: ConnectionOptions = { ...(isIP(opts.host) === 0 ? { servername: opts.host } : { host: opts.host }), ...opts.tlsOptions };
  if (opts.tls === 'implicit') {
    const upgraded = await sock.upgradeToTls(tlsOptions, 'tls-handshake');
    if (upgraded.kind !== 'ok') return upgraded;
  }
  const greeting = await sock.readReply('greeting');
  if (greeting.kind !== 'reply') return greeting;
  if (greeting.reply.code !== 220) return refusedOrOdd(greeting.reply, 'greeting');
  const remoteGreetingHost = greetingHost(greeting.reply);
  const names = new Set<string>(remoteGreetingHost === null ? [] : [remoteGreetingHost]);

  let hello = await sayHello(sock, opts);
  if (hello.kind !== 'ok') return hello;
  if (hello.name !== null) names.add(hello.name);

  if (opts.tls === 'starttls') {
    // sent even when not announced: the next hop's own refusal is a better reason than ours
    const start = await sock.command('STARTTLS', 'starttls');
    if (start.kind !== 'reply') return start;
    if (start.reply.code !== 220) return refusedOrOdd(start.reply, 'starttls');
    const upgraded = await sock.upgradeToTls(tlsOptions, 'tls-handshake');
    if (upgraded.kind !== 'ok') return upgraded;
    hello = await sayHello(sock, opts); // RFC 3207 §4.2: forget what was learnt before TLS
    if (hello.kind !== 'ok') return hello;
    if (hello.name !== null) names.add(hello.name);
  }

  if (opts.auth !== null) {
    const authed = await authenticate(sock, opts.auth, hello.capabilities);
    if (authed.kind !== 'ok') return authed;
  }
  sock.activity = 'idle';
  return { kind: 'ok', connection: new NextHopConnection(sock, opts.lmtp, hello.capabilities, remoteGreetingHost, [...names]) };
}

/** `name`: the first word of the reply's first line, the name the next hop gives itself (RFC 5321 §4.1.1.1). */
type HelloOutcome = { kind: 'ok'; capabilities: NextHopCapabilities; name: string | null } | ConnectFailure;

async function sayHello(sock: ReplySocket, opts: NextHopOptions): Promise<HelloOutcome> {
  const verb = opts.lmtp ? 'LHLO' : 'EHLO';
  const ehlo = await sock.command(`${verb} ${opts.heloName}`, verb.toLowerCase());
  if (ehlo.kind !== 'reply') return ehlo;
  if (ehlo.reply.code === 250) return { kind: 'ok', capabilities: parseEhloCapabilities(ehlo.reply), name: greetingHost(ehlo.reply) };
  // RFC 5321 §3.2: a server that does not know EHLO gets HELO — unless we need extensions (TLS, AUTH) or speak LMTP
  const mayFallBack = !opts.lmtp && opts.tls === 'none' && opts.auth === null && ehlo.reply.code >= 500 && ehlo.reply.code < 600;
  if (!mayFallBack) return refusedOrOdd(ehlo.reply, verb.toLowerCase());
  const helo = await sock.command(`HELO ${opts.heloName}`, 'helo');
  if (helo.kind !== 'reply') return helo;
  if (helo.reply.code === 250) return { kind: 'ok', capabilities: NO_CAPABILITIES, name: greetingHost(helo.reply) };
  return refusedOrOdd(helo.reply, 'helo');
}

/** AUTH PLAIN (RFC 4616, with an initial response), or LOGIN when only that is announced. */
async function authenticate(sock: ReplySocket, auth: { user: string; pass: string }, caps: NextHopCapabilities): Promise<ConnectFailure | { kind: 'ok' }> {
  const useLogin = caps.authMechanisms.includes('LOGIN') && !caps.authMechanisms.includes('PLAIN');
  let outcome: ReplyOutcome;
  if (useLogin) {
    outcome = await sock.command('AUTH LOGIN', 'auth');
    for (const secret of [auth.user, auth.pass]) {
      if (outcome.kind !== 'reply' || outcome.reply.code !== 334) break;
      outcome = await sock.command(Buffer.from(secret, 'utf8').toString('base64'), 'auth');
    }
  } else {
    const token = Buffer.from(`\0${auth.user}\0${auth.pass}`, 'utf8').toString('base64');
    outcome = await sock.command(`AUTH PLAIN ${token}`, 'auth');
  }
  if (outcome.kind !== 'reply') return outcome;
  if (outcome.reply.code === 235) return { kind: 'ok' };
  if (outcome.reply.code === 334) {
    // a challenge we have no answer for: cancel the exchange (RFC 4954 §4)
    const cancelled = await sock.command('*', 'auth');
    if (cancelled.kind !== 'reply') return cancelled;
    return refusedOrOdd(cancelled.reply, 'auth');
  }
  return refusedOrOdd(outcome.reply, 'auth');
}

type ConnectFailure = Exclude<ConnectOutcome, { kind: 'ok' }>;

/** A 4xx/5xx is the next hop's refusal; any other unexpected code is a protocol error. */
function refusedOrOdd(reply: SmtpReply, during: string): ConnectFailure {
  if (reply.code >= 400) return { kind: 'refused', reply, during };
  return { kind: 'lost', during, detail: `unexpected reply ${reply.code}` };
}

/** The first word of a greeting's or EHLO reply's first line, when it can be a host name or address literal. */
function greetingHost(reply: SmtpReply): string | null {
  const first = (reply.lines[0] ?? '').trim().split(' ')[0] ?? '';
  return GREETING_HOST_RE.test(first) ? first : null;
}

const NON_ASCII_RE = /[^\x00-\x7f]/;

/** Longest address we put on a command line (RFC 5321 §4.5.3.1.3 allows a path of 256 octets; some next hops more). */
export const MAX_SENDABLE_ADDRESS = 512;

/**
 * True when mailFrom/rcptTo will put `address` on a command line: no control characters, no angle brackets (valid in a
 * quoted local part, but a next hop that parses the path up to the first ">" would read another address), at most
 * MAX_SENDABLE_ADDRESS characters. Callers refuse other addresses to their client before any command goes out.
 */
export function isSendableAddress(address: string): boolean {
  return !ADDRESS_UNSAFE_RE.test(address) && address.length <= MAX_SENDABLE_ADDRESS;
}

function assertAddress(address: string, mayBeEmpty: boolean): void {
  // the caller checked isSendableAddress already; this guards the command line against a caller bug
  if ((!mayBeEmpty && address === '') || !isSendableAddress(address)) {
    throw new TypeError('NextHopConnection: refusing to send an address with control characters or angle brackets');
  }
}
