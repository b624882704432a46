// SIMD scans of messages in WebAssembly (see body-scan.wat): relaxed canonicalization of whole body
// lines and of header fields, and the search for bytes the SMTP receiver must refuse or normalize.
// Input: untrusted message bytes, copied into the module's own memory; nothing else is touched.

import { WASM_BASE64 } from './body-scan-wasm.js';

const PAGE = 65536;

interface BodyScanModule {
  memory: WebAssembly.Memory;
  relaxed: (at: number, len: number, out: number) => number;
  first_bad_byte: (at: number, len: number) => number;
  header_relaxed: (count: number, desc: number, out: number) => number;
}

const instance = new WebAssembly.Instance(new WebAssembly.Module(Buffer.from(WASM_BASE64, 'base64')));
const wasm = instance.exports as unknown as BodyScanModule;

/**
 * Views of the module's memory, made again only when it grows (which detaches the old ones; nothing
 * else grows it): a view per call cost about 0.1 us, a body of 2 MB makes 32 calls.
 */
let memoryBytes = Buffer.from(wasm.memory.buffer);

function memoryOf(bytesNeeded: number): Buffer {
  if (memoryBytes.length < bytesNeeded) {
    wasm.memory.grow(Math.ceil((bytesNeeded - memoryBytes.length) / PAGE));
    memoryBytes = Buffer.from(wasm.memory.buffer);
  }
  return memoryBytes;
}

/**
 * Where in the module's memory to copy `src` from `start`, at or after `minimum`: at the same offset
 * within a 4 KB page as the source has within its ArrayBuffer. glibc's memmove (rep movsb) on AMD
 * Zen runs about 15 times slower when the destination lies 1–15 bytes past the source modulo 4096
 * (measured here: 64 KB in 19 us instead of 1.3, from 4 KB up), and the source's page offset is
 * otherwise a matter of luck: fixed per message, so some messages paid it on every slice. Both
 * allocations start 16-byte aligned, so the copy's distance is now a multiple of 16.
 */
function copyOffset(src: Buffer, start: number, minimum: number): number {
  const at = (src.byteOffset + start) & 4095;
  return at >= minimum ? at : at + 4096;
}

/**
 * Canonicalizes `src[start, end)`, which must begin at a line start and end with CRLF. Returns a
 * view of the module's memory: valid only until the next call (copy it to keep it).
 */
export function canonicalizeRelaxedLines(src: Buffer, start: number, end: number): Buffer {
  const len = end - start;
  // Input with its sentinel, output after it (16-byte aligned) with 16 bytes of room.
  const at = copyOffset(src, start, 0);
  const out = (at + len + 1 + 15) & ~15;
  const bytes = memoryOf(out + len + 16);
  bytes.set(src.subarray(start, end), at);
  bytes[at + len] = 0; // the sentinel the one-byte look-ahead reads
  const outLen = wasm.relaxed(at, len, out);
  return bytes.subarray(out, out + outLen);
}

/**
 * The offset (from `start`) of the first NUL, bare CR or bare LF in `src[start, end)`, or -1.
 * `before` is the byte preceding the range and `after` the byte following it (13 and 10 make a
 * CR or LF at the edges count as part of a CRLF split across chunks).
 */
export function findFirstBadByte(src: Buffer, start: number, end: number, before: number, after: number): number {
  const len = end - start;
  const at = copyOffset(src, start, 1);
  const bytes = memoryOf(at + len + 17);
  bytes[at - 1] = before;
  bytes.set(src.subarray(start, end), at);
  bytes[at + len] = after;
  const found = wasm.first_bad_byte(at, len);
  return found === len ? -1 : found;
}

/** A header field for relaxedFieldsInto: bytes [start, end) of `buf`, without [skipFrom, skipTo) (skipFrom -1: none). */
export interface RelaxedFieldRange {
  buf: Buffer;
  start: number;
  end: number;
  skipFrom: number;
  skipTo: number;
}

const align16 = (n: number): number => (n + 15) & ~15;

/**
 * Relaxed canonicalization (RFC 6376 §3.4.2, the rules of canonicalize-header.ts relaxedInto) of the
 * fields of `buf` in [lo, hi) given by `fields` (offsets into buf), then of `last` (its own buffer,
 * e.g. the signature field with b= left out), each CRLF-terminated, into a new Buffer.
 */
export function relaxedFields(
  buf: Buffer,
  lo: number,
  hi: number,
  fields: readonly { start: number; end: number }[],
  last: RelaxedFieldRange,
): Buffer {
  const regionLen = hi - lo;
  const regionAt = copyOffset(buf, lo, 0);
  const lastAt = align16(regionAt + regionLen + 1);
  const lastLen = last.end - last.start;
  const desc = align16(lastAt + lastLen + 1);
  const count = fields.length + 1;
  const out = desc + count * 16;
  // Canonical fields are at most 2 bytes longer than the fields; 16 bytes of room for a block store.
  const bytes = memoryOf(out + regionLen + lastLen + 2 * count + 16);
  bytes.set(buf.subarray(lo, hi), regionAt);
  bytes.set(last.buf.subarray(last.start, last.end), lastAt);
  const d = new Int32Array(wasm.memory.buffer, desc, count * 4);
  let k = 0;
  for (const f of fields) {
    d[k++] = regionAt + f.start - lo;
    d[k++] = regionAt + f.end - lo;
    d[k++] = -1;
    d[k++] = -1;
  }
  d[k++] = lastAt;
  d[k++] = lastAt + lastLen;
  d[k++] = last.skipFrom < 0 ? -1 : lastAt + last.skipFrom - last.start;
  d[k++] = last.skipFrom < 0 ? -1 : lastAt + last.skipTo - last.start;
  const end = wasm.header_relaxed(count, desc, out);
  return Buffer.from(bytes.subarray(out, end));
}
