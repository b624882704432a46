// Things smtp-server cannot be told through its options, added to its connection class:
// 1. our enhanced status codes (RFC 3463/7372) instead of its guess from the reply code alone (it
//    maps every 451 to 4.3.0 and every 550 to 5.1.1, but our 451 may be 4.4.1 and our 550 5.7.20):
//    a reply text starting with "x.y.z " carries the code to use;
// 2. AUTH kept out of the EHLO reply while the session is in clear text and the server refuses AUTH
//    there (smtp-server advertises it anyway, then answers 538): RFC 3207 §4.2 / RFC 4954 §4;
// 3. XFORWARD trusted by CIDR block (its useXForward takes exact addresses only): a server option
//    `proxyAllowed(address)` decides, so XFORWARD is advertised only to trusted peers and others get
//    550 5.7.1 (interface.md §4);
// 4. replies to pipelined commands leave in one write (RFC 2920 §3.1: a server may hold its replies while
//    the client's pipelined commands are being processed): a 250 or 354 is held (socket corked) while
//    the next command, already dispatched, is still being answered, and flushed once the server waits
//    for the client. MAIL, RCPT and DATA then cost one write instead of three on loopback.
// 5. a command line over smtp-server's 16 KB limit answered 500 5.5.2 (RFC 5321 §4.5.3.1.4), not
//    its 421 with a timeout code; the connection is closed all the same (the parser dropped the line).
// 6. the DATA stream reads no chunk ahead of its reader (readable high-water mark 0): smtp-server's
//    PassThrough takes the next 64 KB read while the reader is still spooling the last one, and the
//    parser and socket then read another behind it. Without that read-ahead a reader waiting on its
//    spool write leaves the client's bytes in the kernel (TCP flow control) instead of our heap; with
//    500 clients sending 1 MB at once the daemon's peak RSS went from 340 to 299 MB (bench:e2e).
// 7. the DATA parser finds line-start dots with Buffer.indexOf instead of a JavaScript loop over every byte:
//    that loop was the largest single cost of relaying a 100 KB message (12 % of the daemon's busy CPU). Only the
//    search changes; every decision (end of data, escape dot, bytes held back across chunks) is smtp-server's,
//    and a differential test feeds random messages in random chunks to both.
// 8. MAIL FROM and RCPT TO addresses kept as the client wrote them (envelope-path.ts): smtp-server's parser
//    turns IDN A-labels into UTF-8 and cannot read a quoted local part with a space. Its checks still run (on the
//    command with each quoted string replaced by a stand-in); only the address it returns is the client's.
// 9. a server option `onTransactionReset(session)` called whenever smtp-server drops the transaction on its own
//    (RSET, EHLO/HELO/LHLO, XFORWARD, STARTTLS; also after each DATA): it has no hook for that, and the
//    application's transaction (a leased next-hop connection, the drain's count) would otherwise outlive it.
// 10. AUTH refused with 503 5.5.1 during a mail transaction (RFC 4954 §4), before any SASL exchange: smtp-server takes
//     it, so a client could authenticate between MAIL and DATA and have a transaction it began anonymously signed.
// 11. a MAIL FROM or RCPT TO parameter we neither announce nor relay answered 555 5.5.4 (RFC 5321 §4.1.1.11), as
//    Postfix answers it: smtp-server takes any parameter, and the relay would drop it on the way (envelope-params.ts).
//    REQUIRETLS (RFC 8689), which smtp-server announces after STARTTLS, is kept out of the EHLO reply and refused
//    the same way: we do not carry its demand to the next hop, so accepting it would quietly break the promise.
// Touches: SMTPConnection.prototype and SMTPStream.prototype of the smtp-server version we pin (checked by tests).

import { PassThrough } from 'node:stream';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { readEnvelopePath } from './envelope-path.js';
import { unsupportedParam } from '../relay/envelope-params.js';
import { REPLIES } from './reply-codes.js';

const LEADING_CODE = /^([245]\.\d{1,3}\.\d{1,3}) (.*)$/s;

