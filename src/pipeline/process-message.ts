// One message between reception and relay, without SMTP types: decide sign or verify when the header
// is complete, then sign or verify once the body is hashed, and say what to prepend and remove.
// Input: a framed header of untrusted bytes and body hashes; DNS through ctx.lookupTxt; keys from the store.

import type { Cidr } from '../config/address-syntax.js';
import type { PolicyConfig } from '../config/config.js';
import { formatAuthResults } from '../auth-results/format-auth-results.js';
import { findOurAuthResults } from '../auth-results/remove-auth-results.js';
import type { BodyHasher, BodyHashSpec } from '../dkim/body-hasher.js';
import { bodyHashSpecs, signFramed } from '../dkim/sign.js';
import type { TxtLookup } from '../dkim/txt-lookup.js';
import { completeVerification, planVerification, type SignatureVerdict, type VerificationPlan } from '../dkim/verify.js';
import type { KeyStore, SignerEntry } from '../keys/key-store.js';
import { everyDomain, firstDomains, fromMailboxDomains } from '../mail/author-domains.js';
import type { FramedMessage, HeaderField } from '../mail/header-fields.js';
import { applyVerifyPolicy, type PolicyDecision } from '../policy/apply-verify-policy.js';
import type { ClientIdentity } from '../policy/client-identity.js';
import { decideSigning, type AllowedDomains, type SignDecision } from '../policy/decide-signing.js';

export interface MessageContext {
  client: ClientIdentity;
  relayHosts: readonly Cidr[];
  allowedDomains?: AllowedDomains;
  keys: KeyStore;
  authservId: string;
  verify: { enabled: boolean; maxSignatures: number; minKeyBits: number; allowSha1: boolean; clockSkewSec: number };
  policy: PolicyConfig;
  lookupTxt: TxtLookup;
  nowSec: () => number;
}

export interface PreparedMessage {
  readonly decision: SignDecision<SignerEntry>;
  readonly plan: VerificationPlan | null;
  /** What the receiver must hash while the body arrives. */
  readonly bodySpecs: BodyHashSpec[];
  readonly authors: (string | null)[];
  /** The domain of every mailbox of every From field: each author is held to policy.require. */
  readonly everyAuthor: string[];
}

export type FinishedMessage =
  | {
      kind: 'relay';
      /** Fields to put at the top (our A-R or DKIM-Signatures), CRLF-terminated. */
      prepend: Buffer;
      /** Existing fields to drop: every A-R carrying our authserv-id (RFC 8601 §5). */
      remove: HeaderField[];
      signedWith: { domain: string; selector: string; algorithm: string }[];
      verdicts: SignatureVerdict[] | null;
      /** A dry-run policy decision that would have rejected or deferred. */
      policy: PolicyDecision | null;
      signMs: number;
      verifyMs: number;
    }
  | { kind: 'refuse'; reason: string }
  | { kind: 'reject'; policy: Extract<PolicyDecision, { kind: 'reject' }>; verdicts: SignatureVerdict[]; verifyMs: number }
  | { kind: 'tempfail'; cause: 'dns' | 'signing'; detail: string; verdicts: SignatureVerdict[] | null; verifyMs: number };

function verifyOptions(ctx: MessageContext, nowSec: number) {
  const v = ctx.verify;
  return { lookupTxt: ctx.lookupTxt, nowSec, maxSignatures: v.maxSignatures, minKeyBits: v.minKeyBits, allowSha1: v.allowSha1, clockSkewSec: v.clockSkewSec };
}

