// A bounded least-recently-used cache whose entries expire after their own time to live.
// Input: keys and values from the caller; time only from the injected clock, touches nothing else.

export type LruCacheOptions = {
  /** Most entries kept; the least recently used goes first. 0 keeps nothing. */
  capacity: number;
  /** Milliseconds since any fixed point; read on every get and set. */
  nowMs: () => number;
};

type Slot<V> = { value: V; expiresAtMs: number };

/** A Map keeps insertion order, so re-inserting on use makes its first key the least recently used. O(1) per call. */
export class LruCache<V> {
  readonly #slots = new Map<string, Slot<V>>();
  readonly #capacity: number;
  readonly #nowMs: () => number;

  constructor(opts: LruCacheOptions) {
    if (!Number.isInteger(opts.capacity) || opts.capacity < 0) {
      throw new Error(`LruCache capacity must be a whole number >= 0, got ${opts.capacity}`);
    }
    this.#capacity = opts.capacity;
    this.#nowMs = opts.nowMs;
  }

  /** The live value for key (and marks it most recently used), or undefined when absent or expired. */
  get(key: string): V | undefined {
    const slot = this.#slots.get(key);
    if (slot === undefined) return undefined;
    this.#slots.delete(key);
    if (this.#nowMs() >= slot.expiresAtMs) return undefined;
    this.#slots.set(key, slot);
    return slot.value;
  }

  /** Stores value for ttlMs from now, evicting the least recently used entry when full. A ttlMs <= 0 stores nothing. */
  set(key: string, value: V, ttlMs: number): void {
    this.#slots.delete(key);
    if (this.#capacity === 0 || !(ttlMs > 0)) return;
    if (this.#slots.size >= this.#capacity) {
      const oldest = this.#slots.keys().next();
      if (oldest.done !== true) this.#slots.delete(oldest.value);
    }
    this.#slots.set(key, { value, expiresAtMs: this.#nowMs() + ttlMs });
  }

  delete(key: string): void {
    this.#slots.delete(key);
  }

  /** Entries held, expired ones included until they are read or evicted. */
  get size(): number {
    return this.#slots.size;
  }
}
