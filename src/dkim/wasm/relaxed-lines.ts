// Relaxed canonicalization of whole lines in WebAssembly (see relaxed-body.wat): a SIMD scan that
// passes clean 16-byte blocks through, so large bodies cost little more than the copy.
// Input: untrusted body bytes (complete CRLF lines); the module touches only its own memory.

import { WASM_BASE64 } from './relaxed-body-wasm.js';

const PAGE = 65536;

interface RelaxedModule {
  memory: WebAssembly.Memory;
  relaxed: (len: number, out: number) => number;
}

const instance = new WebAssembly.Instance(new WebAssembly.Module(Buffer.from(WASM_BASE64, 'base64')));
const wasm = instance.exports as unknown as RelaxedModule;

/**
 * Canonicalizes `src[start, end)`, which must begin at a line start and end with CRLF. Returns a
 * view of the module's memory: valid only until the next call (copy it to keep it).
 */
export function canonicalizeRelaxedLines(src: Buffer, start: number, end: number): Buffer {
  const len = end - start;
  // Input at 0 with its sentinel, output after it (16-byte aligned) with 16 bytes of room.
  const out = (len + 1 + 15) & ~15;
  const needed = out + len + 16;
  const memory = wasm.memory;
  if (memory.buffer.byteLength < needed) memory.grow(Math.ceil((needed - memory.buffer.byteLength) / PAGE));
  const bytes = new Uint8Array(memory.buffer);
  bytes.set(src.subarray(start, end), 0);
  bytes[len] = 0; // the sentinel the one-byte look-ahead reads
  const outLen = wasm.relaxed(len, out);
  return Buffer.from(memory.buffer, out, outLen);
}
