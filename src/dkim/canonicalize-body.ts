// Body canonicalization (RFC 6376 §3.4.3, §3.4.4) as streaming transforms on Buffers.
// Input: untrusted body bytes in chunks of any size; output goes to `emit`; linear time, bounded memory.
//
// Speed: relaxed runs of whole lines go, in slices of 64 KB, either straight to the hash when the slice
// holds no SP or HT (base64 attachments), or through a SIMD WebAssembly scan (wasm/body-scan.ts) that
// copies clean 16-byte blocks and is one hash update per slice (only the lines from the slice's first
// SP to its last, when the lines around them hold no WSP: a MIME part header amid base64); short runs
// use Buffer.indexOf line by line and pass unchanged lines on as slices of the input. Partial lines at
// chunk edges take the byte-at-a-time path. Never a string, never a second pass.

import { canonicalizeRelaxedLines } from './wasm/body-scan.js';

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HT = 0x09;
const DOUBLE_SP = Buffer.from('  ');
const CRLF_BLOCK = Buffer.from('\r\n'.repeat(4096));
const CRLF = CRLF_BLOCK.subarray(0, 2);
/** Runs of whole lines at least this long go to WebAssembly; below it the copy and call cost more than they save. */
export const WASM_MIN_BYTES = 256;
/** Runs of whole lines are canonicalized and hashed in slices of about this size (cut after a CRLF). */
export const WASM_SLICE_BYTES = 64 * 1024;

/**
 * WSP-free lines at the edges of a slice with WSP pass on unchanged when there are at least this many
 * bytes of them: copying and scanning them costs more than searching them for HT.
 */
const CLEAN_RUN_MIN_BYTES = 4096;

/** Receives canonical bytes. The Buffer is only valid during the call (scratch space is reused): copy to keep. */
export type Emit = (bytes: Buffer) => void;

/**
 * Output space of the byte-at-a-time path, shared by every canonicalizer: a slow() call runs to the
 * end without yielding and emits synchronously, so no two calls overlap; one buffer per message
 * would cost an allocation per message.
 */
let scratch = Buffer.allocUnsafe(8192);

export interface BodyCanonicalizer {
  write(chunk: Buffer): void;
  end(): void;
}

function emitCrlfs(emit: Emit, count: number): void {
  while (count > 0) {
    const n = Math.min(count, CRLF_BLOCK.length / 2);
    emit(CRLF_BLOCK.subarray(0, n * 2));
    count -= n;
  }
}

/**
 * The end of the last CRLF ending at or before `at` whose LF lies after `floor`, or `floor` when there is none.
 * Found by its LF: a one-byte search costs a third of a two-byte one.
 */
function lastCrlfEnd(chunk: Buffer, at: number, floor: number): number {
  // (A negative start would make lastIndexOf count from the end.)
  if (at <= floor) return floor;
  let lf = chunk.lastIndexOf(LF, at - 1);
  while (lf > floor && chunk[lf - 1] !== CR) lf = chunk.lastIndexOf(LF, lf - 1);
  return lf > floor ? lf + 1 : floor;
}

/** relaxed: WSP runs -> one SP, no WSP at line ends, no empty lines at the end; a CRLF ends a non-empty last line. */
export class RelaxedBodyCanonicalizer implements BodyCanonicalizer {
  /** Empty lines seen and held back: they are emitted only if a non-empty line follows. */
  private pendingCrlfs = 0;
  /** The current line has emitted non-WSP content. */
  private lineHasContent = false;
  /** WSP seen in the current line and not yet emitted. */
  private pendingSpace = false;
  /** The previous byte was a CR (possibly the last byte of the previous chunk). */
  private pendingCr = false;

  constructor(private readonly emit: Emit) {}

