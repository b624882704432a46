// Reuse of next-hop connections: idle ones are checked with RSET before they are handed out, and expire with QUIT.
// Touches: connections opened with connectNextHop; drops one the next hop closed while idle, never hands it out.

import { connectNextHop, type ConnectOutcome, type NextHopConnection, type NextHopOptions } from './next-hop-connection.js';

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
  /** Connections dropped because the next hop closed them, or they failed their RSET. */
  dropped: number;
  /** Idle connections closed after idleTimeoutMs. */
  expired: number;
};

export type NextHopPool = {
  /** An idle connection that answered RSET with 250, else a new one. Never rejects. */
  acquire(): Promise<ConnectOutcome>;
  /**
   * Gives a connection back. 'clean': its transaction finished (or never began) — kept idle if reusable.
   * 'dirty': a transaction may be open — RSET first, kept only on 250. Never rejects.
   */
  release(connection: NextHopConnection, state: 'clean' | 'dirty'): Promise<void>;
  /** QUIT to every idle connection; connections released later are closed, not kept. */
  closeAll(): Promise<void>;
  stats(): NextHopPoolStats;
};

type IdleEntry = { connection: NextHopConnection; timer: NodeJS.Timeout };

export function createNextHopPool(opts: NextHopOptions, limits: NextHopPoolLimits): NextHopPool {
  if (!(Number.isInteger(limits.maxIdle) && limits.maxIdle >= 0)) throw new RangeError('next hop pool: maxIdle must be an integer >= 0');
  if (!(limits.idleTimeoutMs > 0)) throw new RangeError('next hop pool: idleTimeoutMs must be > 0');

  const idle: IdleEntry[] = [];
  const leased = new Set<NextHopConnection>();
  const watched = new WeakSet<NextHopConnection>();
  const goodbyes = new Set<Promise<unknown>>();
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
      if (takeIdle(connection) !== null) counts.dropped += 1;
    });
  }

  function sayGoodbye(connection: NextHopConnection): void {
    const quitting = connection.quit().catch(() => connection.close());
    goodbyes.add(quitting);
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

  async function acquire(): Promise<ConnectOutcome> {
    // most recently used first: the likeliest to be alive; at most the idle ones present now are tried
    for (let entry = idle.pop(); entry !== undefined; entry = idle.pop()) {
      clearTimeout(entry.timer);
      const connection = entry.connection;
      if (connection.reusable) {
        leased.add(connection);
        const check = await resetChecked(connection);
        if (check && connection.reusable) {
          counts.reused += 1;
          return { kind: 'ok', connection };
        }
        leased.delete(connection);
      }
      counts.dropped += 1;
      connection.close();
    }
    const outcome = await connectNextHop(opts);
    if (outcome.kind === 'ok') {
      counts.created += 1;
      leased.add(outcome.connection);
    }
    return outcome;
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

  async function closeAll(): Promise<void> {
    closing = true;
    for (const entry of idle.splice(0)) {
      clearTimeout(entry.timer);
      sayGoodbye(entry.connection);
    }
    await Promise.allSettled([...goodbyes]);
  }

  function stats(): NextHopPoolStats {
    return { idle: idle.length, inUse: leased.size, ...counts };
  }

  return { acquire, release, closeAll, stats };
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
