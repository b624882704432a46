// Checks and normalizes line endings of a message arriving in chunks, before anything reads it:
// bare LF becomes CRLF (or is refused), bare CR and NUL are refused (reliability.md invariant 3).
// Input: untrusted DATA bytes; uses the SIMD scan, so clean chunks cost a copy and a scan.

import { findFirstBadByte } from '../dkim/wasm/body-scan.js';

const CR = 0x0d;
const LF = 0x0a;

export type LineEndingPolicy = 'normalize' | 'reject';
export type GuardOutcome = { kind: 'ok'; chunk: Buffer } | { kind: 'refused'; reason: 'bare_cr' | 'bare_lf' | 'nul' };

/**
 * Why not turn a bare CR into CRLF as well: a bare CR inside a header would then become a new header
 * line at the next hop that the sender's MUA never showed (nodemailer does exactly that).
 */
export class LineEndingGuard {
  /** The previous chunk ended with a CR whose LF has not been seen yet (it was held back). */
  private heldCr = false;
  /** The last byte passed on (LF after normal lines). */
  private lastByte = LF;

  constructor(private readonly policy: LineEndingPolicy) {}

  /** Returns the bytes to pass on for this chunk (possibly fewer: a final CR is held back). */
  write(input: Buffer): GuardOutcome {
    let chunk = input;
    if (this.heldCr) {
      this.heldCr = false;
      if (chunk.length === 0) {
        this.heldCr = true;
        return { kind: 'ok', chunk };
      }
      if (chunk[0] !== LF) return { kind: 'refused', reason: 'bare_cr' };
      chunk = Buffer.concat([Buffer.from([CR]), chunk]);
    }
    let end = chunk.length;
    if (end > 0 && chunk[end - 1] === CR) {
      this.heldCr = true;
      end--;
    }
    const before = chunk === input ? this.lastByte : 0;
    // The byte after the range: the held-back CR if there is one (so "\r\r" at the end is caught).
    const after = end < chunk.length ? CR : LF;
    const bad = end === 0 ? -1 : findFirstBadByte(chunk, 0, end, before, after);
    let out: Buffer;
    if (bad === -1) {
      out = chunk.subarray(0, end);
    } else {
      const b = chunk[bad];
      if (b === 0) return { kind: 'refused', reason: 'nul' };
      if (b === CR) return { kind: 'refused', reason: 'bare_cr' };
      if (this.policy === 'reject') return { kind: 'refused', reason: 'bare_lf' };
      const fixed = normalizeBareLf(chunk.subarray(0, end), bad);
      if (fixed.kind === 'refused') return fixed;
      out = fixed.chunk;
    }
    if (out.length > 0) this.lastByte = out[out.length - 1]!;
    return { kind: 'ok', chunk: out };
  }

  /** Ends the message: a CR still held back had no LF after it. */
  end(): GuardOutcome {
    if (this.heldCr) return { kind: 'refused', reason: 'bare_cr' };
    return { kind: 'ok', chunk: Buffer.alloc(0) };
  }
}

/** Copies `chunk`, turning each bare LF from `from` on into CRLF; refuses NUL and bare CR found on the way. */
function normalizeBareLf(chunk: Buffer, from: number): GuardOutcome {
  const out = Buffer.allocUnsafe(chunk.length * 2);
  chunk.copy(out, 0, 0, from);
  let o = from;
  for (let i = from; i < chunk.length; i++) {
    const b = chunk[i]!;
    if (b === 0) return { kind: 'refused', reason: 'nul' };
    if (b === CR) {
      if (chunk[i + 1] !== LF) return { kind: 'refused', reason: 'bare_cr' };
      out[o++] = CR;
      out[o++] = LF;
      i++;
    } else if (b === LF) {
      out[o++] = CR;
      out[o++] = LF;
    } else {
      out[o++] = b;
    }
  }
  return { kind: 'ok', chunk: out.subarray(0, o) };
}
