import { describe, expect, it } from 'vitest';
import type { MessageRecord } from '../../../src/observability/message-log.js';
import { createMetrics, OTHER, type Metrics } from '../../../src/observability/metrics.js';

/** The value of one sample in Prometheus text, matching labels whatever their order; undefined when absent. */
function sample(body: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of body.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) got[pair[1] ?? ''] = pair[2] ?? '';
    if (Object.keys(got).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => got[k] === v)) {
      return Number(m[3]);
    }
  }
  return undefined;
}

async function body(metrics: Metrics): Promise<string> {
  return (await metrics.render()).body;
}

function record(overrides: Partial<MessageRecord> = {}): MessageRecord {
  return {
    queueId: 'Q',
    listener: 'l',
    client: { address: '127.0.0.1', via: 'connection' },
    authorDomain: 'example.com',
    envelope: { mailFrom: 'a@example.com', rcptTo: ['b@example.net'] },
    sizeBytes: 10,
    decision: { kind: 'sign', reason: 'relay host' },
    signedWith: [{ domain: 'example.com', selector: 's2026', algorithm: 'rsa-sha256' }],
    relay: { outcome: 'delivered', reply: { code: 250, enhanced: '2.0.0', text: 'Ok' } },
    timings: { receiveMs: 1, signMs: 2, relayMs: 3, totalMs: 6 },
    outcome: 'relayed',
    ...overrides,
  };
}

