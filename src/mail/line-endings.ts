// Line-ending normalization: bare LF and bare CR become CRLF, so that DKIM sees SMTP's canonical form.
// Input: message bytes from a file or stdin (untrusted); never converts the body to a string.

const CR = 0x0d;
const LF = 0x0a;

/** True when every CR is followed by LF and every LF is preceded by CR. */
export function hasOnlyCrlf(buf: Buffer): boolean {
  let i = buf.indexOf(LF);
  while (i !== -1) {
    if (i === 0 || buf[i - 1] !== CR) return false;
    i = buf.indexOf(LF, i + 1);
  }
  i = buf.indexOf(CR);
  while (i !== -1) {
    if (buf[i + 1] !== LF) return false;
    i = buf.indexOf(CR, i + 1);
  }
  return true;
}

/** Returns `buf` itself when its line endings are all CRLF, else a copy with bare CR and bare LF turned into CRLF. */
export function toCrlf(buf: Buffer): Buffer {
  if (hasOnlyCrlf(buf)) return buf;
  const out = Buffer.allocUnsafe(buf.length * 2);
  let o = 0;
  for (let i = 0; i < buf.length; i++) {
    const b = buf[i]!;
    if (b === CR) {
      out[o++] = CR;
      out[o++] = LF;
      if (buf[i + 1] === LF) i++;
    } else if (b === LF) {
      out[o++] = CR;
      out[o++] = LF;
    } else {
      out[o++] = b;
    }
  }
  return out.subarray(0, o);
}

/** The line ending a file uses: CRLF when its first line ends so, else LF. Output we add follows the input's style. */
export function detectLineEnding(buf: Buffer): '\r\n' | '\n' {
  const lf = buf.indexOf(LF);
  return lf > 0 && buf[lf - 1] === CR ? '\r\n' : lf === -1 ? '\r\n' : '\n';
}