  write(chunk: Buffer): void {
    const len = chunk.length;
    let pos = 0;
    if (this.pendingCr || this.lineHasContent || this.pendingSpace) {
      // Finish the line begun in an earlier chunk.
      const crlf = chunk.indexOf(CRLF);
      const stop = this.pendingCr && chunk[0] === LF ? 1 : crlf === -1 ? len : crlf + 2;
      this.slow(chunk, 0, stop);
      pos = stop;
    }
    const linesEnd = chunk.lastIndexOf(CRLF) + 2;
    if (linesEnd - pos >= WASM_MIN_BYTES) {
      this.wholeLines(chunk, pos, linesEnd);
      pos = linesEnd;
    } else {
      pos = this.fast(chunk, pos);
    }
    if (pos < len) this.slow(chunk, pos, len);
  }

  /**
   * [start, end) holds whole lines and the state is at a line start: canonicalize them in slices
   * of about WASM_SLICE_BYTES (in WebAssembly unless a slice has no WSP at all), so that the bytes
   * are still in the CPU cache when the hash reads them.
   */
  private wholeLines(chunk: Buffer, start: number, end: number): void {
    // The next SP and HT at or after the slice start (-1: none left), each found once for every slice it lies beyond.
    let nextSp = -2;
    let nextTab = -2;
    let s = start;
    while (s < end) {
      let e = end;
      if (end - s > WASM_SLICE_BYTES) {
        // The last CRLF ending at or before s + WASM_SLICE_BYTES; otherwise the first CRLF after that (a line
        // longer than a slice).
        const cut = lastCrlfEnd(chunk, s + WASM_SLICE_BYTES, s);
        e = cut > s ? cut : chunk.indexOf(CRLF, s + WASM_SLICE_BYTES) + 2;
      }
      if (nextSp !== -1 && nextSp < s) nextSp = chunk.indexOf(SP, s);
      // A slice with an SP goes to WebAssembly (at least its lines from the first SP to the last): only a slice
      // without SP needs the search for HT (which runs to the chunk's end when there is none: 21 us for 2 MB of text).
      let hasWsp = nextSp !== -1 && nextSp < e;
      if (!hasWsp) {
        if (nextTab !== -1 && nextTab < s) nextTab = chunk.indexOf(HT, s);
        hasWsp = nextTab !== -1 && nextTab < e;
      }
      if (!hasWsp) {
        // Lines without WSP are their own canonical form (base64 attachments): pass the input on, no copy.
        this.emitLines(chunk.subarray(s, e));
      } else if (nextSp === -1 || nextSp >= e || e - s <= CLEAN_RUN_MIN_BYTES) {
        // (A slice this short cannot have a clean run worth trimming: no searches for small bodies.)
        this.emitLines(canonicalizeRelaxedLines(chunk, s, e));
      } else {
        this.sliceAroundSpaces(chunk, s, e, nextSp);
      }
      s = e;
    }
  }

  /**
   * A slice [s, e) of whole lines whose first SP is at `firstSp`: only the lines from the first SP to
   * the last go to WebAssembly when the lines before or after them hold no WSP and are long enough
   * to be worth the check (a text part or a MIME part header beside base64 lines).
   */
  private sliceAroundSpaces(chunk: Buffer, s: number, e: number, firstSp: number): void {
    let from = s;
    let to = e;
    const lineStart = lastCrlfEnd(chunk, firstSp, s);
    if (lineStart - s >= CLEAN_RUN_MIN_BYTES && chunk.subarray(s, lineStart).indexOf(HT) === -1) from = lineStart;
    const lastSp = chunk.lastIndexOf(SP, e - 1);
    const lineEnd = chunk.indexOf(CRLF, lastSp) + 2;
    if (e - lineEnd >= CLEAN_RUN_MIN_BYTES && chunk.subarray(lineEnd, e).indexOf(HT) === -1) to = lineEnd;
    if (from > s) this.emitLines(chunk.subarray(s, from));
    this.emitLines(canonicalizeRelaxedLines(chunk, from, to));
    if (to < e) this.emitLines(chunk.subarray(to, e));
  }