/** smtp-server's own replies whose enhanced code the contract pins differently. */
function overrideFor(code: number, data: unknown, context: unknown): string | null {
  if (code === 538) return '5.7.11';
  if (code === 550 && context === 'NOT_AUTHORIZED') return '5.7.1';
  if (code === 421 && typeof data === 'string' && data.includes('Too many connected clients')) return '4.7.0';
  if (code === 421 && typeof data === 'string' && data.includes('Server shutting down')) return '4.3.2';
  return null;
}

type Send = (this: InstanceType<typeof SMTPConnection>, code: number, data?: unknown, context?: unknown) => void;

/** The extra server option read by the patched proxy check. */
export interface ProxyAllowedOption {
  proxyAllowed?: (address: string) => boolean;
}

/** The extra server option called after smtp-server reset the session's transaction (see 9. above). */
export interface TransactionResetOption {
  onTransactionReset?: (session: { id: string }) => void;
}

interface ConnectionInternals {
  send: Send;
  secure: boolean;
  _proxyCommandAllowed(command: string, option: string): boolean;
  _parseAddressCommand(name: string, command: string): false | ParsedAddressCommand;
  _rejectInvalidParams(parsed: ParsedAddressCommand, keys: string[], callback: () => void): boolean;
  _originalRemoteAddress: string;
  _server: { options: ProxyAllowedOption & TransactionResetOption & { allowInsecureAuth?: boolean } };
  _resetSession(): void;
  session: { id: string };
}

interface ParsedAddressCommand {
  address: string;
  args: Record<string, string | true> | false;
  /** Set by our parser wrapper: the first parameter we do not take (see 10. above). */
  unsupportedParam?: string | null;
}

/** Most reply bytes held corked: smtp-server waits for 'drain' past the socket's high-water mark. */
const MAX_HELD_REPLY_BYTES = 4096;

interface ReplyHold {
  /** We corked the socket and owe it one uncork. */
  corked: boolean;
  /** A flush check is queued for the next tick. */
  checking: boolean;
  /** A command was dispatched after the last reply and has not been answered yet. */
  awaitingReply: boolean;
}

type HoldingConnection = { _socket?: import('node:net').Socket; _upgrading?: boolean; __replyHold?: ReplyHold };

function holdOf(conn: HoldingConnection): ReplyHold {
  return (conn.__replyHold ??= { corked: false, checking: false, awaitingReply: false });
}

function releaseHeld(conn: HoldingConnection): void {
  const hold = holdOf(conn);
  if (!hold.corked) return;
  hold.corked = false;
  conn._socket?.uncork();
}

/** Next tick after a reply: flush unless the client's next pipelined command is being answered (its reply joins). */
function checkHeld(conn: HoldingConnection): void {
  const hold = holdOf(conn);
  hold.checking = false;
  if (!hold.awaitingReply) releaseHeld(conn);
}

type AuthHandler = (this: { session: { envelope: { mailFrom: unknown } }; send(code: number, data: string): void }, command: Buffer, callback: () => void) => void;

let installed = false;

