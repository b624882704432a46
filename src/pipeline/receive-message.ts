// Receives one message from the DATA stream: line endings checked, header framed, body hashed and
// spooled as it arrives, so DKIM work overlaps the network and no second pass is needed.
// Input: untrusted DATA bytes (already dot-unstuffed by smtp-server); every size is bounded.

import type { Readable } from 'node:stream';
import { BodyHasher, type BodyHashSpec } from '../dkim/body-hasher.js';
import { countHeaderFields, frameMessage, startsWithContinuation, type FramedMessage } from '../mail/header-fields.js';
import { LineEndingGuard, type LineEndingPolicy } from '../mail/line-ending-guard.js';
import { BodySpool } from './body-spool.js';
import { HeaderReservation } from './header-memory.js';
import { ChunkReader } from './chunk-reader.js';

export interface ReceiveOptions {
  maxHeaderBytes: number;
  /** More header fields than this: refused before they are framed (each framed field costs memory). */
  maxHeaderFields: number;
  maxMessageBytes: number;
  /** Bodies larger than this go to a temporary file. */
  spillThresholdBytes: number;
  spoolDir: string;
  lineEndings: LineEndingPolicy;
  /** Header bytes all messages may hold together (HEADER_MEMORY_BUDGET_BYTES unless a test sets it). */
  headerMemoryBudgetBytes?: number;
}

/** Called once, when the header section is complete: returns the body hashes DKIM will need. */
export type OnHeader = (framed: FramedMessage) => BodyHashSpec[];

export interface ReceivedMessage {
  /** The header section as received (line endings normalized), with the empty line that ends it if there was one. */
  header: Buffer;
  framed: FramedMessage;
  body: BodySpool;
  bodyHashes: BodyHasher;
  sizeBytes: number;
  /** Removes the spool file and gives the header's bytes back to the process-wide budget; call once, when done. */
  dispose(): Promise<void>;
}

export type ReceiveOutcome =
  | { kind: 'received'; message: ReceivedMessage }
  | { kind: 'refused'; reason: 'bare_cr' | 'bare_lf' | 'nul' | 'header_too_large' | 'too_many_header_fields' | 'message_too_large' | 'header_starts_folded' }
  | { kind: 'busy'; reason: 'header_memory' }
  | { kind: 'spool_failed'; reason: 'disk_full' | 'io_error'; detail: string }
  | { kind: 'aborted'; detail: string };

const HEADER_END = Buffer.from('\r\n\r\n');

export async function receiveMessage(stream: Readable, opts: ReceiveOptions, onHeader: OnHeader): Promise<ReceiveOutcome> {
  const guard = new LineEndingGuard(opts.lineEndings);
  const spool = new BodySpool(opts.spillThresholdBytes, opts.spoolDir);
  const headerMemory = new HeaderReservation(opts.headerMemoryBudgetBytes);
  const headerParts: Buffer[] = [];
  let headerBytes = 0;
  let headerTail = Buffer.alloc(0);
  let header: Buffer | null = null;
  let hasher: BodyHasher | null = null;
  let framed: FramedMessage | null = null;
  let total = 0;
  // Once refused, the rest of the stream is read and dropped so that the client gets our reply.
  let failure: ReceiveOutcome | null = null;

  /** Frames the complete header section and starts the body; the refusal instead when it starts folded or has too many fields. */
  const startBody = (headerBuf: Buffer): ReceiveOutcome | null => {
    if (startsWithContinuation(headerBuf)) return { kind: 'refused', reason: 'header_starts_folded' };
    if (countHeaderFields(headerBuf, opts.maxHeaderFields) > opts.maxHeaderFields) return { kind: 'refused', reason: 'too_many_header_fields' };
    header = headerBuf;
    // the parts are views of whole 64 KB chunks: dropped now, or each message keeps its first chunk to the end
    headerParts.length = 0;
    framed = frameMessage(headerBuf);
    hasher = new BodyHasher(onHeader(framed));
    return null;
  };

  const takeBody = async (bytes: Buffer): Promise<ReceiveOutcome | null> => {
    if (bytes.length === 0) return null;
    hasher!.update(bytes);
    const written = await spool.write(bytes);
    return written.kind === 'ok' ? null : { kind: 'spool_failed', reason: written.reason, detail: written.detail };
  };

  const take = async (chunk: Buffer): Promise<ReceiveOutcome | null> => {
    total += chunk.length;
    if (total > opts.maxMessageBytes) return { kind: 'refused', reason: 'message_too_large' };
    if (header !== null) return takeBody(chunk);
    if (chunk.length === 0) return null;
    // Look for the empty line, across the last bytes of the header so far (they may span chunks).
    const prevTail = headerTail;
    const atStart = headerBytes === 0 && chunk[0] === 0x0d && chunk[1] === 0x0a;
    let split = -1;
    if (atStart) {
      split = 2; // no header fields at all
    } else {
      const joined = prevTail.length > 0 ? Buffer.concat([prevTail, chunk.subarray(0, Math.min(chunk.length, 3))]) : null;
      const acrossAt = joined ? joined.indexOf(HEADER_END) : -1;
      if (acrossAt !== -1) split = acrossAt + 4 - prevTail.length;
      else {
        const at = chunk.indexOf(HEADER_END);
        if (at !== -1) split = at + 4;
      }
    }
    if (!headerMemory.take(split === -1 ? chunk.length : split)) return { kind: 'busy', reason: 'header_memory' };
    if (split === -1) {
      headerParts.push(chunk);
      headerTail = (headerTail.length + chunk.length > 3 ? Buffer.concat([headerTail, chunk.subarray(-3)]) : Buffer.concat([headerTail, chunk])).subarray(-3);
      headerBytes += chunk.length;
      return headerBytes > opts.maxHeaderBytes ? { kind: 'refused', reason: 'header_too_large' } : null;
    }
    headerParts.push(chunk.subarray(0, split));
    headerBytes += split;
    if (headerBytes > opts.maxHeaderBytes) return { kind: 'refused', reason: 'header_too_large' };
    return startBody(Buffer.concat(headerParts, headerBytes)) ?? takeBody(chunk.subarray(split));
  };

  const chunks = new ChunkReader(stream);
  try {
    for (let raw = await chunks.next(); raw !== null; raw = await chunks.next()) {
      if (failure) continue;
      const guarded = guard.write(raw);
      if (guarded.kind === 'refused') {
        failure = { kind: 'refused', reason: guarded.reason };
        continue;
      }
      failure = await take(guarded.chunk);
    }
  } catch (err) {
    failure ??= { kind: 'aborted', detail: (err as Error).message };
    stream.destroy();
  } finally {
    chunks.close();
  }
  if (!failure) {
    const last = guard.end();
    if (last.kind === 'refused') failure = { kind: 'refused', reason: last.reason };
  }
  const dispose = async () => {
    headerMemory.release();
    await spool.dispose();
  };
  if (failure) {
    await dispose();
    return failure;
  }
  // A message without an empty line is all header.
  if (header === null) {
    const refused = startBody(Buffer.concat(headerParts, headerBytes));
    if (refused) {
      await dispose();
      return refused;
    }
  }
  hasher!.finish();
  return { kind: 'received', message: { header: header!, framed: framed!, body: spool, bodyHashes: hasher!, sizeBytes: total, dispose } };
}
