// The one home of dkimgate's SMTP replies (reliability.md "Reply codes"): outcomes -> code,
// enhanced status code (RFC 3463, RFC 7372) and text. Pure; texts never contain client input.

import type { ReceiveOutcome } from '../pipeline/receive-message.js';

export interface SmtpReplyValue {
  readonly code: number;
  readonly enhanced: string;
  readonly text: string;
}

function reply(code: number, enhanced: string, text: string): SmtpReplyValue {
  return { code, enhanced, text };
}

export const REPLIES = {
  shuttingDown: reply(421, '4.3.2', 'shutting down, try again later'),
  tooManyConnections: reply(421, '4.7.0', 'too many connections, try again later'),
  sessionTimeout: reply(421, '4.4.2', 'timeout, closing connection'),
  sessionTooLong: reply(421, '4.4.2', 'session time limit reached, closing connection'),
  clientTooSlow: reply(421, '4.4.2', 'data rate too low, closing connection'),
  tooManyAuthFailures: reply(421, '4.7.0', 'too many authentication failures, try again later'),
  tooManyRecipients: reply(452, '4.5.3', 'too many recipients'),
  /** A valid address our relay client does not send (see isSendableAddress): permanent, so the sender learns it. */
  senderNotRelayable: reply(553, '5.1.7', 'sender address not relayed: angle brackets in a quoted local part, or over 512 characters'),
  recipientNotRelayable: reply(553, '5.1.3', 'recipient address not relayed: angle brackets in a quoted local part, or over 512 characters'),
  lineTooLong: reply(500, '5.5.2', 'line too long'),
  nextHopUnreachable: reply(451, '4.4.1', 'next hop unreachable, try again later'),
  nextHopSessionRefused: reply(451, '4.4.1', 'next hop refused the session, try again later'),
  nextHopLost: reply(451, '4.4.2', 'next hop connection lost, try again later'),
  nextHopTimeout: reply(451, '4.4.2', 'next hop timed out, try again later'),
  internalError: reply(451, '4.3.0', 'internal error, try again later'),
  signingKeyUnavailable: reply(451, '4.3.0', 'signing key unavailable, try again later'),
  dnsTempfail: reply(451, '4.7.5', 'DKIM key lookup failed temporarily, try again later'),
  outOfDisk: reply(452, '4.3.1', 'insufficient system storage, try again later'),
  headerMemoryFull: reply(452, '4.3.1', 'insufficient system resources: too many large headers at once, try again later'),
  bareLineEnding: reply(550, '5.5.2', 'message has bare CR or LF line endings: use CRLF'),
  bareLf: reply(550, '5.5.2', 'message has bare LF line endings: use CRLF'),
  bareCr: reply(550, '5.5.2', 'message has a bare CR: use CRLF line endings'),
  nul: reply(550, '5.6.0', 'message contains NUL bytes'),
  /** The client asked for SMTPUTF8, the header is UTF-8, the next hop did not announce SMTPUTF8 (envelope-params.ts). */
  smtpUtf8NotOffered: reply(550, '5.6.7', 'SMTPUTF8 is required for a non-ASCII header, but was not offered by the next hop'),
  headerStartsFolded: reply(550, '5.6.0', 'malformed header: the first line starts with a space or tab (a continuation with no field)'),
  tooBig: reply(552, '5.3.4', 'message too big'),
  headerTooBig: reply(552, '5.3.4', 'header section too big'),
  tooManyHeaderFields: reply(552, '5.3.4', 'too many header fields'),
  noPassingSignature: reply(550, '5.7.20', 'no passing DKIM signature found'),
  noAcceptableSignature: reply(550, '5.7.21', 'no acceptable DKIM signature found'),
  noAlignedSignature: reply(550, '5.7.22', 'no valid author-matched DKIM signature found'),
  badCredentials: reply(535, '5.7.8', 'authentication credentials invalid'),
  /** RFC 4954 §6: the password could not be checked (the bcrypt thread failed); the client may try again. */
  authUnavailable: reply(454, '4.7.0', 'temporary authentication failure'),
  authNeedsTls: reply(538, '5.7.11', 'encryption required for requested authentication mechanism'),
  authInTransaction: reply(503, '5.5.1', 'AUTH not permitted during a mail transaction'),
  /** RFC 4616 §2: an authorization identity other than the authenticated one; nobody may act as another user here. */
  authzidRefused: reply(535, '5.7.8', 'authentication credentials invalid: authorization identity differs from authentication identity'),
  proxyNotAllowed: reply(550, '5.7.1', 'XFORWARD not allowed from this client'),
  domainNotAllowed: reply(550, '5.7.1', 'not allowed to send as this domain'),
} as const satisfies Record<string, SmtpReplyValue>;

