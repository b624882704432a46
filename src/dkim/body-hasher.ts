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
  readonly hash: Hash;
  readonly limit: number | null;
  hashed: number;
}

class CanonFanout {
  readonly sinks = new Map<string, DigestSink>();
  total = 0;
  readonly canonicalizer: BodyCanonicalizer;
  constructor(canon: Canonicalization) {
    this.canonicalizer = createBodyCanonicalizer(canon, (bytes) => this.update(bytes));
  }
  private update(bytes: Buffer): void {
    this.total += bytes.length;
    for (const sink of this.sinks.values()) {
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

function specKey(spec: BodyHashSpec): string {
  return `${spec.hash}/${spec.limit ?? ''}`;
}

/** Streams a body once through every canonicalization the specs need. */
export class BodyHasher {
  private readonly fanouts = new Map<Canonicalization, CanonFanout>();
  private results: Map<string, BodyHashResult> | null = null;

  constructor(specs: Iterable<BodyHashSpec>) {
    for (const spec of specs) {
      let fanout = this.fanouts.get(spec.canon);
      if (!fanout) {
        fanout = new CanonFanout(spec.canon);
        this.fanouts.set(spec.canon, fanout);
      }
      const key = specKey(spec);
      if (!fanout.sinks.has(key)) fanout.sinks.set(key, { hash: createHash(spec.hash), limit: spec.limit, hashed: 0 });
    }
  }

  update(chunk: Buffer): void {
    for (const fanout of this.fanouts.values()) fanout.canonicalizer.write(chunk);
  }

  /** Ends the body; call once. */
  finish(): void {
    const results = new Map<string, BodyHashResult>();
    for (const [canon, fanout] of this.fanouts) {
      fanout.canonicalizer.end();
      for (const [key, sink] of fanout.sinks) {
        results.set(`${canon}/${key}`, { digest: sink.hash.digest(), canonicalLength: fanout.total });
      }
    }
    this.results = results;
  }

  result(spec: BodyHashSpec): BodyHashResult {
    const r = this.results?.get(`${spec.canon}/${specKey(spec)}`);
    if (!r) throw new Error('BodyHasher.result called before finish() or for an unknown spec');
    return r;
  }
}
