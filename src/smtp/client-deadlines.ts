// Ends client sessions that last too long or send too slowly, so a client dribbling a byte at a
// time cannot hold a connection slot for ever (reliability.md invariant 6). socket_timeout only
// catches silence; a byte a second resets it.
// Touches: the smtp-server connections of one listener (reads their state, answers 421 and closes).

import type { SmtpReplyValue } from './reply-codes.js';

export interface DeadlineLimits {
  /** Seconds a session may last. */
  sessionTimeout: number;
  /** Bytes per second while the client owes us the rest of a line or a message; 0: no floor. */
  minDataRate: number;
  /** Seconds over which the rate is measured. */
  dataRateWindow: number;
}

/** The parts of smtp-server's SMTPConnection this reads (pinned version; covered by test/attack). */
export interface WatchedConnection {
  _socket: { bytesRead: number; readableFlowing: boolean | null; destroyed: boolean };
  _parser: { _dataMode: boolean; _remainder: string } | false;
  _dataStream: unknown;
  _handlerPending?: boolean;
  _closing: boolean;
  _closed: boolean;
  remoteAddress: string;
  send(code: number, data: string, context?: unknown): void;
}

export type ShedReason = 'session_timeout' | 'too_slow';

interface Watch {
  connectedAt: number;
  windowStart: number;
  bytesAtWindowStart: number;
}

/**
 * What the client is doing now: 'sending' while it owes the rest of a command line or of a message
 * (only then does the rate count), 'waiting' while we owe it a reply, else 'idle'.
 */
export function clientPhase(c: WatchedConnection): 'sending' | 'waiting' | 'idle' {
  const parser = c._parser;
  if (!parser) return 'idle';
  if (c._handlerPending || (c._dataStream && !parser._dataMode)) return 'waiting';
  // A socket paused by our own backpressure (spooling) is not the client being slow.
  if (c._socket.readableFlowing === false) return 'waiting';
  return parser._dataMode || parser._remainder.length > 0 ? 'sending' : 'idle';
}

export class ClientDeadlines {
  private readonly watched = new Map<WatchedConnection, Watch>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly connections: () => Iterable<WatchedConnection>,
    private readonly limits: () => DeadlineLimits,
    private readonly replies: { sessionTooLong: SmtpReplyValue; clientTooSlow: SmtpReplyValue },
    private readonly onShed: (reason: ShedReason, detail: { client: string; ageMs: number; bytesInWindow?: number }) => void,
  ) {}

  /** Checks every connection a few times per window (at most once a second). */
  start(): void {
    const { dataRateWindow } = this.limits();
    const everyMs = Math.max(50, Math.min(1000, (dataRateWindow * 1000) / 4));
    this.timer = setInterval(() => this.check(Date.now()), everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.watched.clear();
  }

  check(now: number): void {
    const limits = this.limits();
    const seen = new Set<WatchedConnection>();
    for (const c of this.connections()) {
      seen.add(c);
      if (c._closing || c._closed || c._socket.destroyed) continue;
      let w = this.watched.get(c);
      if (!w) {
        w = { connectedAt: now, windowStart: now, bytesAtWindowStart: c._socket.bytesRead };
        this.watched.set(c, w);
        continue;
      }
      const phase = clientPhase(c);
      const ageMs = now - w.connectedAt;
      // A message we are still deciding on is finished first: its client gets our reply.
      if (ageMs >= limits.sessionTimeout * 1000 && phase !== 'waiting') {
        this.shed(c, 'session_timeout', { ageMs });
        continue;
      }
      if (limits.minDataRate === 0 || phase !== 'sending') {
        w.windowStart = now;
        w.bytesAtWindowStart = c._socket.bytesRead;
        continue;
      }
      const windowMs = limits.dataRateWindow * 1000;
      if (now - w.windowStart < windowMs) continue;
      const bytesInWindow = c._socket.bytesRead - w.bytesAtWindowStart;
      if (bytesInWindow < limits.minDataRate * limits.dataRateWindow) {
        this.shed(c, 'too_slow', { ageMs, bytesInWindow });
        continue;
      }
      w.windowStart = now;
      w.bytesAtWindowStart = c._socket.bytesRead;
    }
    for (const c of this.watched.keys()) if (!seen.has(c)) this.watched.delete(c);
  }

  private shed(c: WatchedConnection, reason: ShedReason, detail: { ageMs: number; bytesInWindow?: number }): void {
    this.watched.delete(c);
    const r = reason === 'session_timeout' ? this.replies.sessionTooLong : this.replies.clientTooSlow;
    this.onShed(reason, { client: c.remoteAddress, ...detail });
    // smtp-server closes the connection after any 421 (and ends a DATA stream in progress).
    c.send(r.code, `${r.enhanced} ${r.text}`, false);
  }
}
