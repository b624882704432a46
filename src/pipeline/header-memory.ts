// Header sections in memory, process-wide. A header cannot be spooled (it is framed and read whole), so
// the bytes all messages hold in headers together have a budget: past it, the message is refused (452
// 4.3.1) instead of growing the process by up to max_clients x limits.max_header_size (500 MB by default).
// Touches nothing outside this process.

/** Header bytes all messages may hold together; ordinary headers are a few KB, so only huge ones meet it. */
export const HEADER_MEMORY_BUDGET_BYTES = 64 * 1024 * 1024;

let inUse = 0;

/** Header bytes held in memory now, across every message (for tests and metrics). */
export function headerMemoryInUse(): number {
  return inUse;
}

/** One message's share of the budget: taken as its header arrives, given back once when the message is done. */
export class HeaderReservation {
  private held = 0;

  constructor(private readonly budgetBytes = HEADER_MEMORY_BUDGET_BYTES) {}

  /** Counts `bytes` more; false (nothing counted) when that would pass the budget. */
  take(bytes: number): boolean {
    if (inUse + bytes > this.budgetBytes) return false;
    inUse += bytes;
    this.held += bytes;
    return true;
  }

  release(): void {
    inUse -= this.held;
    this.held = 0;
  }
}