describe('createMetrics', () => {
  it('counts messages by outcome and configured signing domain', async () => {
    const metrics = createMetrics({ signingDomains: ['Example.COM.'], defaultMetrics: false });
    metrics.recordMessage(record());
    metrics.recordMessage(record());
    metrics.recordMessage(record({ authorDomain: 'stranger.test', signedWith: undefined, outcome: 'refused' }));
    const text = await body(metrics);
    expect(sample(text, 'dkimgate_messages_total', { outcome: 'relayed', domain: 'example.com' })).toBe(2);
    expect(sample(text, 'dkimgate_messages_total', { outcome: 'refused', domain: OTHER })).toBe(1);
  });

  it('labels a message signed for a base domain with the configured domain it matched', async () => {
    const metrics = createMetrics({ signingDomains: ['example.org'], defaultMetrics: false });
    metrics.recordMessage(
      record({ authorDomain: 'mail.example.org', signedWith: [{ domain: 'example.org', selector: 's1', algorithm: 'rsa-sha256' }] }),
    );
    expect(sample(await body(metrics), 'dkimgate_messages_total', { outcome: 'relayed', domain: 'example.org' })).toBe(1);
  });

  it('follows the signing domains after a reload', async () => {
    const metrics = createMetrics({ signingDomains: ['example.com'], defaultMetrics: false });
    metrics.setSigningDomains(['example.net']);
    metrics.recordMessage(record());
    metrics.recordMessage(record({ authorDomain: 'example.net', signedWith: undefined }));
    const text = await body(metrics);
    expect(sample(text, 'dkimgate_messages_total', { outcome: 'relayed', domain: OTHER })).toBe(1);
    expect(sample(text, 'dkimgate_messages_total', { outcome: 'relayed', domain: 'example.net' })).toBe(1);
  });

  it.each(['deferred: signing', 'refused by next hop', 'rejected: no_passing', 'next hop unreachable'])(
    'keeps the outcome "%s" of the log line as its own label value',
    async (outcome) => {
      const metrics = createMetrics({ defaultMetrics: false });
      metrics.recordMessage(record({ outcome }));
      expect(sample(await body(metrics), 'dkimgate_messages_total', { outcome, domain: OTHER })).toBe(1);
    },
  );

  it('bounds the outcome label: past 32 distinct values the rest count as other', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    for (let i = 0; i < 40; i++) metrics.recordMessage(record({ outcome: `outcome_${i}` }));
    metrics.recordMessage(record({ outcome: 'bad label\nvalue' }));
    const text = await body(metrics);
    expect(sample(text, 'dkimgate_messages_total', { outcome: 'outcome_31', domain: OTHER })).toBe(1);
    expect(sample(text, 'dkimgate_messages_total', { outcome: 'outcome_32', domain: OTHER })).toBeUndefined();
    expect(sample(text, 'dkimgate_messages_total', { outcome: OTHER, domain: OTHER })).toBe(9);
  });

  it('counts each verified signature by result and reason, with unknown values folded into other', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.recordMessage(
      record({
        decision: { kind: 'verify', reason: 'client not trusted' },
        signedWith: undefined,
        signatures: [
          { domain: 'a.test', selector: 's', result: 'pass', reason: null },
          { domain: 'b.test', selector: 's', result: 'permerror', reason: 'no_key' },
          { domain: 'c.test', selector: 's', result: 'permerror', reason: 'no_key' },
        ],
      }),
    );
    metrics.recordVerifyResult('bogus', 'made_up_reason');
    const text = await body(metrics);
    expect(sample(text, 'dkimgate_verify_results_total', { result: 'pass', reason: 'none' })).toBe(1);
    expect(sample(text, 'dkimgate_verify_results_total', { result: 'permerror', reason: 'no_key' })).toBe(2);
    expect(sample(text, 'dkimgate_verify_results_total', { result: OTHER, reason: OTHER })).toBe(1);
  });

  it('counts signatures added by domain and selector, and hides selectors of unconfigured domains', async () => {
    const metrics = createMetrics({ signingDomains: ['example.com'], defaultMetrics: false });
    metrics.recordMessage(
      record({
        signedWith: [
          { domain: 'example.com', selector: 's2026', algorithm: 'rsa-sha256' },
          { domain: 'example.com', selector: 'ed2026', algorithm: 'ed25519-sha256' },
        ],
      }),
    );
    metrics.recordSign('unlisted.test', 'secret-selector');
    const text = await body(metrics);
    expect(sample(text, 'dkimgate_sign_total', { domain: 'example.com', selector: 's2026' })).toBe(1);
    expect(sample(text, 'dkimgate_sign_total', { domain: 'example.com', selector: 'ed2026' })).toBe(1);
    expect(sample(text, 'dkimgate_sign_total', { domain: OTHER, selector: OTHER })).toBe(1);
    expect(text).not.toContain('secret-selector');
  });

  it.each([
    ['refused', 'refused'],
    ['deferred', 'deferred'],
    ['unreachable', 'unreachable'],
    ['timeout', 'timeout'],
    ['lost', 'lost'],
  ] as const)('counts a %s relay as a next-hop error of kind %s', async (outcome, kind) => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.recordMessage(record({ relay: { outcome } }));
    expect(sample(await body(metrics), 'dkimgate_next_hop_errors_total', { kind })).toBe(1);
  });

  it.each(['delivered', 'ambiguous', 'not_relayed'] as const)('counts no next-hop error for a %s relay', async (outcome) => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.recordMessage(record({ relay: { outcome } }));
    expect(await body(metrics)).not.toMatch(/^dkimgate_next_hop_errors_total\{/m);
  });

  it('counts next-hop errors outside a message', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.recordNextHopError('tls');
    metrics.recordNextHopError('tls');
    expect(sample(await body(metrics), 'dkimgate_next_hop_errors_total', { kind: 'tls' })).toBe(2);
  });

  it('counts policy rejections by status and dry run, only when the policy set a status', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.recordMessage(record({ policy: { kind: 'reject', status: '5.7.20', dryRun: false } }));
    metrics.recordMessage(record({ policy: { kind: 'accept', status: '5.7.22', dryRun: true } }));
    metrics.recordMessage(record({ policy: { kind: 'accept' } }));
    metrics.recordPolicyRejection('not a status', false);
    const text = await body(metrics);
    expect(sample(text, 'dkimgate_policy_rejections_total', { status: '5.7.20', dry_run: 'false' })).toBe(1);
    expect(sample(text, 'dkimgate_policy_rejections_total', { status: '5.7.22', dry_run: 'true' })).toBe(1);
    expect(sample(text, 'dkimgate_policy_rejections_total', { status: OTHER, dry_run: 'false' })).toBe(1);
  });

  it('observes sign, verify and relay latency in seconds, with buckets from 0.1 ms to 10 s', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.recordMessage(record({ timings: { receiveMs: 1, signMs: 0.05, verifyMs: 40, relayMs: 3, totalMs: 50 } }));
    metrics.recordMessage(record({ relay: { outcome: 'not_relayed' }, timings: { receiveMs: 1, relayMs: 0, totalMs: 1 } }));
    metrics.observeRelayMs(20_000);
    metrics.observeSignMs(Number.NaN);
    const text = await body(metrics);
    expect(sample(text, 'dkimgate_sign_seconds_bucket', { le: '0.0001' })).toBe(1);
    expect(sample(text, 'dkimgate_sign_seconds_count')).toBe(1);
    expect(sample(text, 'dkimgate_verify_seconds_bucket', { le: '0.025' })).toBe(0);
    expect(sample(text, 'dkimgate_verify_seconds_bucket', { le: '0.05' })).toBe(1);
    expect(sample(text, 'dkimgate_verify_seconds_sum')).toBeCloseTo(0.04);
    expect(sample(text, 'dkimgate_relay_seconds_count')).toBe(2);
    expect(sample(text, 'dkimgate_relay_seconds_bucket', { le: '10' })).toBe(1);
    expect(sample(text, 'dkimgate_relay_seconds_bucket', { le: '+Inf' })).toBe(2);
  });

  it('tracks open connections and transactions in flight, never below zero', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    expect(sample(await body(metrics), 'dkimgate_connections')).toBe(0);
    metrics.connectionOpened();
    metrics.connectionOpened();
    metrics.transactionStarted();
    metrics.connectionClosed();
    let text = await body(metrics);
    expect(sample(text, 'dkimgate_connections')).toBe(1);
    expect(sample(text, 'dkimgate_transactions_in_flight')).toBe(1);
    metrics.transactionFinished();
    metrics.transactionFinished();
    metrics.connectionClosed();
    metrics.connectionClosed();
    text = await body(metrics);
    expect(sample(text, 'dkimgate_connections')).toBe(0);
    expect(sample(text, 'dkimgate_transactions_in_flight')).toBe(0);
  });

  it('reads DNS cache hits and misses from the resolver at each scrape', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const stats = { hits: 3, misses: 2 };
    metrics.setDnsCacheStats(() => stats);
    let text = await body(metrics);
    expect(sample(text, 'dkimgate_dns_cache_total', { result: 'hit' })).toBe(3);
    expect(sample(text, 'dkimgate_dns_cache_total', { result: 'miss' })).toBe(2);
    stats.hits = 10;
    text = await body(metrics);
    expect(sample(text, 'dkimgate_dns_cache_total', { result: 'hit' })).toBe(10);
    expect(sample(text, 'dkimgate_dns_cache_total', { result: 'miss' })).toBe(2);
  });

  it('keeps DNS cache totals growing when a reload brings a new resolver that counts from zero', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const old = { hits: 5, misses: 1 };
    metrics.setDnsCacheStats(() => old);
    old.hits = 7; // seen by no scrape before the switch, still counted
    metrics.setDnsCacheStats(() => ({ hits: 2, misses: 0 }));
    const text = await body(metrics);
    expect(sample(text, 'dkimgate_dns_cache_total', { result: 'hit' })).toBe(9);
    expect(sample(text, 'dkimgate_dns_cache_total', { result: 'miss' })).toBe(1);
  });

  it('survives a DNS stats source that throws', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.setDnsCacheStats(() => {
      throw new Error('broken');
    });
    expect(sample(await body(metrics), 'dkimgate_dns_cache_total', { result: 'hit' })).toBe(0);
  });

  it('uses a registry of its own, so two instances neither collide nor share counts', async () => {
    const a = createMetrics();
    const b = createMetrics();
    a.recordNextHopError('lost');
    expect(sample(await body(a), 'dkimgate_next_hop_errors_total', { kind: 'lost' })).toBe(1);
    expect(sample(await body(b), 'dkimgate_next_hop_errors_total', { kind: 'lost' })).toBeUndefined();
  });

  it('includes the default process metrics unless told not to', async () => {
    expect(await body(createMetrics())).toMatch(/^process_cpu_user_seconds_total /m);
    expect(await body(createMetrics({ defaultMetrics: false }))).not.toContain('process_cpu_user_seconds_total');
  });

  it('renders the Prometheus text format content type', async () => {
    expect((await createMetrics({ defaultMetrics: false }).render()).contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });
});

describe('recordMessage for a next hop lost at RCPT', () => {
  it('counts no second next-hop error and times no relay: the RCPT counted it and nothing was relayed', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.recordNextHopError('lost'); // at the RCPT
    metrics.recordMessage(record({ signedWith: undefined, relay: { outcome: 'lost', atRcpt: true }, timings: { receiveMs: 0, relayMs: 0, totalMs: 0 } }));
    const text = await body(metrics);
    expect(sample(text, 'dkimgate_next_hop_errors_total', { kind: 'lost' })).toBe(1);
    expect(sample(text, 'dkimgate_relay_seconds_count')).toBe(0);
  });
});
