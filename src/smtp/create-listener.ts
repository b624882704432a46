// One SMTP or LMTP listener: smtp-server wired to the pipeline and the next hop. MAIL and RCPT are
// proxied to the next hop in real time (on a pooled connection that pipelines, MAIL goes with the
// first RCPT), so its verdict on each recipient is the client's; DATA is
// received, signed or verified, relayed, and answered with the next hop's end-of-data reply.
// Input: untrusted SMTP clients; trusts XFORWARD only from xforward_hosts, AUTH only via users_file.

import { constants as cryptoConstants } from 'node:crypto';
import { hostname, tmpdir } from 'node:os';
import { SMTPServer, type SMTPServerAddress, type SMTPServerSession } from 'smtp-server';
import { removeFields } from '../auth-results/remove-auth-results.js';
import type { ListenerConfig } from '../config/config.js';
import { printable, type Logger } from '../observability/logger.js';
import { formatMessageLog, parseQueuedAs, type MessageRecord, type NextHopReply } from '../observability/message-log.js';
import type { Metrics } from '../observability/metrics.js';
import { watchSmtpServerReplies } from '../observability/smtp-server-replies.js';
import { finishMessage, prepareMessage, type MessageContext, type PreparedMessage } from '../pipeline/process-message.js';
import { receiveMessage } from '../pipeline/receive-message.js';
import { describeClient, matchCidrs, type ClientIdentity } from '../policy/client-identity.js';
import type { RequireFailure } from '../policy/apply-verify-policy.js';
import { offersAuth } from '../policy/signing-reach.js';
import { isSendableAddress, type EnvelopeParams, type NextHopConnection, type ReplyOutcome } from '../relay/next-hop-connection.js';
import type { NextHopPool } from '../relay/next-hop-pool.js';
import { growDeclaredSize, smtpUtf8Unmet } from '../relay/envelope-params.js';
import type { SmtpReply } from '../relay/smtp-reply.js';
import { clientXforward, type XforwardAttributes } from '../relay/xforward.js';
import { AuthThrottle } from './auth-throttle.js';
import { ClientDeadlines, type WatchedConnection } from './client-deadlines.js';
import { newQueueId } from './queue-id.js';
import { connectFailureVerdict, commandFailureVerdict, dataFailureVerdict, refusalReply, type NextHopVerdict } from './next-hop-replies.js';
import { receiveRefusalReply, REPLIES, replyError, type SmtpReplyValue } from './reply-codes.js';
import type { Runtime, RuntimeHolder } from './runtime.js';
import { installSmtpServerAdapter, type ProxyAllowedOption, type TransactionResetOption } from './smtp-server-adapter.js';
import type { CertificatePair } from '../keys/tls-files.js';
import { formatHostPort } from '../config/address-syntax.js';

export interface ListenerDeps {
  runtime: RuntimeHolder;
  /** The next-hop pool (replaced when a reload changes next_hop). */
  pool: () => NextHopPool;
  logger: Logger;
  metrics: Metrics;
  /** True once SIGTERM arrived: new transactions get 421 4.3.2. */
  draining: () => boolean;
  /** Counts transactions in flight, for the drain. */
  inFlight: { start(): void; finish(): void };
  /** Client connections of all listeners together: limits.max_clients bounds their sum. */
  clients: { count: number };
}

interface Transaction {
  readonly queueId: string;
  readonly started: number;
  /** Replaced when a pooled connection turns out dead at the deferred MAIL. */
  connection: NextHopConnection;
  /** The pool `connection` came from, and goes back to: a reload that changes next_hop replaces deps.pool(). */
  pool: NextHopPool;
  readonly mailFrom: string;
  /** MAIL's parameters while MAIL waits to go out with the first RCPT (pipelined); null once sent. */
  deferredMail: EnvelopeParams | null;
  /** Who our client was, for a next hop that announces XFORWARD (sent before each MAIL). */
  readonly xforward: XforwardAttributes;
  /** The next hop refused the deferred MAIL (or no connection could be had for it): every RCPT gets this. */
  mailRefusal: Error | null;
  /**
   * The next hop was lost (or timed out) at a RCPT: later RCPTs and the DATA get this (451 4.4.2). The client may hold
   * recipients it got 250 for and go on to DATA: that is answered and logged as a message the next hop never got.
   */
  lost: { reply: Error; kind: 'lost' | 'timeout' } | null;
  readonly recipients: string[];
  /** RCPT commands so far, refused ones included: max_recipients bounds the work each causes. */
  rcptCommands: number;
}

interface SessionState {
  readonly session: SMTPServerSession;
  /** Our MAIL/RCPT handler logged the refusal smtp-server is about to send: its reply watcher skips it. */
  refusalLogged: boolean;
  /** `command refused` lines of this session so far (MAX_REFUSAL_LINES are written). */
  refusalLines: number;
  /** Counted in the connections gauge (onConnect ran): smtp-server refuses some connections before it. */
  counted: boolean;
  /** Counted in deps.clients (admitted by onConnect). */
  admitted: boolean;
  transaction: Transaction | null;
  /** DATA is being received or relayed: that code path ends the transaction. */
  inData: boolean;
  closed: boolean;
}

