// Watches the 4xx/5xx replies smtp-server sends on its own (a SIZE over the limit, syntax and sequence errors,
// XFORWARD refused, AUTH refusals, its max_clients 421), through the bunyan-style logger smtp-server accepts.
// Input: smtp-server's log calls: command lines (AUTH arguments already redacted by smtp-server, and cut again
// here) and our reply lines. Keeps one short line per open session; forgets it when the session closes.

/** smtp-server's log entry fields this reads. */
type Entry = { tnx?: string; cid?: string; command?: string };

/** The logger object smtp-server's `logger` option takes. */
export type SmtpServerLogger = Record<'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal', (...args: unknown[]) => void>;

/** Longest command line kept per session (an SMTP command line may be 16 KB). */
export const MAX_KEPT_COMMAND = 512;

/**
 * A logger for smtp-server that calls `onRefusal` for every 4xx/5xx reply it sends, with the session id and the
 * session's last command line (null before any; for AUTH only "AUTH MECHANISM": never a credential).
 */
export function watchSmtpServerReplies(onRefusal: (sessionId: string, lastCommand: string | null, reply: string) => void): SmtpServerLogger {
  const lastCommand = new Map<string, string>();
  const ignore = (): void => {};
  return {
    trace: ignore,
    warn: ignore,
    error: ignore,
    fatal: ignore,
    debug(entry: unknown, message: unknown, line: unknown) {
      const { cid, command } = (entry ?? {}) as Entry;
      if (cid === undefined || typeof line !== 'string') return;
      if (message === 'C:') lastCommand.set(cid, command === 'AUTH' ? authSummary(line) : line.slice(0, MAX_KEPT_COMMAND));
      else if (message === 'S:' && (line.startsWith('4') || line.startsWith('5'))) onRefusal(cid, lastCommand.get(cid) ?? null, line);
    },
    info(entry: unknown) {
      const { tnx, cid } = (entry ?? {}) as Entry;
      if (tnx === 'close' && cid !== undefined) lastCommand.delete(cid);
    },
  };
}

/** "AUTH PLAIN": the verb and the mechanism, nothing after (an initial response is a credential). */
function authSummary(line: string): string {
  const [verb, mechanism] = line.trim().split(/\s+/, 2);
  // a continuation line of the exchange (smtp-server hands it over redacted) is no command at all
  if (verb?.toUpperCase() !== 'AUTH') return 'AUTH';
  return mechanism !== undefined && /^[A-Za-z0-9_-]{1,40}$/.test(mechanism) ? `AUTH ${mechanism}` : 'AUTH';
}
