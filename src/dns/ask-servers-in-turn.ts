// One TXT query asked of a list of DNS servers in turn, all within one deadline, as resolv.conf resolvers do.
// Touches: the network (UDP, TCP for truncated answers) through node:dns: one c-ares channel per server asked,
// cancelled once the query is decided, so no query outlives the deadline.

import { Resolver } from 'node:dns/promises';
import { MAX_TXT_ANSWER_BYTES, type TxtLookupOutcome } from '../dkim/txt-lookup.js';

/**
 * Asks `servers[0]` first. The next server is asked too when the one before fails (SERVFAIL, REFUSED, its own
 * timeout) or has not answered within its share of the time left (the time left divided by the servers not yet
 * asked), so every server gets its turn within `timeoutMs` and a silent first server costs only its share.
 * Servers already asked may still answer: the first answer (records, NXDOMAIN or no data) decides.
 * `servers` are in the form setServers takes; empty: c-ares's own default. Never rejects.
 */
export function askServersInTurn(name: string, servers: readonly string[], timeoutMs: number): Promise<TxtLookupOutcome> {
  const turns: readonly (string | null)[] = servers.length > 0 ? servers : [null];
  return new Promise<TxtLookupOutcome>((resolve) => {
    const deadline = performance.now() + timeoutMs;
    const asking = new Set<Resolver>();
    let asked = 0;
    let lastFailure: TxtLookupOutcome = { kind: 'timeout' };
    let turnTimer: NodeJS.Timeout | undefined;
    let decided = false;

    const decide = (outcome: TxtLookupOutcome): void => {
      if (decided) return;
      decided = true;
      clearTimeout(deadlineTimer);
      clearTimeout(turnTimer);
      for (const resolver of asking) resolver.cancel(); // their promises reject with ECANCELLED, ignored below
      asking.clear();
      resolve(outcome);
    };

    const failed = (resolver: Resolver, outcome: TxtLookupOutcome): void => {
      asking.delete(resolver);
      lastFailure = outcome;
      if (asked < turns.length) askNext();
      else if (asking.size === 0) decide(lastFailure);
    };

    const askNext = (): void => {
      clearTimeout(turnTimer);
      if (decided || asked >= turns.length) return;
      const server = turns[asked++] as string | null;
      const notYetAsked = turns.length - asked;
      if (notYetAsked > 0) turnTimer = setTimeout(askNext, Math.max(0, deadline - performance.now()) / (notYetAsked + 1));
      // c-ares's own timeout is the whole budget: our timers decide when the next server is asked.
      const resolver = new Resolver({ timeout: timeoutMs, tries: 1 });
      asking.add(resolver);
      try {
        if (server !== null) resolver.setServers([server]);
        resolver.resolveTxt(name).then(
          (answers) => decide(outcomeOfAnswers(answers)),
          (err: unknown) => {
            if (decided) return;
            const outcome = outcomeOfError(err);
            if (outcome.kind === 'servfail' || outcome.kind === 'timeout') failed(resolver, outcome);
            else decide(outcome);
          },
        );
      } catch {
        failed(resolver, { kind: 'servfail' });
      }
    };

    const deadlineTimer = setTimeout(() => decide({ kind: 'timeout' }), timeoutMs);
    askNext();
  });
}

/** The resolvers node:dns would ask (from /etc/resolv.conf), in the form setServers takes. */
export function systemServers(): string[] {
  return new Resolver().getServers();
}

/** TXT records (each a list of character-strings) as an outcome; an oversized answer is neither kept nor cached. */
function outcomeOfAnswers(answers: string[][]): TxtLookupOutcome {
  if (answers.length === 0) return { kind: 'nodata' };
  let bytes = 0;
  for (const chunks of answers) for (const chunk of chunks) bytes += chunk.length;
  if (bytes > MAX_TXT_ANSWER_BYTES) return { kind: 'too_large', bytes };
  return { kind: 'found', records: answers.map((chunks) => chunks.join('')) };
}

/** node:dns error codes to the closed set of TxtLookupOutcome. */
function outcomeOfError(err: unknown): TxtLookupOutcome {
  const code = typeof err === 'object' && err !== null && 'code' in err ? (err as { code: unknown }).code : undefined;
  switch (code) {
    case 'ENOTFOUND':
      return { kind: 'nxdomain' };
    case 'ENODATA':
      return { kind: 'nodata' };
    case 'ETIMEOUT':
      return { kind: 'timeout' };
    default:
      return { kind: 'servfail' }; // ESERVFAIL, EREFUSED, ECONNREFUSED, EBADRESP, EFORMERR, …
  }
}
