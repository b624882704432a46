// SIMD scans of message bodies in WebAssembly (see body-scan.wat): relaxed canonicalization of
// whole lines, and the search for bytes the SMTP receiver must refuse or normalize.
// Input: untrusted body bytes, copied into the module's own memory; nothing else is touched.

import { WASM_BASE64 } from './body-scan-wasm.js';

const PAGE = 65536;

interface BodyScanModule {
  memory: WebAssembly.Memory;
  relaxed: (len: number, out: number) => number;
  first_bad_byte: (len: number) => number;
}

const instance = new WebAssembly.Instance(new WebAssembly.Module(Buffer.from(WASM_BASE64, 'base64')));
const wasm = instance.exports as unknown as BodyScanModule;

function memoryOf(bytesNeeded: number): Uint8Array {
  const memory = wasm.memory;
  if (memory.buffer.byteLength < bytesNeeded) memory.grow(Math.ceil((bytesNeeded - memory.buffer.byteLength) / PAGE));
  return new Uint8Array(memory.buffer);
}

/**
 * Canonicalizes `src[start, end)`, which must begin at a line start and end with CRLF. Returns a
 * view of the module's memory: valid only until the next call (copy it to keep it).
 */
export function canonicalizeRelaxedLines(src: Buffer, start: number, end: number): Buffer {
  const len = end - start;
  // Input at 0 with its sentinel, output after it (16-byte aligned) with 16 bytes of room.
  const out = (len + 1 + 15) & ~15;
  const bytes = memoryOf(out + len + 16);
  bytes.set(src.subarray(start, end), 0);
  bytes[len] = 0; // the sentinel the one-byte look-ahead reads
  const outLen = wasm.relaxed(len, out);
  return Buffer.from(wasm.memory.buffer, out, outLen);
}

/**
 * The offset (from `start`) of the first NUL, bare CR or bare LF in `src[start, end)`, or -1.
 * `before` is the byte preceding the range and `after` the byte following it (13 and 10 make a
 * CR or LF at the edges count as part of a CRLF split across chunks).
 */
export function findFirstBadByte(src: Buffer, start: number, end: number, before: number, after: number): number {
  const len = end - start;
  const bytes = memoryOf(16 + len + 17);
  bytes[15] = before;
  bytes.set(src.subarray(start, end), 16);
  bytes[16 + len] = after;
  const at = wasm.first_bad_byte(len);
  return at === len ? -1 : at;
}
