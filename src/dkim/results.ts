// The one home of the mapping from verification reasons to RFC 8601 dkim= results
// (interface.md §2). Pure data; the verifier reports reasons, this table decides results.

/** RFC 8601 §2.7.1 dkim= result values. */
export type DkimResult = 'none' | 'pass' | 'fail' | 'policy' | 'neutral' | 'temperror' | 'permerror';

/** Why a signature did not pass. Stable codes: logs, metrics and the JSON output use them. */
export type VerifyReason =
  // (1) beyond verify.max_signatures
  | 'not_evaluated'
  // (2) signature syntax
  | 'missing_tag'
  | 'duplicate_tag'
  | 'bad_tag_syntax'
  | 'bad_version'
  | 'unknown_algorithm'
  | 'unknown_canonicalization'
  | 'bad_tag_value'
  | 'identity_outside_domain'
  | 'bad_base64'
  | 'header_too_large'
  // (3) more than one From field
  | 'multiple_from'
  // (4)
  | 'no_from'
  | 'from_not_signed'
  // (5)
  | 'sha1_not_allowed'
  // (6)
  | 'signature_expired'
  | 'timestamp_in_future'
  // (7) key lookup
  | 'dns_timeout'
  | 'dns_servfail'
  | 'no_key'
  // (8) key record
  | 'key_syntax'
  | 'key_record_too_large'
  | 'key_revoked'
  | 'key_type_mismatch'
  | 'key_hash_mismatch'
  | 'key_service_mismatch'
  | 'key_strict_subdomain'
  // (9)
  | 'key_too_small'
  | 'key_too_large'
  // (10)
  | 'body_hash_mismatch'
  // (11)
  | 'signature_mismatch'
  // (12)
  | 'body_length_short';

/** Total table: every reason has exactly one result (interface.md §2). */
export const RESULT_BY_REASON: Readonly<Record<VerifyReason, DkimResult>> = {
  not_evaluated: 'neutral',
  missing_tag: 'neutral',
  duplicate_tag: 'neutral',
  bad_tag_syntax: 'neutral',
  bad_version: 'neutral',
  unknown_algorithm: 'neutral',
  unknown_canonicalization: 'neutral',
  bad_tag_value: 'neutral',
  identity_outside_domain: 'neutral',
  bad_base64: 'neutral',
  header_too_large: 'neutral',
  multiple_from: 'policy',
  no_from: 'permerror',
  from_not_signed: 'permerror',
  sha1_not_allowed: 'policy',
  signature_expired: 'policy',
  timestamp_in_future: 'policy',
  dns_timeout: 'temperror',
  dns_servfail: 'temperror',
  no_key: 'permerror',
  key_syntax: 'permerror',
  key_record_too_large: 'permerror',
  key_revoked: 'permerror',
  key_type_mismatch: 'permerror',
  key_hash_mismatch: 'permerror',
  key_service_mismatch: 'permerror',
  key_strict_subdomain: 'permerror',
  key_too_small: 'policy',
  key_too_large: 'policy',
  body_hash_mismatch: 'fail',
  signature_mismatch: 'fail',
  body_length_short: 'policy',
};

/** Short lower-case phrases for the A-R comment and the CLI (suggestions of interface.md §2). */
export const PHRASE_BY_REASON: Readonly<Record<VerifyReason, string>> = {
  not_evaluated: 'too many signatures, not evaluated',
  missing_tag: 'signature lacks a required tag',
  duplicate_tag: 'signature has a duplicated tag',
  bad_tag_syntax: 'signature tag list is malformed',
  bad_version: 'unsupported signature version',
  unknown_algorithm: 'unknown signature algorithm',
  unknown_canonicalization: 'unknown canonicalization',
  bad_tag_value: 'bad signature tag value',
  identity_outside_domain: 'i= not within d=',
  bad_base64: 'bad base64 in signature',
  header_too_large: 'signature field too large',
  multiple_from: 'message has more than one from field',
  no_from: 'message has no from field',
  from_not_signed: 'from field not signed',
  sha1_not_allowed: 'rsa-sha1 not allowed',
  signature_expired: 'signature expired',
  timestamp_in_future: 'signature timestamp in the future',
  dns_timeout: 'key lookup timed out',
  dns_servfail: 'key lookup failed',
  no_key: 'no key for signature',
  key_syntax: 'key record malformed',
  key_record_too_large: 'key record too large',
  key_revoked: 'key revoked',
  key_type_mismatch: 'key type does not match algorithm',
  key_hash_mismatch: 'key does not allow the hash algorithm',
  key_service_mismatch: 'key not for email',
  key_strict_subdomain: 'key forbids subdomain identity',
  key_too_small: 'key too small',
  key_too_large: 'key too large',
  body_hash_mismatch: 'body hash did not verify',
  signature_mismatch: 'signature did not verify',
  body_length_short: 'l= does not cover the whole body',
};

export function resultForReason(reason: VerifyReason | null): DkimResult {
  return reason === null ? 'pass' : RESULT_BY_REASON[reason];
}
