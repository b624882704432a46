// SMTP transparency (RFC 5321 §4.5.2) for a message given in parts: a "." that starts a line gets another "." before it.
// Input: message bytes with CRLF line endings only (the receiver guarantees it); no other byte is rewritten, nothing is copied.

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const DOT_BUF = Buffer.from('.');
const CRLF_DOT = Buffer.from('\r\n.');
const CRLF = Buffer.from('\r\n');
const END_OF_DATA = Buffer.from('.\r\n');

export type DotStuffer = {
  /** The bytes to send for the next part: slices of `part` with "." buffers between them. */
  push(part: Buffer): Buffer[];
  /** The end of the message: CRLF when it did not end with one, then ".\r\n". */
  finish(): Buffer[];
};

/** Line starts are found with Buffer.indexOf("\r\n."), also across part boundaries; the message start is a line start. */
export function createDotStuffer(): DotStuffer {
  let atLineStart = true; // the previous byte ended a CRLF (or nothing was sent yet)
  let afterCr = false; // the previous byte was a CR

  function push(part: Buffer): Buffer[] {
    if (part.length === 0) return [];
    const out: Buffer[] = [];
    let from = 0; // start of the slice not yet emitted
    if (atLineStart && part[0] === DOT) {
      out.push(DOT_BUF);
    } else if (afterCr && part[0] === LF && part[1] === DOT) {
      // "\r" | "\n." across the boundary
      out.push(part.subarray(0, 1), DOT_BUF);
      from = 1;
    }
    let hit = part.indexOf(CRLF_DOT);
    while (hit !== -1) {
      out.push(part.subarray(from, hit + 2), DOT_BUF);
      from = hit + 2;
      hit = part.indexOf(CRLF_DOT, hit + 3);
    }
    // a "\r\n" split as "\r" | "\n" followed by "." in the next part is handled by afterCr
    if (from < part.length) out.push(from === 0 ? part : part.subarray(from));
    const last = part[part.length - 1];
    atLineStart = last === LF && (part.length > 1 ? part[part.length - 2] === CR : afterCr);
    afterCr = last === CR;
    return out;
  }

  function finish(): Buffer[] {
    return atLineStart ? [END_OF_DATA] : [CRLF, END_OF_DATA];
  }

  return { push, finish };
}
