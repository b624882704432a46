// Prometheus metrics of the daemon on a registry of its own; callers use the Metrics methods, never prom-client.
// Trusts: nothing in label values — each label has a closed set or a cap on distinct values (overflow -> "other").
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { RESULT_BY_REASON, type DkimResult } from '../dkim/results.js';
import type { MessageRecord, RelayOutcomeKind } from './message-log.js';

export type NextHopErrorKind = 'refused' | 'deferred' | 'unreachable' | 'timeout' | 'lost' | 'protocol' | 'tls' | 'auth';
export const NEXT_HOP_ERROR_KINDS: readonly NextHopErrorKind[] = [
  'refused',
  'deferred',
  'unreachable',
  'timeout',
  'lost',
  'protocol',
  'tls',
  'auth',
];

export type DnsCacheStats = { hits: number; misses: number };

export type MetricsOptions = {
  /** Domains that get their own `domain` label value (sign.domains keys and base domains); others are "other". */
  signingDomains?: Iterable<string>;
  /** process_* and nodejs_* metrics (collectDefaultMetrics on our registry). Default: true. */
  defaultMetrics?: boolean;
};

export type Metrics = {
  /**
   * Everything one finished message contributes: messages_total, one verify result per signature,
   * one sign count per signature added, a policy rejection when `policy.status` is set, a next-hop
   * error when the relay outcome is one, and the sign/verify/relay latencies present in `timings`.
   */
  recordMessage(record: MessageRecord): void;
  /** For events outside a finished message (e.g. the next hop failing at RCPT time). Not with recordMessage for the same event. */
  recordNextHopError(kind: NextHopErrorKind): void;
  recordVerifyResult(result: string, reason: string | null): void;
  recordSign(domain: string, selector: string): void;
  recordPolicyRejection(status: string, dryRun: boolean): void;
  observeSignMs(ms: number): void;
  observeVerifyMs(ms: number): void;
  observeRelayMs(ms: number): void;
  connectionOpened(): void;
  connectionClosed(): void;
  transactionStarted(): void;
  transactionFinished(): void;
  /** The DNS resolver's cumulative cache counts, read at each scrape; a new source (after SIGHUP) adds its counts in full, so totals stay monotonic. */
  setDnsCacheStats(source: (() => DnsCacheStats) | null): void;
  /** Replaces the configured signing domains (SIGHUP). */
  setSigningDomains(domains: Iterable<string>): void;
  /** Prometheus text exposition of every metric. */
  render(): Promise<{ contentType: string; body: string }>;
};

export const OTHER = 'other';
/** Bucket bounds in seconds, 0.1 ms to 10 s. */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

const DKIM_RESULTS: ReadonlySet<string> = new Set<DkimResult>(['none', 'pass', 'fail', 'policy', 'neutral', 'temperror', 'permerror']);
const VERIFY_REASONS: ReadonlySet<string> = new Set(Object.keys(RESULT_BY_REASON));
const NEXT_HOP_ERROR_SET: ReadonlySet<string> = new Set(NEXT_HOP_ERROR_KINDS);
const RELAY_ERROR_BY_OUTCOME: Partial<Record<RelayOutcomeKind, NextHopErrorKind>> = {
  refused: 'refused',
  deferred: 'deferred',
  unreachable: 'unreachable',
  timeout: 'timeout',
  lost: 'lost',
};
const LABEL_VALUE = /^[A-Za-z0-9._:+-]{1,64}$/;
/** The log line's outcomes are phrases ("deferred: signing", "refused by next hop"): spaces allowed. */
const OUTCOME_VALUE = /^[A-Za-z0-9._:+-](?:[A-Za-z0-9._:+ -]{0,62}[A-Za-z0-9._:+-])?$/;
const ENHANCED_STATUS = /^[245]\.\d{1,3}\.\d{1,3}$/;
const MAX_OUTCOMES = 32;
const MAX_SELECTORS = 64;
const MAX_STATUSES = 16;