type Callback = (err?: Error | null) => void;

/** `command refused` lines one session may write (Postfix's smtpd_hard_error_limit is 20). */
export const MAX_REFUSAL_LINES = 20;
/** `command refused` lines a listener writes per second for connections refused before their first command. */
export const MAX_CONNECTION_REFUSAL_LINES_PER_SECOND = 10;

/** take() is true `max` times a second; the first false of a second calls `onExhausted` once. */
function perSecondBudget(max: number, onExhausted: () => void): { take(): boolean } {
  let second = -1;
  let used = 0;
  return {
    take() {
      const now = Math.floor(performance.now() / 1000);
      if (now !== second) [second, used] = [now, 0];
      used++;
      if (used === max + 1) onExhausted();
      return used <= max;
    },
  };
}

/** policy.require's refusals (RFC 7372): the reply, and so the enhanced status that logs and metrics name. */
const POLICY_REPLIES: Record<RequireFailure, SmtpReplyValue> = {
  no_passing: REPLIES.noPassingSignature,
  none_acceptable: REPLIES.noAcceptableSignature,
  not_aligned: REPLIES.noAlignedSignature,
};

function toLogReply(reply: SmtpReply): NextHopReply {
  return { code: reply.code, enhanced: reply.enhanced, text: reply.text };
}

/** The smtp-server options a reload changes: smtp-server reads them per connection (timeout) or per command. */
function reloadableOptions(listener: ListenerConfig, rt: Runtime) {
  const limits = rt.config.limits;
  return {
    size: limits.maxMessageSize,
    maxClients: limits.maxClients,
    socketTimeout: limits.socketTimeout * 1000,
    // AUTH only where it can be used: with users, and after STARTTLS unless allow_insecure_auth
    // (a listener without TLS would otherwise take passwords in clear text). STARTTLS only with our certificate:
    // smtp-server hides it from EHLO but still performs it, with the demo key and certificate it ships (public, expired).
    disabledCommands: [...(offersAuth(listener, rt.users !== null) ? [] : ['AUTH']), ...(listener.tls === null ? ['STARTTLS'] : [])],
  };
}

/** After a reload: new sessions see the new SIZE, max_clients, socket_timeout and whether AUTH is offered. */
export function applyReloadedOptions(server: SMTPServer, listener: ListenerConfig, rt: Runtime): void {
  Object.assign((server as unknown as { options: object }).options, reloadableOptions(listener, rt));
}

