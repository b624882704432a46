// Reuse of next-hop connections: a connection whose transaction ended cleanly goes back idle as it is (no RSET round
// trip: nothing is open on it), a dirty one only after RSET got 250; idle ones expire with QUIT.
// Touches: connections opened with connectNextHop; drops one the next hop closed while idle, never hands it out.

import { connectNextHop, type ConnectOutcome, type NextHopConnection, type NextHopOptions, type ReplyOutcome } from './next-hop-connection.js';
import type { SmtpReply } from './smtp-reply.js';

export type NextHopPoolLimits = {
  /** Most idle connections kept; a connection released beyond that gets QUIT. */
  maxIdle: number;
  /** An idle connection older than this gets QUIT. */
  idleTimeoutMs: number;
};

export type NextHopPoolStats = {
  idle: number;
  inUse: number;
  /** Connections opened. */
  created: number;
  /** Acquisitions served by an idle connection. */
  reused: number;
  /** Connections dropped because the next hop closed them (seen while idle or at their first command), or they failed their RSET. */
  dropped: number;
  /** Idle connections closed after idleTimeoutMs. */
  expired: number;
};

/** What begin() did: the connection and the reply to the first command, or why no connection could be had. */
export type BeginOutcome = { kind: 'ok'; connection: NextHopConnection; reply: ReplyOutcome } | Exclude<ConnectOutcome, { kind: 'ok' }>;

export type NextHopPool = {
  /** The most recently used idle connection, else a new one. Never rejects. */
  acquire(): Promise<ConnectOutcome>;
  /**
   * Acquires a connection and sends the transaction's first command on it (MAIL FROM). When a reused connection
   * turns out to be dead at that command — lost before a reply, or a 421: the next hop closed it while it sat idle —
   * it is dropped and the command goes on the next one (a new connection at the latest): MAIL has no effect on a
   * connection that is gone. Never rejects.
   */
  begin(first: (connection: NextHopConnection) => Promise<ReplyOutcome>): Promise<BeginOutcome>;
  /**
   * An idle connection that still looks alive, leased to the caller without sending anything on it; null when none
   * is idle (nothing is opened). The caller may find it dead at its first command: discard() it then.
   */
  leaseIdle(): NextHopConnection | null;
  /** Drops a leased connection found dead at its first command (the next hop closed it while it sat idle). */
  discard(connection: NextHopConnection): void;
  /**
   * Gives a connection back. 'clean': its transaction finished (or never began) — kept idle if reusable.
   * 'dirty': a transaction may be open — RSET first, kept only on 250. Never rejects.
   */
  release(connection: NextHopConnection, state: 'clean' | 'dirty'): Promise<void>;
  /**
   * QUIT to every idle connection, and waits for the goodbyes (at most `graceMs`, then the connections still saying
   * goodbye are closed: a next hop that never answers QUIT must not hold a stop for next_hop_timeout). Connections
   * released later are closed, not kept.
   */
  closeAll(graceMs?: number): Promise<void>;
  /**
   * Ends every connection in use at once (a stop whose drain time ran out): their commands fail as lost, so each
   * transaction answers its client and logs itself (ambiguous when past the final dot). How many were ended.
   */
  abortInUse(): number;
  stats(): NextHopPoolStats;
};

type IdleEntry = { connection: NextHopConnection; timer: NodeJS.Timeout };

/** How long closeAll() waits for the next hop's replies to QUIT before it closes the connections itself. */
export const QUIT_GRACE_MS = 2000;

export type NextHopPoolEvents = {
  /**
   * An idle connection ended by a reply no command was owed (not a 421, which is how a next hop says goodbye): a
   * next hop out of step, e.g. one that answered 250 before our final dot and refuses the message now. Nothing in
   * the protocol can tie it to a message any more: it is the operator's to look into.
   */
  unsolicitedWhileIdle?(reply: SmtpReply): void;
};

