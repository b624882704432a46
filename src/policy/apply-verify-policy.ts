// The verify policy (interface.md §3 `policy`): accept, reject (RFC 7372 5.7.20/21/22) or tempfail a verified message.
// Pure; input: verdicts from the verifier and From domains parsed from untrusted headers.

import type { PolicyConfig, RequireRule } from '../config/config.js';
import type { SignatureVerdict } from '../dkim/verify.js';
import { normalizeDomainName as normalizeDomain } from './domain-name.js';

/** RFC 7372 §3.1: 5.7.20 no passing, 5.7.21 none acceptable, 5.7.22 none author-aligned. */
export type RequireFailure = 'no_passing' | 'none_acceptable' | 'not_aligned';

export type PolicyDecision =
  | { kind: 'accept' }
  | {
      kind: 'reject';
      status: RequireFailure;
      /** The required author domain that failed. */
      domain: string;
      /** policy.dry_run: log and count, reject nothing. */
      dryRun: boolean;
      /** Short phrase for the log line. */
      reason: string;
    }
  | {
      kind: 'tempfail';
      dryRun: boolean;
      reason: string;
    };

type VerdictFacts = Pick<SignatureVerdict, 'result' | 'domain' | 'testing'>;

/**
 * Applies `policy` to one verified message. Definitions (RFC 7372, RFC 6376 §6.1):
 * - passing: dkim=pass;
 * - acceptable: passing and its key record is not in testing mode (t=y: RFC 6376 §3.6.1 says to treat
 *   such mail like unsigned mail). A `policy` result (rsa-sha1, key too small, expired, l= short,
 *   several From fields) is a signature we evaluated and do not accept: it is never acceptable, and it
 *   makes a failure 5.7.21 rather than 5.7.20;
 * - aligned: d= equals the author (From) domain or is a parent of it with at least two labels
 *   (d=example.com aligns with news.example.com; a bare TLD never aligns), ignoring case.
 *
 * For each From domain with a `require` rule (exact domain match), in header order:
 *   an acceptable (and, with `aligned: true`, aligned) signature satisfies it; otherwise
 *   5.7.22 when acceptable signatures exist but none is aligned; 5.7.20 when nothing passed and no
 *   signature had a `policy` result; else 5.7.21. A failure that a temperror signature might have
 *   satisfied (any d= without `aligned`, an aligned d= with it) is a tempfail instead, whatever
 *   `on_temperror` says: a DNS outage must not bounce mail that a retry would deliver. But a rejection
 *   that another author's rule earns regardless of DNS comes first: a retry would only bounce later.
 * Then `on_temperror: tempfail`: tempfail when any signature is temperror and none passes.
 * `dry_run` marks reject and tempfail decisions dryRun: the caller logs and counts them, and relays.
 */
export function applyVerifyPolicy(verdicts: readonly VerdictFacts[], fromDomains: readonly string[], policy: PolicyConfig): PolicyDecision {
  const dryRun = policy.dryRun;
  const rules = rulesByDomain(policy);
  const seen = new Set<string>();
  // A rejection another author earns whatever DNS says wins over a tempfail: a retry would only be rejected later.
  let tempfail: PolicyDecision | null = null;
  for (const raw of fromDomains) {
    const author = normalizeDomain(raw);
    if (author === '' || seen.has(author)) continue;
    seen.add(author);
    const rule = rules.get(author);
    if (rule === undefined) continue;
    const counts = (v: VerdictFacts) => !rule.aligned || isAligned(v.domain, author);
    const acceptable = verdicts.filter((v) => v.result === 'pass' && !v.testing);
    if (acceptable.some(counts)) continue;
    if (verdicts.some((v) => v.result === 'temperror' && counts(v))) {
      tempfail ??= { kind: 'tempfail', dryRun, reason: `temporary DNS failure verifying a signature ${author} requires` };
      continue;
    }
    if (acceptable.length > 0) {
      return { kind: 'reject', status: 'not_aligned', domain: author, dryRun, reason: `no signature aligned with ${author}` };
    }
    if (!verdicts.some((v) => v.result === 'pass' || v.result === 'policy')) {
      return { kind: 'reject', status: 'no_passing', domain: author, dryRun, reason: `no passing signature for ${author}` };
    }
    return { kind: 'reject', status: 'none_acceptable', domain: author, dryRun, reason: `no acceptable signature for ${author}` };
  }
  if (tempfail !== null) return tempfail;
  if (policy.onTemperror === 'tempfail' && verdicts.some((v) => v.result === 'temperror') && !verdicts.some((v) => v.result === 'pass')) {
    return { kind: 'tempfail', dryRun, reason: 'temporary DNS failure and no passing signature' };
  }
  return { kind: 'accept' };
}

// A From may name a thousand authors: one lookup each, not a pass over every rule (built once per config).
const RULES_BY_DOMAIN = new WeakMap<PolicyConfig, ReadonlyMap<string, RequireRule>>();

function rulesByDomain(policy: PolicyConfig): ReadonlyMap<string, RequireRule> {
  let rules = RULES_BY_DOMAIN.get(policy);
  if (rules === undefined) {
    const built = new Map<string, RequireRule>();
    // the first rule for a domain decides, as a search in order would
    for (const rule of policy.require) {
      const domain = normalizeDomain(rule.domain);
      if (!built.has(domain)) built.set(domain, rule);
    }
    rules = built;
    RULES_BY_DOMAIN.set(policy, rules);
  }
  return rules;
}

/** Whether d= is the author domain or a parent of it with at least two labels (case-insensitive). */
export function isAligned(signingDomain: string | null, authorDomain: string): boolean {
  if (signingDomain === null) return false;
  const d = normalizeDomain(signingDomain);
  const author = normalizeDomain(authorDomain);
  if (d === '' || author === '') return false;
  if (d === author) return true;
  return d.includes('.') && author.endsWith(`.${d}`);
}
