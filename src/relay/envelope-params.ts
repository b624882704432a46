// MAIL FROM / RCPT TO parameters for the next hop: only those of extensions it announced, validated, xtext where RFC 3461 says so.
// Input: parameters as smtp-server decoded them (keys any case, ENVID/ORCPT values xtext-decoded); output never holds CR, LF or controls.

import type { NextHopCapabilities } from './ehlo-capabilities.js';

export type EnvelopeParams = Record<string, string | true>;

/** `text` is what follows the address on the command line (empty, or starting with a space); `dropped` names each parameter left out and why. */
export type FormattedParams = { text: string; dropped: string[] };

const MAX_ENVID_XTEXT = 100; // RFC 3461 §4.4
const MAX_ORCPT_XTEXT = 500; // RFC 3461 §4.2
const CONTROL_RE = /[\x00-\x1f\x7f]/;
const NOTIFY_RE = /^(?:NEVER|(?:SUCCESS|FAILURE|DELAY)(?:,(?:SUCCESS|FAILURE|DELAY)){0,2})$/;
const ADDR_TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9-]{0,31}$/;

/** MAIL FROM parameters: SIZE (SIZE), BODY (8BITMIME), SMTPUTF8 (SMTPUTF8), RET and ENVID (DSN). */
export function formatMailParams(params: EnvelopeParams, caps: NextHopCapabilities): FormattedParams {
  const parts: string[] = [];
  const dropped: string[] = [];
  for (const [rawKey, value] of Object.entries(params)) {
    const key = rawKey.toUpperCase();
    const verdict = formatMailParam(key, value, caps);
    if (verdict.kind === 'ok') parts.push(verdict.part);
    else dropped.push(`${safeKey(key)}: ${verdict.reason}`);
  }
  return { text: parts.map((p) => ' ' + p).join(''), dropped };
}

/** RCPT TO parameters: NOTIFY and ORCPT (DSN). */
export function formatRcptParams(params: EnvelopeParams, caps: NextHopCapabilities): FormattedParams {
  const parts: string[] = [];
  const dropped: string[] = [];
  for (const [rawKey, value] of Object.entries(params)) {
    const key = rawKey.toUpperCase();
    const verdict = formatRcptParam(key, value, caps);
    if (verdict.kind === 'ok') parts.push(verdict.part);
    else dropped.push(`${safeKey(key)}: ${verdict.reason}`);
  }
  return { text: parts.map((p) => ' ' + p).join(''), dropped };
}

/** The parameters a client may give: the extensions we announce (SIZE, 8BITMIME, SMTPUTF8, DSN) and AUTH (RFC 4954 §5). */
const ACCEPTED_PARAMS = {
  MAIL: new Set(['SIZE', 'BODY', 'SMTPUTF8', 'RET', 'ENVID', 'AUTH']),
  RCPT: new Set(['NOTIFY', 'ORCPT']),
};

/**
 * The first parameter of a client's MAIL FROM or RCPT TO that we neither announce nor relay, printable (at most 32
 * characters), or null. Such a parameter is refused (555 5.5.4, RFC 5321 §4.1.1.11), as Postfix refuses it: dropped
 * on the way, it would silently lose what the client asked for (REQUIRETLS, MT-PRIORITY, a DELIVERBY deadline).
 * AUTH= is accepted and not relayed: we vouch for no submitter (RFC 4954 §5 lets a relay send AUTH=<> or nothing).
 */
export function unsupportedParam(command: 'MAIL' | 'RCPT', params: EnvelopeParams | false | null | undefined): string | null {
  for (const rawKey of Object.keys(params || {})) {
    const key = rawKey.toUpperCase();
    if (!ACCEPTED_PARAMS[command].has(key)) return safeKey(key);
  }
  return null;
}

/**
 * True when the message may not go to this next hop: its client asked for SMTPUTF8 (RFC 6531), its header holds
 * non-ASCII (RFC 6532 fields), and the next hop did not announce SMTPUTF8. Passed on without the flag, UTF-8 header
 * fields reach a server that never agreed to them; Postfix's SMTP client returns such a message ("SMTPUTF8 is
 * required, but was not offered"), and delivers one whose envelope and header are ASCII without the flag, as we do.
 */
export function smtpUtf8Unmet(requested: boolean, caps: NextHopCapabilities, header: Buffer): boolean {
  if (!requested || caps.smtpUtf8) return false;
  for (let i = 0; i < header.length; i++) if (header[i]! >= 0x80) return true;
  return false;
}

