// SMTP/LMTP replies parsed from the byte stream of a next hop: multi-line replies, enhanced status codes, bounded lines.
// Input: bytes from the network (untrusted); never throws — a malformed or oversized reply is a 'garbled' event.

/** One complete reply. `lines` holds each line's text without its code and enhanced code; `text` joins them with a space. */
export type SmtpReply = {
  code: number;
  /** RFC 2034/3463 "x.y.z" from the first line, when its class matches the code's; else null. */
  enhanced: string | null;
  text: string;
  lines: string[];
};

export type SmtpReplyEvent = { kind: 'reply'; reply: SmtpReply } | { kind: 'garbled'; detail: string };

export type SmtpReplyLimits = {
  /** Longest line, terminator excluded. */
  maxLineBytes: number;
  /** Most lines in one reply. */
  maxLines: number;
};

export const DEFAULT_REPLY_LIMITS: SmtpReplyLimits = { maxLineBytes: 4096, maxLines: 100 };

export type SmtpReplyParser = {
  /** Feeds bytes; returns the replies they complete, in order. After a 'garbled' event nothing more is parsed. */
  push(chunk: Buffer): SmtpReplyEvent[];
  /** True when no part of a reply is held (e.g. to detect bytes sent after a STARTTLS reply). */
  readonly idle: boolean;
  readonly garbled: boolean;
};

const LF = 0x0a;
const CR = 0x0d;
// RFC 5321 §4.2: Reply-code = %x32-35 %x30-35 %x30-39 (we accept any second digit: some servers use 5x6-5x9)
const CODE_RE = /^[2-5][0-9][0-9]$/;
// RFC 3463 §2: class.subject.detail; subject and detail 1-3 digits
const ENHANCED_RE = /^([245])\.([0-9]{1,3})\.([0-9]{1,3})(?: |$)/;
// Reply text is passed on and logged: no control characters survive
const CONTROL_RE = /[\x00-\x1f\x7f]/g;

/** A streaming reply parser. Lines end with LF (a CR before it is dropped); a line without a valid code garbles the stream. */
export function createSmtpReplyParser(limits: SmtpReplyLimits = DEFAULT_REPLY_LIMITS): SmtpReplyParser {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let garbled = false;
  // lines of the reply being read
  let code = -1;
  let texts: string[] = [];

  function fail(detail: string, out: SmtpReplyEvent[]): void {
    garbled = true;
    pending = [];
    pendingBytes = 0;
    out.push({ kind: 'garbled', detail });
  }

  function takeLine(line: Buffer, out: SmtpReplyEvent[]): void {
    const end = line.length > 0 && line[line.length - 1] === CR ? line.length - 1 : line.length;
    if (end > limits.maxLineBytes) return fail(`reply line longer than ${limits.maxLineBytes} bytes`, out);
    const head = line.toString('latin1', 0, Math.min(end, 4));
    const lineCode = head.slice(0, 3);
    if (!CODE_RE.test(lineCode)) return fail('reply line without a reply code', out);
    const sep = head.length > 3 ? head[3] : ' ';
    if (sep !== ' ' && sep !== '-') return fail('reply code followed by neither space nor hyphen', out);
    const numeric = Number(lineCode);
    if (code !== -1 && numeric !== code) return fail('multi-line reply with differing codes', out);
    if (texts.length >= limits.maxLines) return fail(`reply longer than ${limits.maxLines} lines`, out);
    code = numeric;
    texts.push(end > 4 ? line.toString('utf8', 4, end).replace(CONTROL_RE, ' ') : '');
    if (sep === ' ') {
      out.push({ kind: 'reply', reply: formatReply(code, texts) });
      code = -1;
      texts = [];
    }
  }

  function push(chunk: Buffer): SmtpReplyEvent[] {
    const out: SmtpReplyEvent[] = [];
    if (garbled || chunk.length === 0) return out;
    let start = 0;
    let lf = chunk.indexOf(LF);
    while (lf !== -1) {
      let line = chunk.subarray(start, lf);
      if (pendingBytes > 0) {
        pending.push(line);
        line = Buffer.concat(pending, pendingBytes + line.length);
        pending = [];
        pendingBytes = 0;
      }
      takeLine(line, out);
      if (garbled) return out;
      start = lf + 1;
      lf = chunk.indexOf(LF, start);
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      pending.push(rest);
      pendingBytes += rest.length;
      // +1: the CR of a CRLF that has not arrived whole
      if (pendingBytes > limits.maxLineBytes + 1) fail(`reply line longer than ${limits.maxLineBytes} bytes`, out);
    }
    return out;
  }

  return {
    push,
    get idle() {
      return pendingBytes === 0 && texts.length === 0;
    },
    get garbled() {
      return garbled;
    },
  };
}

function formatReply(code: number, rawTexts: string[]): SmtpReply {
  const first = ENHANCED_RE.exec(rawTexts[0] ?? '');
  const enhanced = first !== null && first[1] === String(code)[0] ? `${first[1]}.${first[2]}.${first[3]}` : null;
  // strip the enhanced code from every line that repeats it (RFC 2034 §4: each line carries it)
  const lines = enhanced === null ? rawTexts : rawTexts.map((t) => stripEnhanced(t));
  return { code, enhanced, text: lines.join(' ').trim(), lines };
}

function stripEnhanced(text: string): string {
  const m = ENHANCED_RE.exec(text);
  return m === null ? text : text.slice(m[0].length);
}
