// What our client is told when the next hop fails or refuses, and which next-hop error it counts as: one place for
// the next-hop rows of the reply table (reliability.md). Pure; reply texts pass through passThrough (no host names).
// Input: outcomes of our next-hop client (texts from the next hop are untrusted).

import type { NextHopErrorKind } from '../observability/metrics.js';
import type { ConnectOutcome, DataOutcome, ReplyOutcome } from '../relay/next-hop-connection.js';
import type { SmtpReply } from '../relay/smtp-reply.js';
import { passThrough, REPLIES, type SmtpReplyValue } from './reply-codes.js';

export type NextHopVerdict = { reply: SmtpReplyValue; errorKind: NextHopErrorKind };

/**
 * No connection to use. A refusal while the session is set up (greeting, EHLO, STARTTLS, AUTH) says nothing about
 * this message — a wrong password or a busy next hop is ours to fix — so the client gets a temporary 451 and keeps
 * the message, whatever the class of the refusal (as Postfix does with smtp_skip_5xx_greeting and
 * smtp_sasl_auth_soft_bounce).
 */
export function connectFailureVerdict(outcome: Exclude<ConnectOutcome, { kind: 'ok' }>): NextHopVerdict {
  switch (outcome.kind) {
    case 'unreachable':
      return { reply: REPLIES.nextHopUnreachable, errorKind: 'unreachable' };
    case 'refused':
      return { reply: REPLIES.nextHopSessionRefused, errorKind: outcome.during === 'auth' ? 'auth' : outcome.during === 'starttls' ? 'tls' : 'refused' };
    case 'timeout':
      return { reply: REPLIES.nextHopTimeout, errorKind: outcome.during === 'tls-handshake' ? 'tls' : 'timeout' };
    case 'lost':
      return { reply: REPLIES.nextHopLost, errorKind: outcome.during === 'tls-handshake' ? 'tls' : 'lost' };
  }
}

/** A command (MAIL, RCPT) that got no reply. */
export function commandFailureVerdict(outcome: Exclude<ReplyOutcome, { kind: 'reply' }>): NextHopVerdict {
  return outcome.kind === 'timeout' ? { reply: REPLIES.nextHopTimeout, errorKind: 'timeout' } : { reply: REPLIES.nextHopLost, errorKind: 'lost' };
}

/** DATA or end of data that got no reply. */
export function dataFailureVerdict(outcome: Extract<DataOutcome, { kind: 'timeout' | 'lost' }>): NextHopVerdict {
  return outcome.kind === 'timeout' ? { reply: REPLIES.nextHopTimeout, errorKind: 'timeout' } : { reply: REPLIES.nextHopLost, errorKind: 'lost' };
}

/** The next hop's own 4xx/5xx to a command of the transaction, with its names hidden. */
export function refusalReply(reply: SmtpReply, hideNames: readonly string[]): SmtpReplyValue {
  return passThrough(reply.code, reply.enhanced, reply.text, hideNames);
}