export function createNextHopPool(opts: NextHopOptions, limits: NextHopPoolLimits, events: NextHopPoolEvents = {}): NextHopPool {
  if (!(Number.isInteger(limits.maxIdle) && limits.maxIdle >= 0)) throw new RangeError('next hop pool: maxIdle must be an integer >= 0');
  if (!(limits.idleTimeoutMs > 0)) throw new RangeError('next hop pool: idleTimeoutMs must be > 0');

  const idle: IdleEntry[] = [];
  const leased = new Set<NextHopConnection>();
  const watched = new WeakSet<NextHopConnection>();
  /** QUITs under way, and the connection each one ends. */
  const goodbyes = new Map<Promise<unknown>, NextHopConnection>();
  const counts = { created: 0, reused: 0, dropped: 0, expired: 0 };
  let closing = false;

  function takeIdle(connection: NextHopConnection): IdleEntry | null {
    const at = idle.findIndex((entry) => entry.connection === connection);
    if (at === -1) return null;
    const [entry] = idle.splice(at, 1);
    clearTimeout(entry!.timer);
    return entry!;
  }

  function watch(connection: NextHopConnection): void {
    if (watched.has(connection)) return;
    watched.add(connection);
    // the next hop closed it (or sent 421) while idle: drop it now rather than at the next acquire
    connection.onClosed(() => {
      if (takeIdle(connection) === null) return;
      counts.dropped += 1;
      const reply = connection.unsolicitedReply;
      if (reply !== null && reply.code !== 421) events.unsolicitedWhileIdle?.(reply);
    });
  }

  function sayGoodbye(connection: NextHopConnection): void {
    const quitting = connection.quit().catch(() => connection.close());
    goodbyes.set(quitting, connection);
    void quitting.finally(() => goodbyes.delete(quitting));
  }

  function keepIdle(connection: NextHopConnection): void {
    if (closing || !connection.reusable) {
      connection.close();
      return;
    }
    if (idle.length >= limits.maxIdle) {
      sayGoodbye(connection);
      return;
    }
    watch(connection);
    const timer = setTimeout(() => {
      if (takeIdle(connection) === null) return;
      counts.expired += 1;
      sayGoodbye(connection);
    }, limits.idleTimeoutMs);
    timer.unref();
    idle.push({ connection, timer });
  }

  /** The most recently used idle connection that still looks alive (the likeliest to be), or null. */
  function takeReusable(): NextHopConnection | null {
    for (let entry = idle.pop(); entry !== undefined; entry = idle.pop()) {
      clearTimeout(entry.timer);
      if (entry.connection.reusable) {
        leased.add(entry.connection);
        return entry.connection;
      }
      counts.dropped += 1;
      entry.connection.close();
    }
    return null;
  }

  async function connectNew(): Promise<ConnectOutcome> {
    const outcome = await connectNextHop(opts);
    if (outcome.kind === 'ok') {
      counts.created += 1;
      leased.add(outcome.connection);
    }
    return outcome;
  }

  async function acquire(): Promise<ConnectOutcome> {
    const reused = takeReusable();
    if (reused !== null) {
      counts.reused += 1;
      return { kind: 'ok', connection: reused };
    }
    return connectNew();
  }

  function leaseIdle(): NextHopConnection | null {
    const reused = takeReusable();
    if (reused !== null) counts.reused += 1;
    return reused;
  }

  function discard(connection: NextHopConnection): void {
    if (leased.delete(connection)) counts.dropped += 1;
    connection.close();
  }

  async function begin(first: (connection: NextHopConnection) => Promise<ReplyOutcome>): Promise<BeginOutcome> {
    // at most the idle connections present now are tried, then one new connection
    for (let reused = takeReusable(); reused !== null; reused = takeReusable()) {
      const reply = await sendFirst(reused, first);
      const dead = reply.kind === 'lost' || (reply.kind === 'reply' && reply.reply.code === 421);
      if (!dead) {
        counts.reused += 1;
        return { kind: 'ok', connection: reused, reply };
      }
      leased.delete(reused);
      counts.dropped += 1;
      reused.close();
    }
    const outcome = await connectNew();
    if (outcome.kind !== 'ok') return outcome;
    return { kind: 'ok', connection: outcome.connection, reply: await sendFirst(outcome.connection, first) };
  }

  /** `first` on a leased connection; if it throws (a caller bug), the connection is closed, not leaked. */
  async function sendFirst(connection: NextHopConnection, first: (connection: NextHopConnection) => Promise<ReplyOutcome>): Promise<ReplyOutcome> {
    try {
      return await first(connection);
    } catch (err) {
      leased.delete(connection);
      connection.close();
      throw err;
    }
  }

  async function release(connection: NextHopConnection, state: 'clean' | 'dirty'): Promise<void> {
    if (!leased.delete(connection)) {
      // not ours, or released twice: never let it into the idle list
      if (!idle.some((entry) => entry.connection === connection)) connection.close();
      return;
    }
    if (state === 'dirty' && connection.reusable && !closing) {
      leased.add(connection); // still busy while RSET runs
      const reset = await resetChecked(connection);
      leased.delete(connection);
      if (!reset) {
        counts.dropped += 1;
        connection.close();
        return;
      }
    }
    keepIdle(connection);
  }

  async function closeAll(graceMs = QUIT_GRACE_MS): Promise<void> {
    closing = true;
    for (const entry of idle.splice(0)) {
      clearTimeout(entry.timer);
      sayGoodbye(entry.connection);
    }
    if (goodbyes.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([Promise.allSettled([...goodbyes.keys()]), graceOver]);
    clearTimeout(timer);
    // each QUIT still unanswered fails as lost once its connection is closed, so this wait is short
    for (const connection of goodbyes.values()) connection.close();
    await Promise.allSettled([...goodbyes.keys()]);
  }

  function abortInUse(): number {
    const inUse = [...leased];
    for (const connection of inUse) connection.close();
    return inUse.length;
  }

  function stats(): NextHopPoolStats {
    return { idle: idle.length, inUse: leased.size, ...counts };
  }

  return { acquire, begin, leaseIdle, discard, release, closeAll, abortInUse, stats };
}

/** RSET answered with 250. False for any other outcome, and for a connection still busy with a command (a caller bug). */
async function resetChecked(connection: NextHopConnection): Promise<boolean> {
  try {
    const outcome = await connection.rset();
    return outcome.kind === 'reply' && outcome.reply.code === 250;
  } catch {
    return false;
  }
}