  /** Emits canonical whole lines, holding back the empty lines at their end (emitted only if a non-empty line follows). */
  private emitLines(out: Buffer): void {
    let e = out.length;
    let trailing = 0;
    while (e >= 2 && out[e - 2] === CR && out[e - 1] === LF && (e === 2 || (out[e - 4] === CR && out[e - 3] === LF))) {
      e -= 2;
      trailing++;
    }
    if (e === 0) {
      this.pendingCrlfs += trailing;
      return;
    }
    emitCrlfs(this.emit, this.pendingCrlfs);
    this.emit(e === out.length ? out : out.subarray(0, e));
    this.pendingCrlfs = trailing;
  }

  end(): void {
    if (this.pendingCr) {
      this.pendingCr = false;
      this.content(CR);
    }
    if (this.lineHasContent) this.emit(CRLF);
    this.lineHasContent = false;
    this.pendingSpace = false;
    this.pendingCrlfs = 0;
  }

  /** Whole lines from `pos` while the state is at a line start; returns where the partial tail begins. */
  private fast(chunk: Buffer, pos: number): number {
    const emit = this.emit;
    const len = chunk.length;
    let runStart = pos;
    let runEnd = pos;
    let external = this.pendingCrlfs; // held CRLFs that are not bytes of this run
    let literal = 0; // held CRLFs that are the bytes right after runEnd
    let nextTab = -2;
    let nextDouble = -2;
    while (pos < len) {
      let cr = chunk.indexOf(CR, pos);
      if (cr === -1 || cr + 1 >= len) break;
      let bareCr = false;
      if (chunk[cr + 1] !== LF) {
        // A bare CR is content; find the real line end and take the slow path for this line.
        cr = chunk.indexOf(CRLF, cr);
        if (cr === -1) break;
        bareCr = true;
      }
      const next = cr + 2;
      if (cr === pos) {
        literal++;
        pos = next;
        continue;
      }
      let e = cr;
      while (e > pos && (chunk[e - 1] === SP || chunk[e - 1] === HT)) e--;
      if (e === pos) {
        // A line of only whitespace is an empty line, but its bytes differ: end the run here.
        if (runEnd > runStart) emit(chunk.subarray(runStart, runEnd));
        external += literal + 1;
        literal = 0;
        runStart = runEnd = pos = next;
        continue;
      }
      if (nextTab !== -1 && nextTab < pos) nextTab = chunk.indexOf(HT, pos);
      if (nextDouble !== -1 && nextDouble < pos) nextDouble = chunk.indexOf(DOUBLE_SP, pos);
      const changed = bareCr || e < cr || (nextTab !== -1 && nextTab < e) || (nextDouble !== -1 && nextDouble < e);
      if (changed) {
        if (runEnd > runStart) emit(chunk.subarray(runStart, runEnd));
        emitCrlfs(emit, external + literal);
        external = literal = 0;
        this.pendingCrlfs = 0;
        this.slow(chunk, pos, next);
        runStart = runEnd = pos = next;
        continue;
      }
      if (external > 0) {
        if (runEnd > runStart) emit(chunk.subarray(runStart, runEnd));
        emitCrlfs(emit, external);
        external = 0;
        runStart = runEnd;
      }
      literal = 0;
      runEnd = pos = next;
    }
    if (runEnd > runStart) emit(chunk.subarray(runStart, runEnd));
    this.pendingCrlfs = external + literal;
    return pos;
  }

  /** Byte-at-a-time canonicalization of [from, to), exact for any input and state. */
  private slow(chunk: Buffer, from: number, to: number): void {
    if (scratch.length < to - from + 2) scratch = Buffer.allocUnsafe(to - from + 2);
    this.out = scratch;
    this.o = 0;
    for (let i = from; i < to; i++) {
      const b = chunk[i]!;
      if (this.pendingCr) {
        this.pendingCr = false;
        if (b === LF) {
          if (this.lineHasContent) {
            this.out[this.o++] = CR;
            this.out[this.o++] = LF;
          } else {
            this.pendingCrlfs++;
          }
          this.lineHasContent = false;
          this.pendingSpace = false;
          continue;
        }
        this.content(CR);
      }
      if (b === CR) this.pendingCr = true;
      else if (b === SP || b === HT) this.pendingSpace = true;
      else this.content(b);
    }
    this.flushOut();
    this.out = null;
    // Do not keep a huge scratch buffer alive after one long line.
    if (scratch.length > 1 << 20) scratch = Buffer.allocUnsafe(8192);
  }

