// Benchmark (not a test): where the time of relaxed body canonicalization goes, per 64 KB of the
// 2 MB text and MIME bench bodies, next to SHA-256 of the same bytes (what the bench's limit pays).
// Trusts: node:crypto, the dist/ build. Touches: CPU only.
//
// Usage: npm run build && node bench/body-canon-floor.mjs [--rounds N]
//
// Parts, each timed alone (hrtime; the minimum over rounds, `ours` the median):
//   sha      SHA-256 update of one slice
//   copy     a slice copied into WebAssembly memory (TypedArray.set: WebAssembly cannot read a Buffer),
//            averaged over all slices of the body
//   scan     the SIMD scan (wasm `relaxed`) of the slice as it is (with its edits) and of its
//            canonical form (no edits: the clean-block loop alone)
//   ours     BodyHasher (relaxed, sha256) over the whole body minus SHA-256 of the whole body, per slice
//            (median over rounds of the difference, the two interleaved)
// The copy and the scan are the floor of this design: every byte of a text slice is copied once and
// scanned once, whatever else changes.

import crypto from 'node:crypto';
import { createMessage } from './messages.mjs';

const dist = new URL('../dist/dkim/', import.meta.url);
const { BodyHasher } = await import(new URL('body-hasher.js', dist).href);
const { WASM_SLICE_BYTES } = await import(new URL('canonicalize-body.js', dist).href);
const { WASM_BASE64 } = await import(new URL('wasm/body-scan-wasm.js', dist).href);

const roundsArg = process.argv.indexOf('--rounds');
const ROUNDS = roundsArg > 0 ? Number(process.argv[roundsArg + 1]) : 31;
if (!Number.isInteger(ROUNDS) || ROUNDS <= 0) throw new Error('--rounds takes a positive integer');

const wasm = new WebAssembly.Instance(new WebAssembly.Module(Buffer.from(WASM_BASE64, 'base64'))).exports;
wasm.memory.grow(8);
const mem = () => new Uint8Array(wasm.memory.buffer);
const OUT = 4 * WASM_SLICE_BYTES;

/** Microseconds per call of fn: the minimum over `rounds` rounds of `reps` calls, after `warm` calls. */
function time(fn, reps, rounds = ROUNDS, warm = reps * 3) {
  for (let i = 0; i < warm; i++) fn();
  const runs = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < reps; i++) fn();
    runs.push(Number(process.hrtime.bigint() - t0) / 1000 / reps);
  }
  return Math.min(...runs);
}

const fmt = (us, sha) => `${us.toFixed(2).padStart(6)} µs (${((100 * us) / sha).toFixed(1).padStart(4)} %)`;
const spec = { canon: 'relaxed', hash: 'sha256', limit: null };

process.stdout.write(`per ${WASM_SLICE_BYTES / 1024} KB slice, ${ROUNDS} rounds (% of SHA-256 of the slice)\n`);
for (const kind of ['text', 'mime']) {
  const msg = createMessage(kind, 2 * 1024 * 1024);
  const body = msg.subarray(msg.indexOf('\r\n\r\n') + 4);
  // A slice of whole lines from the middle of the body (for MIME: inside an attachment).
  const start = body.indexOf('\r\n', body.length >> 1) + 2;
  const end = body.lastIndexOf('\r\n', start + WASM_SLICE_BYTES - 2) + 2;
  const slice = body.subarray(start, end);
  const slices = body.length / slice.length;

  const sha = time(() => crypto.createHash('sha256').update(slice).digest(), 200);
  // Every slice of the body in turn, as the canonicalizer reads them (from L3, not from a warm cache).
  const copyAll = time(() => {
    // (to the source's page offset, as body-scan.ts does: memmove is slow at some distances)
    for (let s = 0; s + slice.length <= body.length; s += slice.length) mem().set(body.subarray(s, s + slice.length), (body.byteOffset + s) & 4095);
  }, 20);
  const copy = copyAll / Math.floor(slices);
  const scanOf = (bytes) => {
    mem().set(bytes, 0);
    mem()[bytes.length] = 0;
    return time(() => wasm.relaxed(0, bytes.length, OUT), 2000);
  };
  const scanEdits = scanOf(slice);
  mem().set(slice, 0);
  mem()[slice.length] = 0;
  const canonical = Buffer.from(mem().subarray(OUT, OUT + wasm.relaxed(0, slice.length, OUT)));
  const scanClean = scanOf(canonical);
  // Interleaved, so that a burst of load from other processes hits both: median of per-round differences.
  const hashWhole = () => crypto.createHash('sha256').update(body).digest();
  const hashOurs = () => {
    const h = new BodyHasher([spec]);
    h.update(body);
    h.finish();
  };
  time(hashWhole, 30, 1);
  time(hashOurs, 30, 1);
  const diffs = [];
  for (let r = 0; r < ROUNDS; r++) {
    const a = time(hashWhole, 5, 1, 0);
    const b = time(hashOurs, 5, 1, 0);
    diffs.push((b - a) / slices);
  }
  diffs.sort((x, y) => x - y);
  const oursOver = diffs[diffs.length >> 1];

  const parts =
    kind === 'text'
      ? `  copy                 ${fmt(copy, sha)}\n` +
        `  scan (with edits)    ${fmt(scanEdits, sha)}\n` +
        `  scan (canonical)     ${fmt(scanClean, sha)}\n` +
        `  copy + scan          ${fmt(copy + scanEdits, sha)}   (the floor of this design)\n`
      : '';
  process.stdout.write(
    `${kind}: ${slice.length - canonical.length} bytes removed by canonicalization in this slice\n` +
      `  sha                  ${fmt(sha, sha)}\n` +
      parts +
      `  ours over SHA-256    ${fmt(oursOver, sha)}   (whole body${kind === 'mime' ? '; lines without SP or HT at the edges of a slice skip copy and scan' : ''})\n`,
  );
}
