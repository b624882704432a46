// Counts failed SMTP AUTH attempts per client address in a sliding window, so that password
// guessing is limited per address and not only per connection (a new connection starts afresh).
// An IPv6 client counts per /64: one host usually has a whole /64 to pick source addresses from.
// Attempts whose password is still being checked count against the allowance too: otherwise one
// address could open max_clients sessions and have every one of them cost a bcrypt before its first
// failure was counted. Pure bookkeeping with a bounded number of tracked addresses; the caller answers 421 4.7.0.

import { formatIpBytes, parseIpBytes } from '../config/address-syntax.js';

export interface AuthThrottleLimits {
  maxFailures: number;
  windowSec: number;
}

/** Addresses tracked at most: past it the oldest are forgotten (memory stays bounded under a spray). */
const MAX_TRACKED = 100_000;

/**
 * What a client's failures are counted under: its IPv4 address (also when written IPv4-mapped, ::ffff:192.0.2.1), or
 * the /64 of its IPv6 address ("2001:db8::/64"): counted per IPv6 address, a host with a /64 had 2^64 allowances.
 */
export function throttleKey(address: string): string {
  const bytes = parseIpBytes(address);
  if (bytes === null || bytes.length === 4) return address;
  const mapped = bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (mapped) return formatIpBytes(bytes.subarray(12));
  const prefix = new Uint8Array(16);
  prefix.set(bytes.subarray(0, 8));
  return `${formatIpBytes(prefix)}/64`;
}

export class AuthThrottle {
  /** Address -> times (ms) of its failures within the window, oldest first. */
  private readonly failures = new Map<string, number[]>();
  /** Address -> attempts begun and not yet ended (at most one per session: bounded by max_clients). */
  private readonly pending = new Map<string, number>();

  constructor(private readonly limits: () => AuthThrottleLimits) {}

  /** True when this address used up its failures (attempts in flight included): refuse before checking any password. */
  blocked(address: string, now = Date.now()): boolean {
    const key = throttleKey(address);
    return this.recent(key, now).length + (this.pending.get(key) ?? 0) >= this.limits().maxFailures;
  }

  /**
   * Starts an attempt whose password is about to be checked: false (refuse it, no check) when the address is blocked.
   * Every attempt begun is ended with end(), whatever its outcome.
   */
  begin(address: string, now = Date.now()): boolean {
    if (this.blocked(address, now)) return false;
    const key = throttleKey(address);
    this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
    return true;
  }

  /** Ends an attempt begun with begin(); a failed one is recorded (see fail). */
  end(address: string, failed: boolean, now = Date.now()): boolean {
    const key = throttleKey(address);
    const left = (this.pending.get(key) ?? 1) - 1;
    if (left > 0) this.pending.set(key, left);
    else this.pending.delete(key);
    return failed ? this.fail(address, now) : false;
  }

  /** Records a failure; returns true when this one used up the address's allowance. */
  fail(address: string, now = Date.now()): boolean {
    const key = throttleKey(address);
    const times = this.recent(key, now);
    times.push(now);
    this.failures.delete(key);
    this.failures.set(key, times); // re-inserted: Map order is then least recently failed first
    if (this.failures.size > MAX_TRACKED) this.failures.delete(this.failures.keys().next().value!);
    return times.length >= this.limits().maxFailures;
  }

  private recent(key: string, now: number): number[] {
    const times = this.failures.get(key);
    if (!times) return [];
    const since = now - this.limits().windowSec * 1000;
    while (times.length > 0 && times[0]! <= since) times.shift();
    if (times.length === 0) this.failures.delete(key);
    return times;
  }
}