/** Passes a label value through while fewer than `maxValues` distinct ones were seen; "other" after that or when malformed. */
function createLabelGuard(maxValues: number, pattern: RegExp = LABEL_VALUE): (value: string) => string {
  const seen = new Set<string>();
  return (value) => {
    if (seen.has(value)) return value;
    if (!pattern.test(value) || seen.size >= maxValues) return OTHER;
    seen.add(value);
    return value;
  };
}

function normalizeDomain(domain: string): string {
  return domain.toLowerCase().replace(/\.$/, '');
}

export function createMetrics(opts: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });

  let signingDomains = new Set<string>([...(opts.signingDomains ?? [])].map(normalizeDomain));
  const outcomeLabel = createLabelGuard(MAX_OUTCOMES, OUTCOME_VALUE);
  const selectorLabel = createLabelGuard(MAX_SELECTORS);
  const statusLabel = createLabelGuard(MAX_STATUSES, ENHANCED_STATUS);

  const messages = new Counter({
    name: 'dkimgate_messages_total',
    help: 'Messages finished, by outcome and by signing domain (configured domains, else "other").',
    labelNames: ['outcome', 'domain'] as const,
    registers: [registry],
  });
  const verifyResults = new Counter({
    name: 'dkimgate_verify_results_total',
    help: 'DKIM signatures evaluated, by dkim= result and reason ("none" when passing).',
    labelNames: ['result', 'reason'] as const,
    registers: [registry],
  });
  const signs = new Counter({
    name: 'dkimgate_sign_total',
    help: 'DKIM-Signature fields added, by signing domain and selector.',
    labelNames: ['domain', 'selector'] as const,
    registers: [registry],
  });
  const nextHopErrors = new Counter({
    name: 'dkimgate_next_hop_errors_total',
    help: 'Next-hop failures and refusals, by kind.',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const policyRejections = new Counter({
    name: 'dkimgate_policy_rejections_total',
    help: 'Messages the verify policy rejected (or would have, dry_run="true"), by enhanced status.',
    labelNames: ['status', 'dry_run'] as const,
    registers: [registry],
  });

  // DNS cache counts come from the resolver's cumulative stats(); the counter adds the difference at each scrape.
  let dnsSource: (() => DnsCacheStats) | null = null;
  let dnsSeen: DnsCacheStats = { hits: 0, misses: 0 };
  const dnsCache = new Counter({
    name: 'dkimgate_dns_cache_total',
    help: 'DKIM key lookups answered from the DNS cache (hit) or sent to a server (miss).',
    labelNames: ['result'] as const,
    registers: [registry],
    collect: () => foldDnsStats(),
  });
  function foldDnsStats(): void {
    let now: DnsCacheStats = dnsSeen;
    if (dnsSource !== null) {
      try {
        now = dnsSource();
      } catch {
        now = dnsSeen; // a broken source must not break the scrape
      }
    }
    dnsCache.inc({ result: 'hit' }, growth(dnsSeen.hits, now.hits));
    dnsCache.inc({ result: 'miss' }, growth(dnsSeen.misses, now.misses));
    dnsSeen = { hits: now.hits, misses: now.misses }; // a copy: a source may hand out one mutable object
  }

  const histogram = (name: string, help: string): Histogram =>
    new Histogram({ name, help, buckets: [...LATENCY_BUCKETS_SECONDS], registers: [registry] });
  const signSeconds = histogram('dkimgate_sign_seconds', 'Time to sign one message (all its signatures).');
  const verifySeconds = histogram('dkimgate_verify_seconds', 'Time to verify one message, key lookups included.');
  const relaySeconds = histogram('dkimgate_relay_seconds', 'Time from handing a message to the next hop to its final reply.');

  let connections = 0;
  let transactions = 0;
  const connectionsGauge = new Gauge({
    name: 'dkimgate_connections',
    help: 'Client connections open.',
    registers: [registry],
  });
  const transactionsGauge = new Gauge({
    name: 'dkimgate_transactions_in_flight',
    help: 'Mail transactions between MAIL FROM and their final reply.',
    registers: [registry],
  });
  connectionsGauge.set(0);
  transactionsGauge.set(0);

  function domainLabel(...candidates: (string | null | undefined)[]): string {
    for (const candidate of candidates) {
      if (typeof candidate !== 'string') continue;
      const domain = normalizeDomain(candidate);
      if (signingDomains.has(domain)) return domain;
    }
    return OTHER;
  }

  function observeMs(h: Histogram, ms: number | undefined): void {
    if (ms !== undefined && Number.isFinite(ms) && ms >= 0) h.observe(ms / 1000);
  }

  const metrics: Metrics = {
    recordMessage(record) {
      messages.inc({ outcome: outcomeLabel(record.outcome), domain: domainLabel(record.authorDomain, record.signedWith?.[0]?.domain) });
      for (const s of record.signatures ?? []) metrics.recordVerifyResult(s.result, s.reason);
      for (const s of record.signedWith ?? []) metrics.recordSign(s.domain, s.selector);
      const status = record.policy?.status;
      if (status !== undefined && status !== '') metrics.recordPolicyRejection(status, record.policy?.dryRun ?? false);
      // A failure at RCPT was counted there (recordNextHopError), and no relay of the message began.
      const relayed = record.relay.outcome !== 'not_relayed' && record.relay.atRcpt !== true;
      // relay.error: a next hop lost or silent after the final dot is an ambiguous message and a next-hop error too
      const errorKind = relayed ? (record.relay.error?.kind ?? RELAY_ERROR_BY_OUTCOME[record.relay.outcome]) : undefined;
      if (errorKind !== undefined) nextHopErrors.inc({ kind: errorKind });
      observeMs(signSeconds, record.timings.signMs);
      observeMs(verifySeconds, record.timings.verifyMs);
      if (relayed) observeMs(relaySeconds, record.timings.relayMs);
    },
    recordNextHopError(kind) {
      nextHopErrors.inc({ kind: NEXT_HOP_ERROR_SET.has(kind) ? kind : OTHER });
    },
    recordVerifyResult(result, reason) {
      verifyResults.inc({
        result: DKIM_RESULTS.has(result) ? result : OTHER,
        reason: reason === null ? 'none' : VERIFY_REASONS.has(reason) ? reason : OTHER,
      });
    },
    recordSign(domain, selector) {
      const d = domainLabel(domain);
      signs.inc({ domain: d, selector: d === OTHER ? OTHER : selectorLabel(selector) });
    },
    recordPolicyRejection(status, dryRun) {
      policyRejections.inc({ status: statusLabel(status), dry_run: dryRun ? 'true' : 'false' });
    },
    observeSignMs: (ms) => observeMs(signSeconds, ms),
    observeVerifyMs: (ms) => observeMs(verifySeconds, ms),
    observeRelayMs: (ms) => observeMs(relaySeconds, ms),
    connectionOpened() {
      connectionsGauge.set(++connections);
    },
    connectionClosed() {
      connections = Math.max(0, connections - 1);
      connectionsGauge.set(connections);
    },
    transactionStarted() {
      transactionsGauge.set(++transactions);
    },
    transactionFinished() {
      transactions = Math.max(0, transactions - 1);
      transactionsGauge.set(transactions);
    },
    setDnsCacheStats(source) {
      if (source === dnsSource) return;
      foldDnsStats(); // count what the old source saw last
      dnsSource = source;
      dnsSeen = { hits: 0, misses: 0 };
      if (source !== null) foldDnsStats();
    },
    setSigningDomains(domains) {
      signingDomains = new Set([...domains].map(normalizeDomain));
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
  return metrics;
}

/** How much a cumulative count grew; a count that went down means its source restarted from zero. */
function growth(before: number, after: number): number {
  if (!Number.isFinite(after) || after < 0) return 0;
  return after >= before ? after - before : after;
}
