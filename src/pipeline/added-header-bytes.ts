// How many bytes dkimgate may add to a message's header (DKIM-Signature fields or our Authentication-Results), known
// before the message arrives, so the SIZE declared to the next hop covers what it will receive. Pure.

import { maxAuthResultsBytes } from '../auth-results/format-auth-results.js';
import { estimateSignatureFieldBytes } from '../dkim/sign.js';
import type { KeyStore } from '../keys/key-store.js';

/** The larger of: the signatures of the configured domain that adds the most, and our A-R for max_signatures. */
export function maxAddedHeaderBytes(keys: KeyStore, authservId: string, verify: { enabled: boolean; maxSignatures: number }): number {
  let signing = 0;
  for (const entries of keys.byFromDomain.values()) {
    let sum = 0;
    for (const e of entries) sum += estimateSignatureFieldBytes(e.signer, e.keyBits);
    signing = Math.max(signing, sum);
  }
  const verifying = verify.enabled ? maxAuthResultsBytes(authservId, verify.maxSignatures) : 0;
  return Math.max(signing, verifying);
}