/** Called when the header is complete: the sign decision, and for verification the plan (key lookups start now). */
export function prepareMessage(framed: FramedMessage, ctx: MessageContext): PreparedMessage {
  const mailboxes = fromMailboxDomains(framed); // From is read once for both the first and every author
  const authors = firstDomains(mailboxes);
  const everyAuthor = everyDomain(mailboxes);
  const decision = decideSigning({
    client: ctx.client,
    relayHosts: ctx.relayHosts,
    fromDomains: authors.filter((d): d is string => d !== null).length === authors.length ? (authors as string[]) : [],
    allAuthorDomains: everyAuthor,
    selectorsByDomain: ctx.keys.byFromDomain,
    allowedDomains: ctx.allowedDomains,
  });
  if (decision.kind === 'sign') return { decision, plan: null, bodySpecs: bodyHashSpecs(decision.signers.map((e) => e.signer)), authors, everyAuthor };
  if (decision.kind === 'refuse' || !ctx.verify.enabled) return { decision, plan: null, bodySpecs: [], authors, everyAuthor };
  const plan = planVerification(framed, verifyOptions(ctx, ctx.nowSec()));
  // Start the key lookups now, while the body is still arriving; completeVerification's own lookups
  // then join these (the resolver shares queries in flight and caches answers).
  for (const p of plan.pending) void ctx.lookupTxt(`${p.sig.selector}._domainkey.${p.sig.signingDomain}`);
  return { decision, plan, bodySpecs: plan.bodySpecs, authors, everyAuthor };
}

/** Called when the body is complete and hashed. */
export async function finishMessage(prepared: PreparedMessage, framed: FramedMessage, bodies: BodyHasher, ctx: MessageContext): Promise<FinishedMessage> {
  const remove = findOurAuthResults(framed.fields, framed.buf, ctx.authservId);
  const { decision } = prepared;
  if (decision.kind === 'refuse') return { kind: 'refuse', reason: decision.reason };
  if (decision.kind === 'sign') {
    const started = performance.now();
    // Sign the header as it will be relayed: without the fields we remove (a headerlist may name
    // Authentication-Results), else the signature covers bytes the next hop never sees (invariant 3).
    const removed = new Set(remove);
    const relayed = remove.length === 0 ? framed : { ...framed, fields: framed.fields.filter((f) => !removed.has(f)) };
    const outcome = signFramed(relayed, bodies, decision.signers.map((e) => e.signer), ctx.nowSec());
    const signMs = performance.now() - started;
    // Fail closed: mail that should be signed is never relayed unsigned (reliability.md invariant 8).
    if (outcome.kind === 'error') return { kind: 'tempfail', cause: 'signing', detail: outcome.reason, verdicts: null, verifyMs: 0 };
    return {
      kind: 'relay',
      prepend: Buffer.from(outcome.fields.join(''), 'latin1'),
      remove,
      signedWith: decision.signers.map((e) => ({ domain: e.signingDomain, selector: e.selector, algorithm: e.signer.config.algorithm })),
      verdicts: null,
      policy: null,
      signMs,
      verifyMs: 0,
    };
  }
  if (prepared.plan === null) return { kind: 'relay', prepend: Buffer.alloc(0), remove, signedWith: [], verdicts: null, policy: null, signMs: 0, verifyMs: 0 };
  const started = performance.now();
  const report = await completeVerification(prepared.plan, bodies, verifyOptions(ctx, ctx.nowSec()));
  const verifyMs = performance.now() - started;
  const verdicts = report.signatures;
  // Every mailbox of From is an author (RFC 5322 §3.6.2): "a@other.example, b@bank.example" must not
  // escape a rule for bank.example by naming it second.
  const policy = applyVerifyPolicy(verdicts, prepared.everyAuthor, ctx.policy);
  if (policy.kind === 'reject' && !policy.dryRun) return { kind: 'reject', policy, verdicts, verifyMs };
  if (policy.kind === 'tempfail' && !policy.dryRun) return { kind: 'tempfail', cause: 'dns', detail: policy.reason, verdicts, verifyMs };
  const ar = formatAuthResults(ctx.authservId, verdicts);
  return {
    kind: 'relay',
    prepend: Buffer.from(ar.field, 'latin1'),
    remove,
    signedWith: [],
    verdicts,
    policy: policy.kind === 'accept' ? null : policy,
    signMs: 0,
    verifyMs,
  };
}