  private out: Buffer | null = null;
  private o = 0;

  private flushOut(): void {
    if (this.out && this.o > 0) this.emit(this.out.subarray(0, this.o));
    this.o = 0;
  }

  private content(b: number): void {
    if (!this.lineHasContent) {
      if (this.pendingCrlfs > 0) {
        this.flushOut();
        emitCrlfs(this.emit, this.pendingCrlfs);
        this.pendingCrlfs = 0;
      }
      this.lineHasContent = true;
    }
    if (this.out === null) {
      // Called from end(): emit directly.
      if (this.pendingSpace) this.emit(Buffer.from([SP]));
      this.pendingSpace = false;
      this.emit(Buffer.from([b]));
      return;
    }
    if (this.pendingSpace) {
      this.out[this.o++] = SP;
      this.pendingSpace = false;
    }
    this.out[this.o++] = b;
  }
}

/** simple: the body unchanged except that empty lines at the end are dropped and a CRLF ends it (an empty body is one CRLF). */
export class SimpleBodyCanonicalizer implements BodyCanonicalizer {
  private pendingCrlfs = 0;
  private lineHasContent = false;
  private pendingCr = false;
  private emittedAny = false;

  constructor(private readonly emit: Emit) {}

  private out(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.emittedAny = true;
    this.emit(bytes);
  }

  private flushPending(): void {
    if (this.pendingCrlfs > 0) {
      this.emittedAny = true;
      emitCrlfs(this.emit, this.pendingCrlfs);
      this.pendingCrlfs = 0;
    }
  }

  write(chunk: Buffer): void {
    let s = 0;
    const len = chunk.length;
    if (len === 0) return;
    if (this.pendingCr) {
      this.pendingCr = false;
      if (chunk[0] === LF) {
        // The CRLF split across chunks ends a line.
        if (this.lineHasContent) {
          this.out(CRLF);
          this.lineHasContent = false;
        } else {
          this.pendingCrlfs++;
        }
        s = 1;
      } else {
        this.flushPending();
        this.out(Buffer.from([CR]));
        this.lineHasContent = true;
      }
    }
    if (s >= len) return;
    let end = len;
    if (chunk[len - 1] === CR) {
      end--;
      this.pendingCr = true;
    }
    let m = 0;
    while (end - 2 * m - 2 >= s && chunk[end - 2 * m - 2] === CR && chunk[end - 2 * m - 1] === LF) m++;
    const contentEnd = end - 2 * m;
    if (contentEnd > s) {
      this.flushPending();
      if (m > 0) {
        this.out(chunk.subarray(s, contentEnd + 2));
        this.pendingCrlfs = m - 1;
        this.lineHasContent = false;
      } else {
        this.out(chunk.subarray(s, contentEnd));
        this.lineHasContent = true;
      }
    } else if (m > 0) {
      if (this.lineHasContent) {
        this.out(CRLF);
        this.lineHasContent = false;
        this.pendingCrlfs += m - 1;
      } else {
        this.pendingCrlfs += m;
      }
    }
  }

  end(): void {
    if (this.pendingCr) {
      this.pendingCr = false;
      this.flushPending();
      this.out(Buffer.from([CR]));
      this.lineHasContent = true;
    }
    if (this.lineHasContent || !this.emittedAny) this.emit(CRLF);
    this.lineHasContent = false;
    this.pendingCrlfs = 0;
  }
}

export function createBodyCanonicalizer(canon: 'simple' | 'relaxed', emit: Emit): BodyCanonicalizer {
  return canon === 'relaxed' ? new RelaxedBodyCanonicalizer(emit) : new SimpleBodyCanonicalizer(emit);
}
