// Message framing: splits a CRLF message into header fields and the body offset, in linear time.
// Input: message bytes (untrusted); no field value is decoded beyond its name.

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HT = 0x09;
const COLON = 0x3a;
const CRLF = Buffer.from('\r\n');

/** One header field: bytes [start, end) of the message, including its folded lines and final CRLF. */
export interface HeaderField {
  /** The name as written, without trailing whitespace; '' when the line has no colon. */
  readonly name: string;
  /** Lower-cased name, for matching (field names are case-insensitive, RFC 5322 §1.2.2). */
  readonly lowerName: string;
  readonly start: number;
  /** Offset of the colon (or of the end of the first line when there is none). */
  readonly colon: number;
  readonly end: number;
}

export interface FramedMessage {
  readonly buf: Buffer;
  readonly fields: HeaderField[];
  /** Offset of the first body byte (after the empty line); buf.length when there is no body. */
  readonly bodyStart: number;
  /** Bytes of the header section, without the separating empty line. */
  readonly headerBytes: number;
}

/** Splits the header section into fields. Lines are CRLF-terminated; a line starting with WSP continues the previous field. */
export function frameMessage(buf: Buffer): FramedMessage {
  const fields: HeaderField[] = [];
  const len = buf.length;
  let pos = 0;
  let bodyStart = len;
  let headerBytes = len;
  let cur: { start: number; colon: number; name: string } | null = null;
  // The next colon at or after `pos`, found once and reused: searching afresh on every colon-less
  // line would rescan the rest of the message each time (quadratic).
  let nextColon = -2;
  let curEnd = 0;
  const close = () => {
    if (cur) fields.push({ name: cur.name, lowerName: cur.name.toLowerCase(), start: cur.start, colon: cur.colon, end: curEnd });
    cur = null;
  };
  while (pos < len) {
    if (buf[pos] === CR && buf[pos + 1] === LF) {
      headerBytes = pos;
      bodyStart = pos + 2;
      break;
    }
    let eol = buf.indexOf(CRLF, pos);
    const next = eol === -1 ? len : eol + 2;
    if (eol === -1) eol = len;
    const first = buf[pos];
    if ((first === SP || first === HT) && cur) {
      curEnd = next;
    } else {
      close();
      if (nextColon !== -1 && nextColon < pos) nextColon = buf.indexOf(COLON, pos);
      const colonAt = nextColon;
      const hasColon = colonAt !== -1 && colonAt < eol;
      const colon = hasColon ? colonAt : eol;
      let nameEnd = colon;
      while (nameEnd > pos && (buf[nameEnd - 1] === SP || buf[nameEnd - 1] === HT)) nameEnd--;
      cur = { start: pos, colon, name: hasColon ? buf.toString("latin1", pos, nameEnd) : '' };
      curEnd = next;
    }
    pos = next;
  }
  close();
  return { buf, fields, bodyStart, headerBytes };
}

/** The field's value as a latin1 string (bytes preserved 1:1), without the trailing CRLF. */
export function fieldValue(buf: Buffer, field: HeaderField): string {
  let end = field.end;
  if (end >= 2 && buf[end - 2] === CR && buf[end - 1] === LF) end -= 2;
  return field.colon < end ? buf.toString("latin1", field.colon + 1, end) : '';
}