/** An Error smtp-server turns into our reply: the text starts with the enhanced code (see enhanced-status.ts). */
export function replyError(value: SmtpReplyValue): Error & { responseCode: number } {
  const err = new Error(`${value.enhanced} ${value.text}`) as Error & { responseCode: number };
  err.responseCode = value.code;
  return err;
}

/** A message refused while it was received (bare CR/LF, NUL, sizes, spool), as our reply. */
export function receiveRefusalReply(outcome: Exclude<ReceiveOutcome, { kind: 'received' }>): SmtpReplyValue {
  switch (outcome.kind) {
    case 'refused':
      switch (outcome.reason) {
        case 'bare_cr':
          return REPLIES.bareCr;
        case 'bare_lf':
          return REPLIES.bareLf;
        case 'nul':
          return REPLIES.nul;
        case 'header_too_large':
          return REPLIES.headerTooBig;
        case 'too_many_header_fields':
          return REPLIES.tooManyHeaderFields;
        case 'message_too_large':
          return REPLIES.tooBig;
        case 'header_starts_folded':
          return REPLIES.headerStartsFolded;
      }
      break;
    case 'busy':
      return REPLIES.headerMemoryFull;
    case 'spool_failed':
      return outcome.reason === 'disk_full' ? REPLIES.outOfDisk : REPLIES.internalError;
    case 'aborted':
      return REPLIES.internalError;
  }
  return REPLIES.internalError;
}

const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})$/;

/**
 * A next hop's 4xx/5xx passed on with its class and code (reliability.md): its enhanced code when it
 * gave a valid one of the same class, else the generic one; its text with the next hop's own names
 * replaced, so no internal host name is revealed. Its 421 becomes 451: that next hop is closing its
 * session with us, not ours with the client (a 421 from us would make smtp-server close the client's).
 */
export function passThrough(code: number, enhanced: string | null, text: string, hideNames: readonly string[]): SmtpReplyValue {
  const validCode = code === 421 ? 451 : code >= 400 && code <= 599 ? code : 451;
  // RFC 3463 §2: the enhanced code's class is that of the reply we send (a next hop's 250 must not become "451 2.0.0")
  const cls = String(Math.floor(validCode / 100));
  const e = enhanced && ENHANCED.exec(enhanced) && enhanced[0] === cls ? enhanced : `${cls}.0.0`;
  let safe = text.replace(/[^\x20-\x7e]/g, ' ').slice(0, 200);
  for (const name of hideNames) {
    if (name.length >= 3) safe = safe.replace(namePattern(name), 'next-hop');
  }
  return { code: validCode, enhanced: e, text: `next hop: ${safe.trim() || 'refused'}` };
}

/**
 * `name` in any letter case (host names are case-insensitive, RFC 4343), as a whole word: "mail" is hidden in
 * "by mail (10.0.0.1)" but not in "mailbox full".
 */
function namePattern(name: string): RegExp {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(?<![A-Za-z0-9-])${escaped}(?![A-Za-z0-9-])`, 'gi');
}
