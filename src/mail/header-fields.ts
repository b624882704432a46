// Message framing: splits a CRLF message into header fields and the body offset, in linear time.
// Input: message bytes (untrusted); no field value is decoded, names only on demand.

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HT = 0x09;
const COLON = 0x3a;

/** One header field: bytes [start, end) of the message, including its folded lines and final CRLF. */
export interface HeaderField {
  /** The name as written, without trailing whitespace; '' when the line has no colon. */
  readonly name: string;
  /** Lower-cased name, for matching (field names are case-insensitive, RFC 5322 §1.2.2). */
  readonly lowerName: string;
  readonly start: number;
  /** Offset of the colon (or of the end of the first line when there is none). */
  readonly colon: number;
  /** End of the name without trailing whitespace; `start` when the line has no colon. */
  readonly nameEnd: number;
  readonly end: number;
  /** Whether the name equals `lowerAscii` (a lower-case ASCII name), ignoring ASCII case; never true for ''. */
  hasName(lowerAscii: string): boolean;
}

export interface FramedMessage {
  readonly buf: Buffer;
  readonly fields: HeaderField[];
  /** Offset of the first body byte (after the empty line); buf.length when there is no body. */
  readonly bodyStart: number;
  /** Bytes of the header section, without the separating empty line. */
  readonly headerBytes: number;
}

// Names are made into strings only when asked for: the DKIM hot paths compare bytes with hasName().
class FramedField implements HeaderField {
  private nameText: string | undefined;
  private lowerNameText: string | undefined;

  constructor(
    private readonly buf: Buffer,
    readonly start: number,
    readonly colon: number,
    readonly nameEnd: number,
    readonly end: number,
  ) {}

  get name(): string {
    return (this.nameText ??= this.buf.toString('latin1', this.start, this.nameEnd));
  }

  get lowerName(): string {
    return (this.lowerNameText ??= this.name.toLowerCase());
  }

  hasName(lowerAscii: string): boolean {
    const { buf, start } = this;
    const n = lowerAscii.length;
    if (n === 0 || this.nameEnd - start !== n) return false;
    for (let i = 0; i < n; i++) {
      const b = buf[start + i]!;
      if ((b >= 0x41 && b <= 0x5a ? b + 0x20 : b) !== lowerAscii.charCodeAt(i)) return false;
    }
    return true;
  }
}

/**
 * Whether the message's first line starts with a space or tab: a continuation with no field before it (not RFC 5322).
 * A field put on top of such a message would take that line as its own continuation, so the sender would write into
 * our Authentication-Results field or DKIM-Signature. Such a message is refused, never prepended to.
 */
export function startsWithContinuation(buf: Buffer): boolean {
  return buf.length > 0 && (buf[0] === SP || buf[0] === HT);
}

/** Splits the header section into fields. Lines are CRLF-terminated; a line starting with WSP continues the previous field. */
export function frameMessage(buf: Buffer): FramedMessage {
  const fields: HeaderField[] = [];
  const len = buf.length;
  let pos = 0;
  let bodyStart = len;
  let headerBytes = len;
  let start = -1; // the field being collected, -1 for none
  let colon = 0;
  let nameEnd = 0;
  while (pos < len) {
    if (buf[pos] === CR && buf[pos + 1] === LF) {
      headerBytes = pos;
      bodyStart = pos + 2;
      break;
    }
    // The line ends at the next CRLF. Searching for the LF byte is much cheaper than for a two-byte needle.
    let lf = buf.indexOf(LF, pos + 1);
    while (lf !== -1 && buf[lf - 1] !== CR) lf = buf.indexOf(LF, lf + 1);
    const eol = lf === -1 ? len : lf - 1;
    const next = lf === -1 ? len : lf + 1;
    const first = buf[pos];
    if (start === -1 || (first !== SP && first !== HT)) {
      if (start !== -1) fields.push(new FramedField(buf, start, colon, nameEnd, pos));
      start = pos;
      // The colon is searched within the line only, so colon-less lines stay linear.
      colon = pos;
      while (colon < eol && buf[colon] !== COLON) colon++;
      if (colon < eol) {
        nameEnd = colon;
        while (nameEnd > pos && (buf[nameEnd - 1] === SP || buf[nameEnd - 1] === HT)) nameEnd--;
      } else {
        nameEnd = pos;
      }
    }
    pos = next;
  }
  if (start !== -1) fields.push(new FramedField(buf, start, colon, nameEnd, pos));
  return { buf, fields, bodyStart, headerBytes };
}

/**
 * The number of header fields frameMessage would find, counting no further than `stopAbove + 1`:
 * a cheap check before framing (lines that do not start with WSP, up to the empty line).
 */
export function countHeaderFields(buf: Buffer, stopAbove: number): number {
  const len = buf.length;
  let count = 0;
  let pos = 0;
  while (pos < len && count <= stopAbove) {
    if (buf[pos] === CR && buf[pos + 1] === LF) break;
    if (pos === 0 || (buf[pos] !== SP && buf[pos] !== HT)) count++;
    let lf = buf.indexOf(LF, pos + 1);
    while (lf !== -1 && buf[lf - 1] !== CR) lf = buf.indexOf(LF, lf + 1);
    if (lf === -1) break;
    pos = lf + 1;
  }
  return count;
}

/** The field's value as a latin1 string (bytes preserved 1:1), without the trailing CRLF. */
export function fieldValue(buf: Buffer, field: HeaderField): string {
  let end = field.end;
  if (end >= 2 && buf[end - 2] === CR && buf[end - 1] === LF) end -= 2;
  return field.colon < end ? buf.toString("latin1", field.colon + 1, end) : '';
}
