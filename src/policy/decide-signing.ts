// The sign decision for one message: sign (with which keys), verify, or refuse — with a short reason for the log line.
// Pure; input: the client identity (trusted as far as client-identity.ts says), From domains parsed from untrusted headers.

import type { Cidr } from '../config/address-syntax.js';
import type { SignCondition } from '../config/config.js';
import { longestMatch, matchCidrs, type ClientIdentity } from './client-identity.js';
import { normalizeDomainName } from './domain-name.js';

/** What the decision needs to know about one configured key (the key store's entries have these fields). */
export interface SigningCandidate {
  /** The configured From domain (lower case, A-labels): the key store's map key. */
  readonly fromDomain: string;
  /** d=: the domain's base_domain, or the From domain. */
  readonly signingDomain: string;
  /** The domain's sign_condition (already falling back to sign.sign_condition). */
  readonly signCondition: SignCondition;
}

/**
 * Limits on the From domains an identity may sign for. A domain "is allowed" when the From domain equals
 * one of the listed domains or is a subdomain of one (whoever owns example.com owns its subdomains).
 * An identity without an entry is not limited. The limit binds the identity that made the client
 * trusted: the AUTH user when there is one (a relay host's limit then does not apply), else the
 * relay host.
 */
export interface AllowedDomains {
  /** SMTP AUTH user -> the domains it may sign for (users_file's third field). */
  byUser?: ReadonlyMap<string, readonly string[]>;
  /** Relay host blocks -> the domains they may sign for; the most specific block holding the client decides. */
  byHost?: ReadonlyArray<{ readonly cidr: Cidr; readonly domains: readonly string[] }>;
}

export interface SigningInput<E extends SigningCandidate = SigningCandidate> {
  client: ClientIdentity;
  /** The listener's relay_hosts, or the global list; resolved by the caller. */
  relayHosts: readonly Cidr[];
  /** The domain of each From field's address, in header order (lower case); several From fields: never sign. */
  fromDomains: readonly string[];
  /**
   * The domain of every mailbox in From (a From field may name several authors). The identity's limit
   * applies to each that has keys, so the order of the addresses cannot get a message past it.
   */
  allAuthorDomains?: readonly string[];
  /** Configured From domain (lower case, A-labels) -> its keys, in configuration order. */
  selectorsByDomain: ReadonlyMap<string, readonly E[]>;
  allowedDomains?: AllowedDomains;
}

export type SignDecision<E extends SigningCandidate = SigningCandidate> =
  | {
      kind: 'sign';
      /** d= (the base domain when one is configured). */
      domain: string;
      /** The From domain as the message has it (lower case, A-labels). */
      fromDomain: string;
      signers: readonly E[];
      reason: string;
    }
  | { kind: 'verify'; reason: string }
  /** A trusted client sending as a domain it may not sign for (the SMTP layer answers 550 5.7.1). */
  | { kind: 'refuse'; reason: string };

/**
 * Decides, in this order (the first step that does not go on decides, so the reason names it):
 * 1. trust: SMTP AUTH, or (for can_relay) a client address in relay_hosts; an unknown client is never a
 *    relay host. No trust at all -> verify ("client not trusted", "client unknown (proxy sent no ADDR)");
 * 2. exactly one From domain, else verify ("no From domain", "several From fields");
 * 3. the keys: the From domain's own entry, else the longest parent entry that has a base_domain (a
 *    base_domain entry serves its subdomains too, signing as the base domain); none -> verify
 *    ("no key for domain D");
 * 4. the domain's sign_condition: auth_user needs SMTP AUTH (auth_user implies can_relay);
 * 5. the allowed-domains limit of the identity that made the client trusted, for the From domain and for
 *    every other author domain in From that has keys -> refuse;
 * 6. sign ("signing as D (user U)" or "signing as D (relay host A)").
 */
export function decideSigning<E extends SigningCandidate>(input: SigningInput<E>): SignDecision<E> {
  const { client, relayHosts, fromDomains, selectorsByDomain, allowedDomains } = input;
  const authUser = client.authUser !== null && client.authUser !== '' ? client.authUser : null;
  const relayHost = client.address !== null && matchCidrs(client.address, relayHosts) ? client.address : null;
  if (authUser === null && relayHost === null) {
    if (client.address === null) {
      return { kind: 'verify', reason: client.via === 'xforward' ? 'client unknown (proxy sent no ADDR)' : 'client unknown' };
    }
    return { kind: 'verify', reason: 'client not trusted' };
  }
  if (fromDomains.length > 1) return { kind: 'verify', reason: 'several From fields' };
  const fromDomain = normalizeDomain(fromDomains[0] ?? '');
  if (fromDomain === null) return { kind: 'verify', reason: 'no From domain' };
  const signers = findSigners(fromDomain, selectorsByDomain);
  const first = signers?.[0];
  if (signers === undefined || first === undefined) return { kind: 'verify', reason: `no key for domain ${fromDomain}` };
  if (first.signCondition === 'auth_user' && authUser === null) {
    return { kind: 'verify', reason: 'client not trusted (auth_user required)' };
  }
  const identity = authUser !== null ? `user ${authUser}` : `relay host ${relayHost ?? ''}`;
  const allowed =
    authUser !== null
      ? (allowedDomains?.byUser?.get(authUser) ?? null)
      : (longestMatch(relayHost ?? '', allowedDomains?.byHost ?? [])?.domains ?? null);
  if (allowed !== null) {
    const authors = [fromDomain, ...(input.allAuthorDomains ?? []).map(normalizeDomain)];
    const forbidden = authors.find((d) => d !== null && !isAllowed(d, allowed) && findSigners(d, selectorsByDomain) !== undefined);
    if (forbidden) return { kind: 'refuse', reason: `${identity} may not sign for ${forbidden}` };
  }
  const domain = first.signingDomain.toLowerCase();
  return { kind: 'sign', domain, fromDomain, signers, reason: `signing as ${domain} (${identity})` };
}

/** The keys for a From domain: its own entry, else the longest parent entry configured with a base_domain. */
export function findSigners<E extends SigningCandidate>(fromDomain: string, selectorsByDomain: ReadonlyMap<string, readonly E[]>): readonly E[] | undefined {
  const own = selectorsByDomain.get(fromDomain);
  if (own !== undefined && own.length > 0) return own;
  for (let dot = fromDomain.indexOf('.'); dot !== -1; dot = fromDomain.indexOf('.', dot + 1)) {
    const parent = fromDomain.slice(dot + 1);
    const entries = selectorsByDomain.get(parent);
    const first = entries?.[0];
    if (first !== undefined && first.signingDomain.toLowerCase() !== parent) return entries;
  }
  return undefined;
}

/** Whether `domain` equals or lies under one of `allowed` (case-insensitive; trailing dots ignored). */
export function isAllowed(domain: string, allowed: readonly string[]): boolean {
  for (const entry of allowed) {
    const a = normalizeDomain(entry);
    if (a !== null && (domain === a || domain.endsWith(`.${a}`))) return true;
  }
  return false;
}

/** Lower case, A-labels (also from a UTF-8 From), no trailing dot; null for an empty name. */
function normalizeDomain(text: string): string | null {
  const domain = normalizeDomainName(text);
  return domain === '' ? null : domain;
}
