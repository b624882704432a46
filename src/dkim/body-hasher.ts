// Body hashes for a set of signatures: each canonicalization runs once, each (hash, l=) pair hashes once.
// Input: body chunks (untrusted bytes) in order; touches only node:crypto.

import { createHash, type Hash } from 'node:crypto';
import { createBodyCanonicalizer, type BodyCanonicalizer } from './canonicalize-body.js';
import type { Canonicalization } from './signature.js';

export interface BodyHashSpec {
  readonly canon: Canonicalization;
  readonly hash: 'sha256' | 'sha1';
  /** l=: hash only the first `limit` canonical bytes; null for the whole body. */
  readonly limit: number | null;
}

export interface BodyHashResult {
  readonly digest: Buffer;
  /** Length of the whole canonicalized body (for the l= policy check). */
  readonly canonicalLength: number;
}

interface DigestSink {
  readonly hashName: 'sha256' | 'sha1';
  readonly hash: Hash;
  readonly limit: number | null;
  hashed: number;
  result: BodyHashResult | null;
}

// Arrays, not Maps: a message needs one or two of each, and this runs once per message.
class CanonFanout {
  readonly sinks: DigestSink[] = [];
  total = 0;
  readonly canonicalizer: BodyCanonicalizer;
  constructor(readonly canon: Canonicalization) {
    this.canonicalizer = createBodyCanonicalizer(canon, (bytes) => this.update(bytes));
  }
  sinkFor(hash: 'sha256' | 'sha1', limit: number | null): DigestSink | undefined {
    return this.sinks.find((s) => s.hashName === hash && s.limit === limit);
  }
  private update(bytes: Buffer): void {
    this.total += bytes.length;
    for (const sink of this.sinks) {
      if (sink.limit === null) {
        sink.hash.update(bytes);
      } else if (sink.hashed < sink.limit) {
        const take = Math.min(bytes.length, sink.limit - sink.hashed);
        sink.hash.update(take === bytes.length ? bytes : bytes.subarray(0, take));
        sink.hashed += take;
      }
    }
  }
}

/** Streams a body once through every canonicalization the specs need. */
export class BodyHasher {
  private readonly fanouts: CanonFanout[] = [];
  private finished = false;

  constructor(specs: Iterable<BodyHashSpec>) {
    for (const spec of specs) {
      let fanout = this.fanouts.find((f) => f.canon === spec.canon);
      if (!fanout) {
        fanout = new CanonFanout(spec.canon);
        this.fanouts.push(fanout);
      }
      if (!fanout.sinkFor(spec.hash, spec.limit)) {
        fanout.sinks.push({ hashName: spec.hash, hash: createHash(spec.hash), limit: spec.limit, hashed: 0, result: null });
      }
    }
  }

  update(chunk: Buffer): void {
    for (const fanout of this.fanouts) fanout.canonicalizer.write(chunk);
  }

  /** Ends the body; call once. */
  finish(): void {
    for (const fanout of this.fanouts) {
      fanout.canonicalizer.end();
      for (const sink of fanout.sinks) sink.result = { digest: sink.hash.digest(), canonicalLength: fanout.total };
    }
    this.finished = true;
  }

  result(spec: BodyHashSpec): BodyHashResult {
    const r = this.finished ? this.fanouts.find((f) => f.canon === spec.canon)?.sinkFor(spec.hash, spec.limit)?.result : undefined;
    if (!r) throw new Error('BodyHasher.result called before finish() or for an unknown spec');
    return r;
  }
}