type ParamVerdict = { kind: 'ok'; part: string } | { kind: 'drop'; reason: string };

function formatMailParam(key: string, value: string | true, caps: NextHopCapabilities): ParamVerdict {
  switch (key) {
    case 'SIZE':
      if (!caps.size) return notAnnounced('SIZE');
      return typeof value === 'string' && /^[0-9]{1,20}$/.test(value) ? ok(`SIZE=${value}`) : invalid();
    case 'BODY': {
      if (!caps.eightBitMime) return notAnnounced('8BITMIME');
      const body = typeof value === 'string' ? value.toUpperCase() : '';
      return body === '7BIT' || body === '8BITMIME' ? ok(`BODY=${body}`) : invalid();
    }
    case 'SMTPUTF8':
      if (!caps.smtpUtf8) return notAnnounced('SMTPUTF8');
      return value === true ? ok('SMTPUTF8') : invalid();
    case 'RET': {
      if (!caps.dsn) return notAnnounced('DSN');
      const ret = typeof value === 'string' ? value.toUpperCase() : '';
      return ret === 'FULL' || ret === 'HDRS' ? ok(`RET=${ret}`) : invalid();
    }
    case 'ENVID': {
      if (!caps.dsn) return notAnnounced('DSN');
      if (typeof value !== 'string' || value === '' || value.length > MAX_ENVID_XTEXT || CONTROL_RE.test(value)) return invalid();
      const xtext = encodeXtext(value);
      return xtext.length <= MAX_ENVID_XTEXT ? ok(`ENVID=${xtext}`) : invalid();
    }
    default:
      return { kind: 'drop', reason: 'not relayed' };
  }
}

function formatRcptParam(key: string, value: string | true, caps: NextHopCapabilities): ParamVerdict {
  switch (key) {
    case 'NOTIFY': {
      if (!caps.dsn) return notAnnounced('DSN');
      const notify = typeof value === 'string' ? value.toUpperCase() : '';
      return NOTIFY_RE.test(notify) ? ok(`NOTIFY=${notify}`) : invalid();
    }
    case 'ORCPT': {
      if (!caps.dsn) return notAnnounced('DSN');
      if (typeof value !== 'string' || value.length > MAX_ORCPT_XTEXT || CONTROL_RE.test(value)) return invalid();
      const semi = value.indexOf(';');
      const addrType = value.slice(0, semi);
      const address = value.slice(semi + 1);
      if (semi < 1 || !ADDR_TYPE_RE.test(addrType) || address === '') return invalid();
      const orcpt = `${addrType};${encodeXtext(address)}`;
      return orcpt.length <= MAX_ORCPT_XTEXT ? ok(`ORCPT=${orcpt}`) : invalid();
    }
    default:
      return { kind: 'drop', reason: 'not relayed' };
  }
}

/**
 * The client's parameters with SIZE grown by `addedBytes`: the next hop compares SIZE with its limit at MAIL FROM
 * (RFC 1870), and the message it gets carries our fields too. Declared as the client declared it, a message near the
 * next hop's limit would be refused only at end of data, after the whole transfer. An invalid SIZE is left as it is.
 */
export function growDeclaredSize(params: EnvelopeParams, addedBytes: number): EnvelopeParams {
  const key = Object.keys(params).find((k) => k.toUpperCase() === 'SIZE');
  if (key === undefined) return params;
  const value = params[key];
  if (typeof value !== 'string' || !/^[0-9]{1,15}$/.test(value)) return params;
  return { ...params, [key]: String(Number(value) + addedBytes) };
}

/** RFC 3461 §4: xtext — "!" to "~" except "+" and "=" as themselves, every other octet (UTF-8) as "+HH". */
export function encodeXtext(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    out += byte >= 0x21 && byte <= 0x7e && byte !== 0x2b && byte !== 0x3d ? String.fromCharCode(byte) : '+' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

function ok(part: string): ParamVerdict {
  return { kind: 'ok', part };
}
function invalid(): ParamVerdict {
  return { kind: 'drop', reason: 'invalid value' };
}
function notAnnounced(extension: string): ParamVerdict {
  return { kind: 'drop', reason: `next hop does not announce ${extension}` };
}
function safeKey(key: string): string {
  return key.replace(/[^A-Z0-9-]/g, '?').slice(0, 32);
}
