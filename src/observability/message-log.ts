// The one log line per message: a MessageRecord -> a flat-ish object for logger.info(obj, 'message'); parseQueuedAs.
// Input: addresses, HELO names, DKIM d=/s= and next-hop reply texts are untrusted and pass through printable().
import { printable } from './logger.js';

/** A reply from the next hop: data, not one of our reply codes. */
export type NextHopReply = { code: number; enhanced: string | null; text: string };

export type RelayOutcomeKind =
  | 'delivered'
  | 'refused'
  | 'deferred'
  | 'unreachable'
  | 'timeout'
  | 'lost'
  /** The next hop accepted, but our client vanished before our 250 (reliability.md §2). */
  | 'ambiguous'
  | 'not_relayed';

/** One recipient's own reply: RCPT-time (SMTP proxying) or after DATA (LMTP). */
export type RecipientReply = { recipient: string; reply: NextHopReply };

export type MessageRecord = {
  queueId: string;
  /** The SMTP session (smtp-server's id): what `command refused` and next-hop warn lines of the same session carry. */
  session?: string;
  listener: string;
  client: { address: string | null; via: 'connection' | 'xforward'; helo?: string; authUser?: string | null };
  /** The From header's domain, when there is exactly one; also picks the metrics domain label. */
  authorDomain?: string | null;
  envelope: { mailFrom: string; rcptTo: string[] };
  sizeBytes: number;
  /** 'none': the transaction ended before the message was whole, so nothing was decided (`outcome` says why). */
  decision: { kind: 'sign' | 'verify' | 'refuse' | 'none'; reason: string };
  /** Verify results, one per signature evaluated (or a single `none`). */
  signatures?: { domain: string | null; selector: string | null; result: string; reason: string | null }[];
  signedWith?: { domain: string; selector: string; algorithm: string }[];
  /** `status` (an enhanced code such as 5.7.20) is set only when the policy rejected, or would have with dryRun. */
  policy?: { kind: string; status?: string; dryRun?: boolean };
  relay: {
    outcome: RelayOutcomeKind;
    reply?: NextHopReply;
    perRecipient?: RecipientReply[];
    /** undefined: parsed from a 2xx reply's text; null: not known. */
    nextHopQueueId?: string | null;
    /** The failure (lost, timeout) happened at a RCPT, where it was counted: no message was relayed. */
    atRcpt?: true;
    /** The next hop went silent or away while the message was relayed (after the final dot too: outcome ambiguous). */
    error?: { kind: 'lost' | 'timeout'; during: string; detail?: string };
  };
  timings: { receiveMs: number; verifyMs?: number; signMs?: number; relayMs: number; totalMs: number };
  outcome: string;
};

export type MessageLogLine = {
  queueId: string;
  session?: string;
  listener: string;
  client: string | null;
  clientVia: 'connection' | 'xforward';
  helo?: string;
  authUser?: string | null;
  authorDomain?: string | null;
  mailFrom: string;
  rcptTo: string[];
  rcptCount: number;
  sizeBytes: number;
  decision: 'sign' | 'verify' | 'refuse' | 'none';
  decisionReason: string;
  dkim?: { domain: string | null; selector: string | null; result: string; reason: string | null }[];
  signed?: { domain: string; selector: string; algorithm: string }[];
  policy?: string;
  policyStatus?: string;
  policyDryRun?: boolean;
  relay: RelayOutcomeKind;
  relayCode?: number;
  relayEnhanced?: string | null;
  relayText?: string;
  relayRecipients?: { recipient: string; code: number; enhanced: string | null; text: string }[];
  /** "lost during end-of-data: connection reset", "timeout during data": what ended the relay without a reply. */
  relayError?: string;
  nextHopQueueId: string | null;
  receiveMs: number;
  verifyMs?: number;
  signMs?: number;
  relayMs: number;
  totalMs: number;
  outcome: string;
  ambiguous?: true;
};

/** Bounds that keep one line bounded whatever the client sent. */
export const MAX_LOGGED_RECIPIENTS = 100;
export const MAX_LOGGED_SIGNATURES = 20;
const ADDRESS_CHARS = 256; // RFC 5321 §4.5.3.1.3: a path is at most 256 octets
const DOMAIN_CHARS = 255;
const TEXT_CHARS = 200;
const SHORT_CHARS = 64;

