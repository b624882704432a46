// Counts failed SMTP AUTH attempts per client address in a sliding window, so that password
// guessing is limited per address and not only per connection (a new connection starts afresh).
// Pure bookkeeping with a bounded number of tracked addresses; the caller answers 421 4.7.0.

export interface AuthThrottleLimits {
  maxFailures: number;
  windowSec: number;
}

/** Addresses tracked at most: past it the oldest are forgotten (memory stays bounded under a spray). */
const MAX_TRACKED = 100_000;

export class AuthThrottle {
  /** Address -> times (ms) of its failures within the window, oldest first. */
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly limits: () => AuthThrottleLimits) {}

  /** True when this address used up its failures: refuse before checking any password. */
  blocked(address: string, now = Date.now()): boolean {
    return this.recent(address, now).length >= this.limits().maxFailures;
  }

  /** Records a failure; returns true when this one used up the address's allowance. */
  fail(address: string, now = Date.now()): boolean {
    const times = this.recent(address, now);
    times.push(now);
    this.failures.delete(address);
    this.failures.set(address, times); // re-inserted: Map order is then least recently failed first
    if (this.failures.size > MAX_TRACKED) this.failures.delete(this.failures.keys().next().value!);
    return times.length >= this.limits().maxFailures;
  }

  private recent(address: string, now: number): number[] {
    const times = this.failures.get(address);
    if (!times) return [];
    const since = now - this.limits().windowSec * 1000;
    while (times.length > 0 && times[0]! <= since) times.shift();
    if (times.length === 0) this.failures.delete(address);
    return times;
  }
}