export function installSmtpServerAdapter(): void {
  if (installed) return;
  installed = true;
  const proto = SMTPConnection.prototype as unknown as ConnectionInternals;
  const originalAllowed = proto._proxyCommandAllowed;
  proto._proxyCommandAllowed = function proxyCommandAllowed(this: ConnectionInternals, command: string, option: string) {
    const decide = this._server.options.proxyAllowed;
    if (command === 'XFORWARD' && decide) return originalAllowed.call(this, command, option) && decide(this._originalRemoteAddress);
    return originalAllowed.call(this, command, option);
  };
  const originalResetSession = proto._resetSession;
  proto._resetSession = function resetSession(this: ConnectionInternals) {
    originalResetSession.call(this);
    this._server.options.onTransactionReset?.(this.session);
  };
  const originalParseAddress = proto._parseAddressCommand;
  proto._parseAddressCommand = function parseAddressCommand(this: ConnectionInternals, name, command) {
    const path = readEnvelopePath(String(command ?? ''));
    const parsed = originalParseAddress.call(this, name, path === null ? command : path.forParser);
    if (parsed && path !== null) parsed.address = path.address;
    if (parsed) parsed.unsupportedParam = unsupportedParam(String(name).toUpperCase().startsWith('MAIL') ? 'MAIL' : 'RCPT', parsed.args);
    return parsed;
  };
  const protoAuth = SMTPConnection.prototype as unknown as { handler_AUTH: AuthHandler };
  const originalAuth = protoAuth.handler_AUTH;
  protoAuth.handler_AUTH = function handlerAuth(command, callback) {
    if (this.session.envelope?.mailFrom) {
      this.send(REPLIES.authInTransaction.code, `${REPLIES.authInTransaction.enhanced} ${REPLIES.authInTransaction.text}`);
      return callback();
    }
    return originalAuth.call(this, command, callback);
  };
  const originalRejectInvalidParams = proto._rejectInvalidParams;
  proto._rejectInvalidParams = function rejectInvalidParams(this: ConnectionInternals, parsed, keys, callback) {
    // smtp-server's own checks first (a duplicate or value-less parameter: 501), then ours
    if (originalRejectInvalidParams.call(this, parsed, keys, callback)) return true;
    if (!parsed.unsupportedParam) return false;
    this.send.call(this as unknown as InstanceType<typeof SMTPConnection>, 555, `5.5.4 Unsupported option: ${parsed.unsupportedParam}`);
    callback();
    return true;
  };
  const protoCommands = SMTPConnection.prototype as unknown as { _onCommand(this: HoldingConnection, command: Buffer, callback?: () => void): void };
  const originalOnCommand = protoCommands._onCommand;
  protoCommands._onCommand = function onCommand(this: HoldingConnection, command, callback) {
    holdOf(this).awaitingReply = true;
    return originalOnCommand.call(this, command, callback);
  };
  const streamProto = SMTPStream.prototype as unknown as { startDataMode(this: { _dataStream: PassThrough | null }, maxBytes?: number | string | null): PassThrough };
  const originalStartDataMode = streamProto.startDataMode;
  streamProto.startDataMode = function startDataMode(maxBytes) {
    // the original sets the parser's data-mode state; only its stream is swapped for one that does not read ahead
    originalStartDataMode.call(this, maxBytes);
    const stream = Object.assign(new PassThrough({ readableHighWaterMark: 0 }), { byteLength: 0, sizeExceeded: false });
    this._dataStream = stream;
    return stream;
  };
  (SMTPStream.prototype as unknown as { _feedDataStream: FeedDataStream })._feedDataStream = feedDataStream;
  const originalSend = proto.send;
  proto.send = function send(code, data, context) {
    const conn = this as unknown as HoldingConnection;
    const hold = holdOf(conn);
    hold.awaitingReply = false;
    const socket = conn._socket;
    const open = socket !== undefined && !socket.destroyed && socket.readyState === 'open' && !conn._upgrading;
    // only the transaction's positive replies wait; anything else (errors, 220 before TLS, 221, 421) goes out now
    const holdable = open && (code === 250 || code === 354) && !Array.isArray(data);
    if (holdable && !hold.corked) {
      socket!.cork();
      hold.corked = true;
    }
    sendOriginal.call(this, code, data, context);
    if (!hold.corked) return;
    if (!holdable || (socket?.writableLength ?? 0) >= MAX_HELD_REPLY_BYTES) return releaseHeld(conn);
    if (!hold.checking) {
      hold.checking = true;
      process.nextTick(checkHeld, conn);
    }
  };
  const sendOriginal: Send = function sendWithCodes(code, data, context) {
    if (code === 421 && data === 'Error: Command line too long') {
      const useEnhancedCodes = (this as unknown as { _useEnhancedStatusCodes(): boolean })._useEnhancedStatusCodes();
      const r = REPLIES.lineTooLong;
      originalSend.call(this, r.code, useEnhancedCodes ? `${r.enhanced} ${r.text}` : r.text, false);
      (this as unknown as { close(): void }).close();
      return;
    }
    const self = this as unknown as ConnectionInternals;
    if (code === 250 && Array.isArray(data) && !self.secure && !self._server.options.allowInsecureAuth) {
      data = (data as unknown[]).filter((line, i) => i === 0 || typeof line !== 'string' || !/^AUTH\b/i.test(line));
    }
    if (code === 250 && Array.isArray(data)) data = (data as unknown[]).filter((line, i) => i === 0 || line !== 'REQUIRETLS');
    const useEnhanced = (this as unknown as { _useEnhancedStatusCodes(): boolean })._useEnhancedStatusCodes();
    if (typeof data === 'string') {
      const m = LEADING_CODE.exec(data);
      if (m) return originalSend.call(this, code, useEnhanced ? data : m[2], false);
    }
    const override = overrideFor(code, data, context);
    if (override && typeof data === 'string') return originalSend.call(this, code, useEnhanced ? `${override} ${data}` : data, false);
    return originalSend.call(this, code, data, context);
  };
}