/** `certificate`: the listener's STARTTLS pair as read and checked at start (null: no STARTTLS). */
export function createListener(index: number, listener: ListenerConfig, deps: ListenerDeps, certificate: CertificatePair | null): SMTPServer {
  installSmtpServerAdapter();
  // os.tmpdir() reads the environment on every call: once per listener is enough
  const systemTmpDir = tmpdir();
  const sessions = new Map<string, SessionState>();
  // What log lines name the listener by: the bound port once listening (port 0 in the file picks one), as `listening` says.
  let label = `${listener.protocol}://${formatHostPort(listener.host, listener.port)}`;
  const lmtp = listener.protocol === 'lmtp';
  const initial = deps.runtime.get();
  const listenerRuntime = (rt: Runtime) => rt.listeners[index]!;
  const authThrottle = new AuthThrottle(() => {
    const l = deps.runtime.get().config.limits;
    return { maxFailures: l.maxAuthFailures, windowSec: l.authFailureWindow };
  });
  const tls = certificate ?? {};

  const stateOf = (session: SMTPServerSession): SessionState => {
    let state = sessions.get(session.id);
    if (!state) {
      state = { session, refusalLogged: false, refusalLines: 0, counted: false, admitted: false, transaction: null, inData: false, closed: false };
      sessions.set(session.id, state);
    }
    return state;
  };

  const peerAddress = (session: SMTPServerSession): string => {
    const original = session.xForward.get('ADDR:DEFAULT');
    return typeof original === 'string' ? original : session.remoteAddress;
  };

  /**
   * The session's AUTH user while the users file in force has it: a reload that removed the user (or the file) revokes
   * the login of sessions opened before, which would otherwise keep signing, and without the user's domain limit.
   */
  const authUserOf = (session: SMTPServerSession, rt: Runtime): string | null => {
    if (typeof session.user !== 'string') return null;
    if (rt.users?.has(session.user) === true) return session.user;
    deps.logger.warn({ session: session.id, authUser: session.user }, 'AUTH user no longer in the users file: the session is not trusted');
    return null;
  };

  const clientOf = (session: SMTPServerSession, rt: Runtime): ClientIdentity => {
    const peer = peerAddress(session);
    const addr = session.xForward.get('ADDR');
    return describeClient({
      peerAddress: peer,
      xforwardAddr: typeof addr === 'string' ? addr : null,
      peerIsXforwardHost: matchCidrs(peer, listenerRuntime(rt).xforwardHosts),
      authUser: authUserOf(session, rt),
    });
  };

  /** Ends a transaction: the next hop connection goes back to the pool. */
  const endTransaction = (state: SessionState, clean: boolean): void => {
    const txn = state.transaction;
    if (!txn) return;
    state.transaction = null;
    deps.inFlight.finish();
    deps.metrics.transactionFinished();
    // nothing went out on a connection whose MAIL is still deferred: it is clean
    void txn.pool.release(txn.connection, clean || txn.deferredMail !== null ? 'clean' : 'dirty');
  };

  const openTransaction = (state: SessionState, connection: NextHopConnection, pool: NextHopPool, mailFrom: string, deferredMail: EnvelopeParams | null, xforward: XforwardAttributes): void => {
    state.transaction = { queueId: newQueueId(), started: performance.now(), connection, pool, mailFrom, deferredMail, xforward, mailRefusal: null, lost: null, recipients: [], rcptCommands: 0 };
    deps.inFlight.start();
    deps.metrics.transactionStarted();
  };

  /** A next-hop failure outside a finished message: counted, and answered with its reply. */
  const counted = (verdict: NextHopVerdict): Error => {
    deps.metrics.recordNextHopError(verdict.errorKind);
    return replyError(verdict.reply);
  };

  /** The next hop refused MAIL or a RCPT: counted as a next-hop refusal (its class says refused or deferred), passed on. */
  const countedRefusal = (reply: SmtpReply, connection: NextHopConnection): Error => {
    deps.metrics.recordNextHopError(reply.code >= 500 ? 'refused' : 'deferred');
    return replyError(refusalReply(reply, hideNames(connection)));
  };

  const hideNames = (connection: NextHopConnection | null): string[] => {
    const rt = deps.runtime.get();
    return [rt.config.nextHop.host, ...(connection?.remoteNames ?? []), connection?.remoteAddress ?? ''].filter((n) => n !== '');
  };

  type Opened = { kind: 'ok'; connection: NextHopConnection; pool: NextHopPool } | { kind: 'failed'; error: Error };

  /** A connection on which the next hop accepted MAIL FROM, or the error the client gets. */
  const openOnNextHop = async (sessionId: string, mailFrom: string, params: EnvelopeParams, xforward: XforwardAttributes): Promise<Opened> => {
    const pool = deps.pool();
    const acquired = await pool.begin((connection) => connection.mailFrom(mailFrom, params, xforward));
    if (acquired.kind !== 'ok') {
      // No message line will say it (no transaction began): the operator reads it here.
      const detail = acquired.kind === 'refused' ? { code: acquired.reply.code, enhanced: acquired.reply.enhanced, text: acquired.reply.text } : acquired;
      deps.logger.warn({ session: sessionId, during: 'during' in acquired ? acquired.during : 'connect', nextHop: detail }, acquired.kind === 'refused' ? 'next hop refused the session' : `next hop ${acquired.kind}`);
      return { kind: 'failed', error: counted(connectFailureVerdict(acquired)) };
    }
    const connection = acquired.connection;
    const sent = acquired.reply;
    if (sent.kind !== 'reply') {
      void pool.release(connection, 'dirty');
      return { kind: 'failed', error: counted(commandFailureVerdict(sent)) };
    }
    if (sent.reply.code >= 300) {
      void pool.release(connection, 'dirty');
      return { kind: 'failed', error: countedRefusal(sent.reply, connection) };
    }
    return { kind: 'ok', connection, pool };
  };

  /**
   * One `command refused` line; past MAX_REFUSAL_LINES in a session one last line says the rest go unlogged: a client
   * repeating a refused command (RCPT without MAIL, in one pipelined packet) must not flood the log.
   */
  const logRefusal = (state: SessionState | undefined, fields: Record<string, unknown>): void => {
    // A connection refused before any command (421: too many connections, shutting down) is one line per connection:
    // a connection flood must not flood the log either, so those share a budget per second.
    if (fields.lastCommand === null && !connectionRefusals.take()) return;
    const count = state ? ++state.refusalLines : 1;
    if (count <= MAX_REFUSAL_LINES) deps.logger.info(fields, 'command refused');
    else if (count === MAX_REFUSAL_LINES + 1) deps.logger.info({ session: fields.session, limit: MAX_REFUSAL_LINES }, 'command refused: further refusals in this session are not logged');
  };

  /**
   * The client's callback for a MAIL FROM or RCPT TO, logging a refusal with the reply it got: no message line says
   * it (the client may never send DATA), and every 4xx/5xx must be explainable from the log.
   */
  const loggingRefusals = (session: SMTPServerSession, command: 'MAIL FROM' | 'RCPT TO', address: string, queueId: string | null, callback: Callback): Callback =>
    (err) => {
      if (err) {
        const code = (err as { responseCode?: number }).responseCode ?? 550;
        const state = sessions.get(session.id);
        logRefusal(state, {
          session: session.id,
          queueId,
          client: clientOf(session, deps.runtime.get()).address,
          command,
          address: printable(address, 256),
          reply: printable(`${code} ${err.message}`, 256),
        });
        if (state) state.refusalLogged = true;
      }
      callback(err);
    };

  const connectionRefusals = perSecondBudget(MAX_CONNECTION_REFUSAL_LINES_PER_SECOND, () =>
    deps.logger.info({ listener: label, limit: MAX_CONNECTION_REFUSAL_LINES_PER_SECOND }, 'command refused: further connections refused in this second are not logged'),
  );

  /** The refusals smtp-server sends on its own (SIZE, syntax, sequence, XFORWARD, AUTH, its max_clients 421). */
  const replyWatcher = watchSmtpServerReplies((sessionId, lastCommand, reply) => {
    const state = sessions.get(sessionId);
    if (state?.refusalLogged) {
      state.refusalLogged = false;
      return;
    }
    logRefusal(state, {
      session: sessionId,
      queueId: state?.transaction?.queueId ?? null,
      client: state ? clientOf(state.session, deps.runtime.get()).address : null,
      lastCommand: lastCommand === null ? null : printable(lastCommand, 256),
      reply: printable(reply, 256),
    });
  });

  const onMailFrom = (address: SMTPServerAddress, session: SMTPServerSession, answer: Callback): void => {
    const callback = loggingRefusals(session, 'MAIL FROM', address.address, null, answer);
    const state = stateOf(session);
    // A new MAIL after RSET, or a transaction the client abandoned: the old one ends first.
    endTransaction(state, false);
    if (deps.draining()) return callback(replyError(REPLIES.shuttingDown));
    // refused before anything is leased or sent: no transaction, nothing half-sent on a next-hop connection
    if (!isSendableAddress(address.address)) return callback(replyError(REPLIES.senderNotRelayable));
    const params = growDeclaredSize(address.args || {}, deps.runtime.get().addedHeaderBytes);
    const xforward = clientXforward(session as unknown as Parameters<typeof clientXforward>[0]);
    // A live pooled connection to a next hop that pipelines: MAIL waits for the first RCPT and both go in one round
    // trip (the next hop's verdict on MAIL then reaches the client at that RCPT; no recipient is acknowledged before
    // the next hop accepted it). Without one, MAIL is proxied now, so an unreachable next hop is reported at MAIL.
    const pool = deps.pool();
    const idle = pool.leaseIdle();
    if (idle !== null && idle.capabilities.pipelining) {
      openTransaction(state, idle, pool, address.address, params, xforward);
      return callback();
    }
    if (idle !== null) void pool.release(idle, 'clean');
    void (async () => {
      const opened = await openOnNextHop(session.id, address.address, params, xforward);
      if (opened.kind !== 'ok') return callback(opened.error);
      if (state.closed) {
        void opened.pool.release(opened.connection, 'dirty');
        return callback();
      }
      openTransaction(state, opened.connection, opened.pool, address.address, null, xforward);
      callback();
    })().catch((err: unknown) => {
      deps.logger.error({ err, session: session.id }, 'MAIL FROM failed');
      callback(replyError(REPLIES.internalError));
    });
  };

  /** The first RCPT of a transaction whose MAIL was deferred: both in one write; MAIL's refusal is this RCPT's answer. */
  const sendDeferredMail = async (state: SessionState, txn: Transaction, sessionId: string, rcpt: string, rcptArgs: EnvelopeParams): Promise<ReplyOutcome | Error> => {
    const mailParams = txn.deferredMail!;
    // cleared while MAIL is under way (a transaction ended meanwhile releases its connection dirty: RSET or close)
    txn.deferredMail = null;
    let both: { mail: ReplyOutcome; rcpt: ReplyOutcome };
    try {
      both = await txn.connection.mailAndRcpt(txn.mailFrom, mailParams, rcpt, rcptArgs, txn.xforward);
    } catch (err) {
      // mailAndRcpt throws only before it sends anything: MAIL is still owed, so no later RCPT or DATA goes without it
      txn.deferredMail = mailParams;
      throw err;
    }
    const dead = both.mail.kind === 'lost' || (both.mail.kind === 'reply' && both.mail.reply.code === 421);
    if (dead) {
      // The next hop closed the pooled connection while it sat idle: MAIL goes on another one (a new one at the latest).
      txn.pool.discard(txn.connection);
      const opened = await openOnNextHop(sessionId, txn.mailFrom, mailParams, txn.xforward);
      if (opened.kind !== 'ok') return (txn.mailRefusal = opened.error);
      if (state.transaction !== txn) {
        // the client ended the transaction (QUIT, RSET, gone) meanwhile: the new connection is not its to keep
        void opened.pool.release(opened.connection, 'dirty');
        return replyError(REPLIES.internalError);
      }
      txn.connection = opened.connection;
      txn.pool = opened.pool;
      return txn.connection.rcptTo(rcpt, rcptArgs);
    }
    if (both.mail.kind !== 'reply') return both.mail;
    if (both.mail.reply.code >= 300) return (txn.mailRefusal = countedRefusal(both.mail.reply, txn.connection));
    return both.rcpt;
  };

  const onRcptTo = (address: SMTPServerAddress, session: SMTPServerSession, answer: Callback): void => {
    const state = stateOf(session);
    const txn = state.transaction;
    const callback = loggingRefusals(session, 'RCPT TO', address.address, txn?.queueId ?? null, answer);
    if (!txn) return callback(replyError(REPLIES.internalError));
    // Past the limit nothing reaches the next hop; the client may send the rest in a new transaction.
    if (++txn.rcptCommands > deps.runtime.get().config.limits.maxRecipients) return callback(replyError(REPLIES.tooManyRecipients));
    if (txn.mailRefusal !== null) return callback(txn.mailRefusal);
    if (txn.lost !== null) return callback(txn.lost.reply);
    // before a deferred MAIL is consumed: the next RCPT still sends MAIL with it
    if (!isSendableAddress(address.address)) return callback(replyError(REPLIES.recipientNotRelayable));
    void (async () => {
      const rcptArgs = { ...(address.args || {}) };
      const sent = txn.deferredMail !== null ? await sendDeferredMail(state, txn, session.id, address.address, rcptArgs) : await txn.connection.rcptTo(address.address, rcptArgs);
      if (sent instanceof Error) return callback(sent);
      if (sent.kind !== 'reply') {
        // the connection is gone: back to the pool now (it closes it); the transaction ends with the client's RSET,
        // MAIL, DATA or QUIT
        void txn.pool.release(txn.connection, 'dirty');
        txn.lost = { reply: counted(commandFailureVerdict(sent)), kind: sent.kind };
        return callback(txn.lost.reply);
      }
      if (sent.reply.code >= 300) {
        // Refused by the next hop: the client hears it now, so the recipient is never acknowledged and dropped.
        return callback(countedRefusal(sent.reply, txn.connection));
      }
      txn.recipients.push(address.address);
      callback();
    })().catch((err: unknown) => {
      deps.logger.error({ err, session: session.id }, 'RCPT TO failed');
      callback(replyError(REPLIES.internalError));
    });
  };

  const onData = (
    stream: NodeJS.ReadableStream & { sizeExceeded?: boolean },
    session: SMTPServerSession,
    callback: (err?: Error | null, message?: string | (string | Error)[]) => void,
  ): void => {
    const state = stateOf(session);
    const txn = state.transaction;
    const rt = deps.runtime.get();
    const startedAt = performance.now();
    state.inData = true;
    if (!txn) {
      stream.resume();
      return callback(replyError(REPLIES.internalError));
    }
    const client = clientOf(session, rt);
    const lr = listenerRuntime(rt);
    const cfg = rt.config;
    const ctx: MessageContext = {
      client,
      relayHosts: lr.relayHosts,
      allowedDomains: rt.users ? { byUser: rt.users.allowedDomainsByUser } : undefined,
      keys: rt.keys,
      authservId: cfg.authservId,
      verify: {
        enabled: cfg.verify.enabled,
        maxSignatures: cfg.verify.maxSignatures,
        minKeyBits: cfg.verify.minKeyBits,
        allowSha1: cfg.verify.allowSha1,
        clockSkewSec: cfg.verify.clockSkew,
      },
      policy: cfg.policy,
      lookupTxt: rt.lookupTxt,
      nowSec: () => Math.floor(Date.now() / 1000),
    };
    const record: MessageRecord = {
      queueId: txn.queueId,
      session: session.id,
      listener: label,
      client: { address: client.address, via: client.via, helo: session.hostNameAppearsAs, authUser: client.authUser },
      envelope: { mailFrom: txn.mailFrom, rcptTo: [...txn.recipients] },
      sizeBytes: 0,
      decision: { kind: 'none', reason: 'not reached: the message did not arrive whole' },
      relay: { outcome: 'not_relayed' },
      timings: { receiveMs: 0, relayMs: 0, totalMs: 0 },
      outcome: 'rejected',
    };
    const finish = (err: Error | null, message?: string | (string | Error)[], clean = false) => {
      record.timings.totalMs = performance.now() - startedAt;
      if (state.closed && record.relay.outcome === 'delivered') {
        // The next hop holds the message but our client is gone: it may send it again (reliability.md invariant 2).
        record.relay.outcome = 'ambiguous';
        record.outcome = 'ambiguous';
      }
      state.inData = false;
      endTransaction(state, clean);
      // LMTP owes one reply per RCPT we answered 250 (RFC 2033 §4.2). smtp-server repeats an error once per entry of
      // its envelope, which holds a repeated address once: the client would wait for a reply that never comes.
      if (lmtp && err !== null) callback(null, txn.recipients.map(() => err));
      else callback(err, message);
      // After the reply went out (smtp-server flushes it on the next tick): the client does not wait for the log write.
      setImmediate(() => {
        deps.logger.info(formatMessageLog(record), 'message');
        deps.metrics.recordMessage(record);
      });
    };
    const reject = (reply: SmtpReplyValue, outcome: string) => {
      record.outcome = outcome;
      finish(replyError(reply));
    };
    if (txn.lost !== null) {
      // no delivery can happen on a connection lost at a RCPT: the message is not read (smtp-server drains it)
      record.decision = { kind: 'none', reason: `not reached: the next hop was ${txn.lost.kind === 'timeout' ? 'silent' : 'lost'} at RCPT` };
      record.relay = { outcome: txn.lost.kind, atRcpt: true };
      record.outcome = `next hop ${txn.lost.kind}`;
      return finish(txn.lost.reply);
    }

    void (async () => {
      let prepared: PreparedMessage | null = null;
      const received = await receiveMessage(
        stream as unknown as import('node:stream').Readable,
        {
          maxHeaderBytes: cfg.limits.maxHeaderSize,
          maxHeaderFields: cfg.limits.maxHeaderFields,
          maxMessageBytes: cfg.limits.maxMessageSize,
          spillThresholdBytes: cfg.limits.spillThreshold,
          spoolDir: cfg.limits.spoolDir ?? systemTmpDir,
          lineEndings: listener.lineEndings,
        },
        (framed) => {
          prepared = prepareMessage(framed, ctx);
          return prepared.bodySpecs;
        },
      );
      record.timings.receiveMs = performance.now() - startedAt;
      if (received.kind === 'spool_failed') {
        // The client keeps the message (4xx); the operator needs the path and the cause.
        deps.logger.error({ queueId: txn.queueId, spoolDir: cfg.limits.spoolDir ?? systemTmpDir, reason: received.reason, detail: received.detail }, 'spooling the message failed');
        return reject(receiveRefusalReply(received), `deferred: spool ${received.reason}`);
      }
      if (received.kind === 'busy') return reject(receiveRefusalReply(received), `deferred: ${received.reason}`);
      if (received.kind !== 'received') return reject(receiveRefusalReply(received), `refused: ${received.kind === 'refused' ? received.reason : received.kind}`);
      const message = received.message;
      record.sizeBytes = message.sizeBytes;
      try {
        if (smtpUtf8Unmet((session.envelope as { smtpUtf8?: boolean }).smtpUtf8 === true, txn.connection.capabilities, message.header)) {
          return reject(REPLIES.smtpUtf8NotOffered, 'refused: SMTPUTF8 not offered by the next hop');
        }
        const prep = prepared as PreparedMessage | null;
        if (!prep) return reject(REPLIES.internalError, 'internal error');
        record.decision = { kind: prep.decision.kind, reason: prep.decision.reason };
        record.authorDomain = prep.authors[0] ?? null;
        const finished = await finishMessage(prep, message.framed, message.bodyHashes, ctx);
        if (finished.kind === 'refuse') return reject(REPLIES.domainNotAllowed, 'refused: domain not allowed');
        if (finished.verdicts) {
          record.signatures = finished.verdicts.map((v) => ({ domain: v.domain, selector: v.selector, result: v.result, reason: v.reason }));
          record.timings.verifyMs = finished.verifyMs;
        }
        if (finished.kind === 'reject') {
          const reply = POLICY_REPLIES[finished.policy.status];
          record.policy = { kind: 'reject', status: reply.enhanced, dryRun: false };
          return reject(reply, `rejected: ${finished.policy.status}`);
        }
        if (finished.kind === 'tempfail') {
          if (finished.cause === 'signing') deps.logger.error({ queueId: txn.queueId, detail: finished.detail }, 'signing failed');
          return reject(finished.cause === 'dns' ? REPLIES.dnsTempfail : REPLIES.signingKeyUnavailable, `deferred: ${finished.cause}`);
        }
        if (finished.signedWith.length > 0) {
          record.signedWith = finished.signedWith;
          record.timings.signMs = finished.signMs;
        }
        if (finished.policy) {
          // the enhanced status the client would have got: what the log line and the metrics label carry
          const status = finished.policy.kind === 'reject' ? POLICY_REPLIES[finished.policy.status].enhanced : undefined;
          record.policy = { kind: finished.policy.kind, status, dryRun: true };
        }

        const header = message.header;
        // an empty prepend (nothing to add) is written as nothing
        const parts = message.body.read([finished.prepend, ...removeFields(header, finished.remove)]);
        const relayStarted = performance.now();
        const outcome = await txn.connection.data(parts, txn.recipients.length);
        record.timings.relayMs = performance.now() - relayStarted;
        if (outcome.kind === 'replies') {
          const replies = outcome.replies;
          const first = replies[0]!;
          record.relay = {
            outcome: replies.every((r) => r.code < 300) ? 'delivered' : replies.some((r) => r.code < 300) ? 'delivered' : first.code < 500 ? 'deferred' : 'refused',
            reply: toLogReply(first),
            perRecipient: replies.length > 1 ? replies.map((r, i) => ({ recipient: txn.recipients[i] ?? '', reply: toLogReply(r) })) : undefined,
            nextHopQueueId: parseQueuedAs(first.text),
          };
          const answer = (r: SmtpReply): string | Error =>
            r.code < 300 ? `2.0.0 Ok: queued as ${txn.queueId}` : replyError(refusalReply(r, hideNames(txn.connection)));
          if (lmtp) {
            // One reply per recipient: the next hop's own when it speaks LMTP, else its one reply for all.
            const perRecipient = txn.recipients.map((_, i) => answer(replies[i] ?? first));
            const delivered = perRecipient.filter((a) => typeof a === 'string').length;
            // "partly" only when some recipient was delivered: a refusal for all is logged (and counted) as SMTP's is
            record.outcome =
              delivered === perRecipient.length ? 'delivered' : delivered > 0 ? 'partly delivered' : first.code < 500 ? 'deferred by next hop' : 'refused by next hop';
            return finish(null, perRecipient, true);
          }
          if (first.code < 300) {
            record.outcome = 'delivered';
            return finish(null, `2.0.0 Ok: queued as ${txn.queueId}`, true);
          }
          record.outcome = first.code < 500 ? 'deferred by next hop' : 'refused by next hop';
          return finish(answer(first) as Error, undefined, true);
        }
        if (outcome.kind === 'refused') {
          record.relay = { outcome: outcome.reply.code < 500 ? 'deferred' : 'refused', reply: toLogReply(outcome.reply) };
          record.outcome = outcome.reply.code < 500 ? 'deferred by next hop' : 'refused by next hop';
          return finish(replyError(refusalReply(outcome.reply, hideNames(txn.connection))));
        }
        // Timeout or lost. After the final dot the next hop may hold the message: logged as ambiguous.
        record.relay = {
          outcome: outcome.afterEndOfData ? 'ambiguous' : outcome.kind,
          error: { kind: outcome.kind, during: outcome.during, ...(outcome.kind === 'lost' ? { detail: outcome.detail } : {}) },
        };
        record.outcome = outcome.afterEndOfData ? 'ambiguous' : `next hop ${outcome.kind}`;
        return finish(replyError(dataFailureVerdict(outcome).reply));
      } finally {
        await message.dispose();
      }
    })().catch((err: unknown) => {
      deps.logger.error({ err, queueId: txn.queueId }, 'message processing failed');
      record.outcome = 'internal error';
      finish(replyError(REPLIES.internalError));
    });
  };

  const server = new SMTPServer({
    ...tls,
    name: hostname(),
    banner: 'dkimgate',
    lmtp,
    ...reloadableOptions(listener, initial),
    hideSTARTTLS: certificate === null,
    // smtp-server's default is TLSv1 "for very old clients"; TLS 1.0 and 1.1 are deprecated (RFC 8996). Node's OpenSSL
    // happened to refuse them at its security level (with an internal-error alert); this says it, whatever the level.
    minVersion: 'TLSv1.2',
    // A TLS 1.2 client may ask for a new handshake at any time: each costs us one, and SMTP has no use for it
    // (Node would allow three per ten minutes, then end the session).
    secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION,
    // Both are off by default in smtp-server: our replies carry RFC 3463/7372 codes, and DSN
    // parameters (RET, ENVID, NOTIFY, ORCPT) are passed to the next hop.
    hideENHANCEDSTATUSCODES: false,
    hideDSN: false,
    authOptional: true,
    allowInsecureAuth: listener.allowInsecureAuth,
    disableReverseLookup: true,
    useXForward: true,
    // The envelope is the next hop's to judge (it refuses what it cannot take, and we pass its reply on): refusing
    // what Postfix accepts (user.@example.com, a..b@example.com) would bounce mail a content_filter already took.
    lenientAddressParsing: true,
    proxyAllowed: (address: string) => matchCidrs(address, listenerRuntime(deps.runtime.get()).xforwardHosts),
    logger: replyWatcher,
    onConnect(session, callback) {
      const state = stateOf(session);
      deps.metrics.connectionOpened();
      state.counted = true;
      if (deps.draining()) return callback(replyError(REPLIES.shuttingDown));
      // smtp-server's own maxClients counts one listener's connections; the limit is the daemon's.
      if (deps.clients.count >= deps.runtime.get().config.limits.maxClients) return callback(replyError(REPLIES.tooManyConnections));
      deps.clients.count++;
      state.admitted = true;
      callback();
    },
    onAuth(auth, session, callback) {
      const users = deps.runtime.get().users;
      const username = auth.username ?? '';
      if (!session.secure && !listener.allowInsecureAuth) return callback(replyError(REPLIES.authNeedsTls));
      const address = peerAddress(session);
      if (!users || (auth.method !== 'PLAIN' && auth.method !== 'LOGIN')) return callback(replyError(REPLIES.badCredentials));
      // RFC 4616: a client asking to act as someone else (authzid) is refused; smtp-server would log it in as the authcid.
      // An authzid alone (authcid empty, as some clients send it) is smtp-server's username and checked as such.
      if (auth.authzid && auth.authcid && auth.authzid !== auth.authcid) return callback(replyError(REPLIES.authzidRefused));
      // Checked before the password, counting the address's checks in flight: a blocked address costs us no bcrypt work,
      // however many sessions it opens at once.
      if (!authThrottle.begin(address)) return callback(replyError(REPLIES.tooManyAuthFailures));
      void users.verifyPassword(username, auth.password ?? '').then((ok) => {
        const exhausted = authThrottle.end(address, !ok);
        if (ok) return callback(null, { user: username });
        if (exhausted) {
          const l = deps.runtime.get().config.limits;
          deps.logger.warn({ session: session.id, client: address, failures: l.maxAuthFailures, windowSec: l.authFailureWindow }, 'AUTH failure limit reached: refusing AUTH from this address');
        }
        // A failed attempt costs the client a second: brute force gets slow.
        setTimeout(() => callback(replyError(exhausted ? REPLIES.tooManyAuthFailures : REPLIES.badCredentials)), 1000);
      }, (err: unknown) => {
        authThrottle.end(address, false);
        deps.logger.error({ err, session: session.id }, 'AUTH: the password could not be checked');
        callback(replyError(REPLIES.authUnavailable));
      });
    },
    onMailFrom,
    onRcptTo,
    onData,
    // RSET, a new LHLO/EHLO/HELO, XFORWARD or STARTTLS ended the client's transaction: ours ends with it, so its
    // next-hop connection goes back to the pool and a drain does not wait for it.
    onTransactionReset(session: { id: string }) {
      const state = sessions.get(session.id);
      if (state && !state.inData) endTransaction(state, false);
    },
    onClose(session) {
      const state = sessions.get(session.id);
      if (state) {
        if (state.admitted) deps.clients.count--;
        state.closed = true;
        // A DATA in progress ends the transaction itself (and may log it as ambiguous).
        if (!state.inData) endTransaction(state, false);
      }
      sessions.delete(session.id);
      // smtp-server's own max_clients check answers 421 before onConnect, yet calls onClose: not ours to subtract
      if (state?.counted) deps.metrics.connectionClosed();
    },
  } as ConstructorParameters<typeof SMTPServer>[0] & ProxyAllowedOption & TransactionResetOption);
  // TCP_NODELAY on every client socket: a loopback filter otherwise waits for Nagle on each reply.
  (server as unknown as { server: import('node:net').Server }).server.on('connection', (socket: import('node:net').Socket) => socket.setNoDelay(true));
  (server as unknown as { server: import('node:net').Server }).server.on('listening', function (this: import('node:net').Server) {
    const bound = this.address();
    if (bound !== null && typeof bound === 'object') label = `${listener.protocol}://${formatHostPort(listener.host, bound.port)}`;
  });
  // A failure to bind is startDaemon's to report (the CLI says it in one line); later errors are logged here.
  const clientErrorsSeen = new WeakSet<object>();
  server.on('error', (err: Error & { remoteAddress?: string; code?: string; reason?: string; meta?: { stage?: string } }) => {
    if (!(server as unknown as { server: import('node:net').Server }).server.listening) return;
    if (err.remoteAddress === undefined) return deps.logger.error({ err, listener: label }, 'listener error');
    // One client's connection failed (smtp-server sets remoteAddress): a handshake it botched or broke off, a reset in a
    // transaction. The listener is fine, so no error line (scanners would fill the log with them); smtp-server reports
    // a failed handshake once per event the TLS socket emits for it, so it is logged once.
    if (clientErrorsSeen.has(err)) return;
    clientErrorsSeen.add(err);
    const detail = { listener: label, client: err.remoteAddress, code: err.code, reason: err.reason ?? err.message };
    if (err.meta?.stage === 'connect') deps.logger.warn(detail, 'TLS handshake with a client failed');
    else deps.logger.info(detail, 'client connection failed');
  });
  const deadlines = new ClientDeadlines(
    () => (server as unknown as { connections: Set<WatchedConnection> }).connections,
    () => deps.runtime.get().config.limits,
    REPLIES,
    (reason, detail) => deps.logger.warn({ listener: label, reason, ...detail }, reason === 'too_slow' ? 'client too slow: closing the session' : 'session time limit reached: closing the session'),
  );
  deadlines.start();
  server.on('close', () => deadlines.stop());
  return server;
}