/** The message's log line. Pure; never throws for any record the types allow. */
export function formatMessageLog(record: MessageRecord): MessageLogLine {
  const { client, envelope, decision, relay, timings } = record;
  const line: MessageLogLine = {
    queueId: printable(record.queueId, SHORT_CHARS),
    listener: printable(record.listener, SHORT_CHARS),
    client: client.address === null ? null : printable(client.address, SHORT_CHARS),
    clientVia: client.via,
    mailFrom: printable(envelope.mailFrom, ADDRESS_CHARS),
    rcptTo: envelope.rcptTo.slice(0, MAX_LOGGED_RECIPIENTS).map((r) => printable(r, ADDRESS_CHARS)),
    rcptCount: envelope.rcptTo.length,
    sizeBytes: record.sizeBytes,
    decision: decision.kind,
    decisionReason: printable(decision.reason, TEXT_CHARS),
    relay: relay.outcome,
    nextHopQueueId: nextHopQueueIdOf(relay),
    receiveMs: roundMs(timings.receiveMs),
    relayMs: roundMs(timings.relayMs),
    totalMs: roundMs(timings.totalMs),
    outcome: printable(record.outcome, SHORT_CHARS),
  };
  if (record.session !== undefined) line.session = printable(record.session, SHORT_CHARS);
  if (client.helo !== undefined) line.helo = printable(client.helo, DOMAIN_CHARS);
  if (client.authUser !== undefined) line.authUser = client.authUser === null ? null : printable(client.authUser, ADDRESS_CHARS);
  if (record.authorDomain !== undefined) line.authorDomain = nullablePrintable(record.authorDomain, DOMAIN_CHARS);
  if (record.signatures !== undefined) {
    line.dkim = record.signatures.slice(0, MAX_LOGGED_SIGNATURES).map((s) => ({
      domain: nullablePrintable(s.domain, DOMAIN_CHARS),
      selector: nullablePrintable(s.selector, SHORT_CHARS),
      result: printable(s.result, SHORT_CHARS),
      reason: nullablePrintable(s.reason, SHORT_CHARS),
    }));
  }
  if (record.signedWith !== undefined) {
    line.signed = record.signedWith.map((s) => ({
      domain: printable(s.domain, DOMAIN_CHARS),
      selector: printable(s.selector, SHORT_CHARS),
      algorithm: printable(s.algorithm, SHORT_CHARS),
    }));
  }
  if (record.policy !== undefined) {
    line.policy = printable(record.policy.kind, SHORT_CHARS);
    if (record.policy.status !== undefined) line.policyStatus = printable(record.policy.status, SHORT_CHARS);
    if (record.policy.dryRun !== undefined) line.policyDryRun = record.policy.dryRun;
  }
  if (relay.reply !== undefined) {
    line.relayCode = relay.reply.code;
    line.relayEnhanced = nullablePrintable(relay.reply.enhanced, SHORT_CHARS);
    line.relayText = printable(relay.reply.text, TEXT_CHARS);
  }
  if (relay.error !== undefined) {
    const { kind, during, detail } = relay.error;
    line.relayError = printable(`${kind} during ${during}${detail !== undefined ? `: ${detail}` : ''}`, TEXT_CHARS);
  }
  if (relay.perRecipient !== undefined) {
    line.relayRecipients = relay.perRecipient.slice(0, MAX_LOGGED_RECIPIENTS).map((r) => ({
      recipient: printable(r.recipient, ADDRESS_CHARS),
      code: r.reply.code,
      enhanced: nullablePrintable(r.reply.enhanced, SHORT_CHARS),
      text: printable(r.reply.text, TEXT_CHARS),
    }));
  }
  if (timings.verifyMs !== undefined) line.verifyMs = roundMs(timings.verifyMs);
  if (timings.signMs !== undefined) line.signMs = roundMs(timings.signMs);
  if (relay.outcome === 'ambiguous' || record.outcome === 'ambiguous') line.ambiguous = true;
  return line;
}

function nextHopQueueIdOf(relay: MessageRecord['relay']): string | null {
  if (relay.nextHopQueueId !== undefined) {
    return relay.nextHopQueueId === null ? null : printable(relay.nextHopQueueId, SHORT_CHARS);
  }
  const reply = relay.reply;
  if (reply === undefined || reply.code < 200 || reply.code > 299) return null;
  return parseQueuedAs(reply.text);
}

function nullablePrintable(text: string | null, max: number): string | null {
  return text === null ? null : printable(text, max);
}

function roundMs(ms: number): number {
  return Number.isFinite(ms) ? Math.round(ms * 1000) / 1000 : -1;
}

const MAX_REPLY_SCAN = 512;
const ID = '([A-Za-z0-9][A-Za-z0-9._\\-]{0,63})(?![A-Za-z0-9._\\-])';
/** Known "message accepted" reply texts, first match wins. */
const QUEUED_AS_PATTERNS: readonly RegExp[] = [
  // Postfix, smtp-sink, OpenSMTPD ("Message accepted for delivery" has no id there), many others: "Ok: queued as 4Xyz"
  new RegExp(`\\bqueued as:?\\s+<?${ID}`, 'i'),
  // Exim: "OK id=1rAbCd-000Ef1-2G"
  new RegExp(`(?:^|[\\s(\\[])id=<?${ID}`, 'i'),
  // Haraka: "Message Queued (4F0B2E3A-1C2D-4E5F-8A9B-0C1D2E3F4A5B.1)"
  new RegExp(`\\bqueued\\s*\\(${ID}\\)`, 'i'),
  // Sendmail: "4BJ1x2Ab012345 Message accepted for delivery"
  new RegExp(`^${ID}\\s+Message accepted for delivery`, 'i'),
  // Gmail: "OK  1700000000 a1b2c3d4e5si123456qkb.123 - gsmtp"
  new RegExp(`\\s${ID}\\s+-\\s+gsmtp\\s*$`, 'i'),
];

/**
 * The next hop's queue id from its 250 reply text, or null when the text names none.
 * Accepts the text with or without the "250 " / "250-" prefix and the enhanced status code.
 */
export function parseQueuedAs(text: string): string | null {
  const body = text
    .slice(0, MAX_REPLY_SCAN)
    .replace(/^\d{3}[ -]/, '')
    .replace(/^[245]\.\d{1,3}\.\d{1,3}\s+/, '')
    .trim();
  for (const pattern of QUEUED_AS_PATTERNS) {
    const id = pattern.exec(body)?.[1];
    if (id !== undefined) return id.replace(/\.+$/, '') || null;
  }
  return null;
}