const LF_DOT = Buffer.from('\n.');
const DOT = 0x2e;
const CR = 0x0d;
const LF = 0x0a;

/** The parts of smtp-server's SMTPStream the DATA parser uses (pinned version). */
interface DataParser {
  _dataStream: PassThrough;
  _lastBytes: Buffer | false;
  _atDataStart: boolean;
  _countDataBytes(len: number): void;
  _endDataMode(chunk: Buffer | false, remainder: Buffer, callback: () => void): void;
  _feedDataStream: FeedDataStream;
}
type FeedDataStream = (this: DataParser, chunk: Buffer, done: () => void) => void;

/** smtp-server 3.21's SMTPStream#_feedDataStream with the per-byte loop replaced by indexOf (see 7. above). */
function feedDataStream(this: DataParser, input: Buffer, done: () => void): void {
  const dataStream = this._dataStream;
  let chunk = input;
  if (this._lastBytes && this._lastBytes.length) {
    chunk = Buffer.concat([this._lastBytes, chunk], this._lastBytes.length + chunk.length);
    this._lastBytes = false;
  }
  let len = chunk.length;
  // a terminator right at the start of DATA (only while no payload byte was consumed: smtp-server's smuggling guard)
  if (this._atDataStart && len >= 3 && chunk[0] === DOT && chunk[1] === CR && chunk[2] === LF) {
    this._endDataMode(false, chunk.subarray(3), done);
    return;
  }
  if (this._atDataStart && len >= 2 && chunk[0] === DOT && chunk[1] === DOT) {
    chunk = chunk.subarray(1);
    len--;
    this._atDataStart = false;
  }
  // a dot after LF at i (2 <= i < len - 2, as smtp-server's loop): the end of data or an escape dot
  for (let lf = chunk.indexOf(LF_DOT, 1); lf !== -1 && lf < len - 3; lf = chunk.indexOf(LF_DOT, lf + 1)) {
    const i = lf + 1;
    if (chunk[i - 2] === CR && chunk[i + 1] === CR && chunk[i + 2] === LF) {
      // everything before the terminator is content, including the CRLF that ends the last line
      const buf = chunk.subarray(0, i);
      this._countDataBytes(buf.length);
      this._endDataMode(buf, chunk.subarray(i + 3), done);
      return;
    }
    if (chunk[i + 1] === DOT) {
      const buf = chunk.subarray(0, i);
      this._lastBytes = false;
      this._countDataBytes(buf.length);
      if (dataStream.writable) dataStream.write(buf);
      const rest = chunk.subarray(i + 1);
      setImmediate(() => this._feedDataStream(rest, done));
      return;
    }
  }
  // the last 4 bytes wait for the next chunk (a terminator may span the two)
  this._lastBytes = chunk.length < 4 ? chunk : chunk.subarray(chunk.length - 4);
  if (this._lastBytes.length >= chunk.length) return done();
  const buf = chunk.subarray(0, chunk.length - this._lastBytes.length);
  this._countDataBytes(buf.length);
  if (!dataStream.writable) return done();
  const handled = dataStream.write(buf);
  if (handled || dataStream.destroyed) return done();
  // a stream that the application destroys never drains, it only closes
  const onDrain = (): void => {
    dataStream.removeListener('drain', onDrain);
    dataStream.removeListener('close', onDrain);
    done();
  };
  dataStream.once('drain', onDrain);
  dataStream.once('close', onDrain);
}
