// The DKIM interop table: base messages (CRLF, built byte-exact here), signing chains, tamperings
// and the verdict each verifier must give. Pure data; interop.test.ts runs it against real peers.

export type Peer = 'dkimgate' | 'dkimpy' | 'mailDkim';
export type Verifier = Peer;
export type KeyName = 'rsa' | 'ed' | 'rsaOrg';
export type Canon = 'simple/simple' | 'simple/relaxed' | 'relaxed/simple' | 'relaxed/relaxed';
export type Algorithm = 'rsa-sha256' | 'rsa-sha1' | 'ed25519-sha256';

/** Signing domain and selector of each per-run key (published through the loopback DNS server). */
export const KEY_IDS: Readonly<Record<KeyName, { domain: string; selector: string; type: 'rsa' | 'ed25519' }>> = {
  rsa: { domain: 'example.com', selector: 'rsa2026', type: 'rsa' },
  ed: { domain: 'example.com', selector: 'ed2026', type: 'ed25519' },
  rsaOrg: { domain: 'example.org', selector: 'org1', type: 'rsa' },
};

/** One signer in a chain; every step prepends one DKIM-Signature field to the previous output. */
export interface SignStep {
  by: Peer;
  key: KeyName;
  algorithm?: Algorithm; // default: rsa-sha256 for RSA keys, ed25519-sha256 for 'ed'
  canon?: Canon; // default relaxed/relaxed
  headers?: readonly string[]; // exact h= list, bottom-up; a repeated name oversigns it
  length?: boolean; // l=
  identity?: string; // i=
  lifetimeHours?: number; // x= = t= + hours * 3600
  clockOffsetSec?: number; // t= relative to the run's clock (negative: signed in the past)
  copyHeaders?: boolean; // z= (dkimgate only; the peers ignore z= when verifying)
}

export type MessageName = 'plain' | 'canon' | 'utf8' | 'emptyBody' | 'noFinalCrlf' | 'oddHeaders' | 'wspBeforeColon' | 'blankBody' | 'bigBody';
export type Mutation =
  | 'bodyChanged' // one body character changed (or text added to an empty body)
  | 'subjectChanged' // the signed Subject field's value replaced
  | 'fromAddedAbove' // a second From field added at the top
  | 'footerAppended' // a list footer appended to the body
  | 'subjectRefolded' // whitespace-only change of Subject: extra blanks and a fold
  | 'xTagsSwapped' // the two signed X-Tag fields change places
  | 'ccAdded'; // a Cc field appears that the signature asserted absent

/**
 * Expected verdict per signature, top first. dkimgate: 'pass' or 'result:reason_code'
 * (e.g. 'fail:body_hash_mismatch'). dkimpy: 'pass' | 'fail'. Mail::DKIM: its result word
 * ('pass', 'fail', 'invalid', ...), optionally with '~detail-substring'.
 */
export type Expected = string;

export interface InteropCase {
  name: string;
  message: MessageName;
  sign: readonly SignStep[];
  mutate?: Mutation;
  verifier: Verifier;
  expect: readonly Expected[];
  /** Extra fields the dkimgate verdicts must carry (verifier dkimgate only), top first. */
  gateFields?: ReadonlyArray<Record<string, string | number | boolean | null>>;
}

const CRLF = '\r\n';
const lines = (...l: string[]): string => l.join(CRLF);

/** ~256 KiB body, deterministic: long lines, trailing blanks, tabs, blank runs (streaming hashers). */
function bigBody(): string {
  const out: string[] = [];
  for (let i = 0; i < 2600; i++) {
    const word = `w${(i * 7919) % 10007}`;
    const pad = ' '.repeat(i % 5) + (i % 3 === 0 ? '\t' : '');
    out.push(i % 11 === 0 ? pad : `${word}${pad}${'x'.repeat(i % 97)}\t ${word.repeat(1 + (i % 7))}${pad}`);
  }
  return out.join(CRLF);
}

/** Base messages; every one is valid RFC 5322 (or RFC 6532 for utf8) with CRLF line endings. */
export const MESSAGES: Readonly<Record<MessageName, Buffer>> = {
  plain: Buffer.from(
    lines(
      'From: Alice Example <alice@example.com>',
      'To: Bob <bob@example.net>',
      'Subject: Quarterly report for the board',
      'Date: Mon, 02 Feb 2026 10:00:00 +0000',
      'Message-ID: <plain.1@example.com>',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=us-ascii',
      '',
      'Hello Bob,',
      '',
      'the numbers are attached.',
      '',
      '-- ',
      'Alice',
      '',
    ),
    'utf8',
  ),
  // Folded and whitespace-heavy header fields, trailing blanks, blank-only and trailing empty lines.
  canon: Buffer.from(
    lines(
      'From: "Alice  Example" <alice@example.com>',
      'To: bob@example.net,',
      '\tcarol@example.net,',
      '    dave@example.net',
      'Subject:   Folded    subject line  ',
      '  that continues\there   ',
      'Date: Mon, 02 Feb 2026 10:00:00 +0000',
      'Message-ID: <canon.1@example.com>',
      'X-Spaces:\tvalue\twith  \t tabs and  spaces   ',
      '',
      'Line one has trailing spaces   ',
      '\tTabbed  line\twith\tinner tabs\t',
      '   ',
      'Line after a whitespace-only line',
      ' leading space line',
      '',
      '',
      '',
      '',
    ),
    'utf8',
  ),
  // RFC 6532 raw UTF-8 in header values and an 8bit body, including U+00A0 (not WSP).
  utf8: Buffer.from(
    lines(
      'From: "Jürgen Müller" <juergen@example.com>',
      'To: Zoë Ångström <zoe@example.net>',
      'Subject: Grüße aus Köln – 日本語のテスト 🎉',
      'Date: Mon, 02 Feb 2026 10:00:00 +0000',
      'Message-ID: <utf8.1@example.com>',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      'Grüße, Zoë!',
      'Ünïcödé body with emoji 🎉 and CJK 日本語.  ',
      'No-break space here:[\u00a0] and after it\u00a0',
      '',
    ),
    'utf8',
  ),
  emptyBody: Buffer.from(
    lines(
      'From: Alice Example <alice@example.com>',
      'To: Bob <bob@example.net>',
      'Subject: Empty body ping',
      'Date: Mon, 02 Feb 2026 10:00:00 +0000',
      'Message-ID: <empty.1@example.com>',
      '',
      '',
    ),
    'utf8',
  ),
  // The last body line has no CRLF (canonicalization must add one).
  noFinalCrlf: Buffer.from(
    lines(
      'From: Alice Example <alice@example.com>',
      'To: Bob <bob@example.net>',
      'Subject: No final line break',
      'Date: Mon, 02 Feb 2026 10:00:00 +0000',
      'Message-ID: <nofinal.1@example.com>',
      '',
      'first line',
      'last line without CRLF',
    ),
    'utf8',
  ),
  // Odd but valid header syntax: upper/lower-case names, an empty value, one name twice (signed
  // bottom-up), a value longer than one folded line.
  oddHeaders: Buffer.from(
    lines(
      'FROM: Alice Example <alice@example.com>',
      'to: bob@example.net',
      'SUBJECT: Upper-case field name',
      'X-Tag: first',
      'Date: Mon, 02 Feb 2026 10:00:00 +0000',
      'message-id: <odd.1@example.com>',
      'X-Tag: second',
      'X-Empty:',
      `X-Long: ${Array.from({ length: 12 }, (_, i) => `segment-${i}-${'a'.repeat(60)}`).join('\r\n ')}`,
      '',
      'Body of the odd-header message.',
      '',
    ),
    'utf8',
  ),
  // RFC 5322 obs-optional: WSP between field name and colon (relaxed removes it, RFC 6376 §3.4.2).
  // dkimpy 1.1.4 refuses to parse it (MessageFormatError), so only Mail::DKIM is a peer here.
  wspBeforeColon: Buffer.from(
    lines(
      'From: Alice Example <alice@example.com>',
      'To: Bob <bob@example.net>',
      'Subject\t : Spaced name before the colon',
      'Date: Mon, 02 Feb 2026 10:00:00 +0000',
      'Message-ID: <wsp.1@example.com>',
      '',
      'Body.',
      '',
    ),
    'utf8',
  ),
  // Only blank lines with whitespace: relaxed makes it the empty body, simple keeps it.
  blankBody: Buffer.from(
    lines(
      'From: Alice Example <alice@example.com>',
      'To: Bob <bob@example.net>',
      'Subject: Blank body',
      'Date: Mon, 02 Feb 2026 10:00:00 +0000',
      'Message-ID: <blank.1@example.com>',
      '',
      '   ',
      '\t',
      ' \t ',
      '',
      '',
    ),
    'utf8',
  ),
  bigBody: Buffer.from(
    lines(
      'From: Alice Example <alice@example.com>',
      'To: Bob <bob@example.net>',
      'Subject: A large body',
      'Date: Mon, 02 Feb 2026 10:00:00 +0000',
      'Message-ID: <big.1@example.com>',
      '',
      bigBody(),
      '',
      '',
    ),
    'utf8',
  ),
};

/** h= lists (bottom-up instance selection, RFC 6376 §5.4.2). */
export const HEADERS: Readonly<Record<MessageName | 'oversigned', readonly string[]>> = {
  plain: ['From', 'To', 'Subject', 'Date', 'Message-ID', 'MIME-Version', 'Content-Type'],
  canon: ['From', 'To', 'Subject', 'Date', 'Message-ID', 'X-Spaces'],
  utf8: ['From', 'To', 'Subject', 'Date', 'Message-ID', 'Content-Type'],
  emptyBody: ['From', 'To', 'Subject', 'Date', 'Message-ID'],
  noFinalCrlf: ['From', 'To', 'Subject', 'Date', 'Message-ID'],
  oversigned: ['From', 'From', 'To', 'Subject', 'Subject', 'Date', 'Message-ID'],
  oddHeaders: ['From', 'To', 'Subject', 'X-Tag', 'X-Tag', 'Date', 'Message-ID', 'X-Empty', 'X-Long'],
  wspBeforeColon: ['From', 'To', 'Subject', 'Date', 'Message-ID'],
  blankBody: ['From', 'To', 'Subject', 'Date', 'Message-ID'],
  bigBody: ['From', 'To', 'Subject', 'Date', 'Message-ID'],
};

export const CANONS: readonly Canon[] = ['simple/simple', 'simple/relaxed', 'relaxed/simple', 'relaxed/relaxed'];

const PEER_NAME: Record<Peer, string> = { dkimgate: 'dkimgate', dkimpy: 'dkimpy', mailDkim: 'Mail::DKIM' };

function describeStep(s: SignStep): string {
  const alg = s.algorithm ?? (KEY_IDS[s.key].type === 'ed25519' ? 'ed25519-sha256' : 'rsa-sha256');
  const extra = [
    s.length ? 'l=' : '',
    s.lifetimeHours !== undefined ? `x=+${s.lifetimeHours}h` : '',
    s.clockOffsetSec ? `t=${s.clockOffsetSec}s` : '',
    s.identity ? `i=${s.identity}` : '',
    s.copyHeaders ? 'z=' : '',
    s.headers?.includes('Cc') ? 'Cc signed as absent' : '',
    s.headers && s.headers.join(':').toLowerCase().includes('from:from') ? 'oversigned' : '',
  ].filter(Boolean);
  return `${PEER_NAME[s.by]} signs (${alg} ${s.canon ?? 'relaxed/relaxed'} d=${KEY_IDS[s.key].domain}${extra.length ? ' ' + extra.join(' ') : ''})`;
}

function nameOf(c: Omit<InteropCase, 'name'>): string {
  const chain = c.sign.map(describeStep).join(', then ');
  const mut = c.mutate ? `, ${c.mutate}` : '';
  return `${c.message}: ${chain}${mut}; ${PEER_NAME[c.verifier]} says ${c.expect.join(' + ')}`;
}

function mk(c: Omit<InteropCase, 'name'>): InteropCase {
  return { name: nameOf(c), ...c };
}

const cases: InteropCase[] = [];
const add = (c: Omit<InteropCase, 'name'>): void => {
  cases.push(mk(c));
};

// A. Canonicalization matrix on the folded/whitespace message, RSA, all four directions.
for (const canon of CANONS) {
  const headers = HEADERS.canon;
  add({ message: 'canon', sign: [{ by: 'dkimpy', key: 'rsa', canon, headers }], verifier: 'dkimgate', expect: ['pass'],
    gateFields: [{ canonicalization: canon, algorithm: 'rsa-sha256', domain: 'example.com', selector: 'rsa2026', keyBits: 2048 }] });
  add({ message: 'canon', sign: [{ by: 'mailDkim', key: 'rsa', canon, headers }], verifier: 'dkimgate', expect: ['pass'],
    gateFields: [{ canonicalization: canon }] });
  add({ message: 'canon', sign: [{ by: 'dkimgate', key: 'rsa', canon, headers }], verifier: 'dkimpy', expect: ['pass'] });
  add({ message: 'canon', sign: [{ by: 'dkimgate', key: 'rsa', canon, headers }], verifier: 'mailDkim', expect: ['pass'] });
}

// B. Ed25519 (RFC 8463). Mail::DKIM 1.20230212 has no Ed25519: it is covered in the multi-signature rows.
for (const canon of ['relaxed/relaxed', 'simple/simple'] as const) {
  add({ message: 'canon', sign: [{ by: 'dkimpy', key: 'ed', canon, headers: HEADERS.canon }], verifier: 'dkimgate', expect: ['pass'],
    gateFields: [{ algorithm: 'ed25519-sha256', selector: 'ed2026' }] });
  add({ message: 'canon', sign: [{ by: 'dkimgate', key: 'ed', canon, headers: HEADERS.canon }], verifier: 'dkimpy', expect: ['pass'] });
}
add({ message: 'utf8', sign: [{ by: 'dkimpy', key: 'ed', headers: HEADERS.utf8 }], verifier: 'dkimgate', expect: ['pass'] });
add({ message: 'utf8', sign: [{ by: 'dkimgate', key: 'ed', headers: HEADERS.utf8 }], verifier: 'dkimpy', expect: ['pass'] });

// C. l= body length.
{
  const s = (by: Peer): SignStep => ({ by, key: 'rsa', canon: 'relaxed/simple', headers: HEADERS.plain, length: true });
  add({ message: 'plain', sign: [s('dkimpy')], verifier: 'dkimgate', expect: ['pass'] });
  add({ message: 'plain', sign: [s('mailDkim')], verifier: 'dkimgate', expect: ['pass'] });
  add({ message: 'plain', sign: [s('dkimgate')], verifier: 'dkimpy', expect: ['pass'] });
  add({ message: 'plain', sign: [s('dkimgate')], verifier: 'mailDkim', expect: ['pass'] });
  // Content appended after l=: peers accept it (RFC 6376 §3.5), dkimgate's policy is not to.
  add({ message: 'plain', sign: [s('dkimpy')], mutate: 'footerAppended', verifier: 'dkimgate', expect: ['policy:body_length_short'] });
  add({ message: 'plain', sign: [s('mailDkim')], mutate: 'footerAppended', verifier: 'dkimgate', expect: ['policy:body_length_short'] });
  add({ message: 'plain', sign: [s('dkimgate')], mutate: 'footerAppended', verifier: 'dkimpy', expect: ['pass'] });
  add({ message: 'plain', sign: [s('dkimgate')], mutate: 'footerAppended', verifier: 'mailDkim', expect: ['pass'] });
  // l= over relaxed body canonicalization, and l= on the empty body.
  const r = (by: Peer): SignStep => ({ by, key: 'rsa', canon: 'relaxed/relaxed', headers: HEADERS.canon, length: true });
  add({ message: 'canon', sign: [r('dkimpy')], verifier: 'dkimgate', expect: ['pass'] });
  add({ message: 'canon', sign: [r('dkimgate')], verifier: 'mailDkim', expect: ['pass'] });
  const e = (by: Peer, canon: Canon): SignStep => ({ by, key: 'rsa', canon, headers: HEADERS.emptyBody, length: true });
  add({ message: 'emptyBody', sign: [e('dkimpy', 'simple/simple')], verifier: 'dkimgate', expect: ['pass'] });
  add({ message: 'emptyBody', sign: [e('dkimgate', 'simple/simple')], verifier: 'dkimpy', expect: ['pass'] });
  add({ message: 'emptyBody', sign: [e('dkimgate', 'relaxed/relaxed')], verifier: 'mailDkim', expect: ['pass'] });
  add({ message: 'emptyBody', sign: [e('mailDkim', 'simple/simple')], verifier: 'dkimgate', expect: ['pass'] });
}

// D. x= expiry (future: pass; in the past: policy at dkimgate, rejected by the peers).
{
  const f = (by: Peer): SignStep => ({ by, key: 'rsa', headers: HEADERS.plain, lifetimeHours: 24 });
  add({ message: 'plain', sign: [f('dkimpy')], verifier: 'dkimgate', expect: ['pass'] });
  add({ message: 'plain', sign: [f('mailDkim')], verifier: 'dkimgate', expect: ['pass'] });
  add({ message: 'plain', sign: [f('dkimgate')], verifier: 'dkimpy', expect: ['pass'] });
  add({ message: 'plain', sign: [f('dkimgate')], verifier: 'mailDkim', expect: ['pass'] });
  const p = (by: Peer): SignStep => ({ by, key: 'rsa', headers: HEADERS.plain, lifetimeHours: 1, clockOffsetSec: -172_800 });
  add({ message: 'plain', sign: [p('dkimpy')], verifier: 'dkimgate', expect: ['policy:signature_expired'] });
  add({ message: 'plain', sign: [p('mailDkim')], verifier: 'dkimgate', expect: ['policy:signature_expired'] });
  add({ message: 'plain', sign: [p('dkimgate')], verifier: 'dkimpy', expect: ['fail'] });
  add({ message: 'plain', sign: [p('dkimgate')], verifier: 'mailDkim', expect: ['invalid~expired'] });
}

// E. Several signatures on one message (the last step is the top field).
{
  const rsa = (by: Peer): SignStep => ({ by, key: 'rsa', headers: HEADERS.plain });
  const ed = (by: Peer): SignStep => ({ by, key: 'ed', headers: HEADERS.plain });
  const org = (by: Peer): SignStep => ({ by, key: 'rsaOrg', canon: 'simple/simple', headers: HEADERS.plain });
  add({ message: 'plain', sign: [rsa('dkimpy'), ed('dkimpy')], verifier: 'dkimgate', expect: ['pass', 'pass'],
    gateFields: [{ algorithm: 'ed25519-sha256' }, { algorithm: 'rsa-sha256' }] });
  add({ message: 'plain', sign: [rsa('mailDkim'), org('mailDkim')], verifier: 'dkimgate', expect: ['pass', 'pass'],
    gateFields: [{ domain: 'example.org' }, { domain: 'example.com' }] });
  add({ message: 'plain', sign: [rsa('dkimgate'), ed('dkimgate')], verifier: 'dkimpy', expect: ['pass', 'pass'] });
  add({ message: 'plain', sign: [rsa('dkimgate'), ed('dkimgate')], verifier: 'mailDkim',
    expect: ['invalid~unsupported algorithm ed25519-sha256', 'pass'] });
  // Mixed chains: a peer signs what dkimgate signed and the other way round.
  add({ message: 'plain', sign: [org('dkimgate'), rsa('dkimpy')], verifier: 'dkimgate', expect: ['pass', 'pass'] });
  add({ message: 'plain', sign: [org('dkimgate'), rsa('dkimpy')], verifier: 'mailDkim', expect: ['pass', 'pass'] });
  add({ message: 'plain', sign: [org('mailDkim'), ed('dkimgate')], verifier: 'dkimpy', expect: ['pass', 'pass'] });
  // One signature broken, the other intact: each is judged on its own.
  add({ message: 'plain', sign: [rsa('dkimpy'), { by: 'dkimgate', key: 'rsaOrg', headers: ['From'] }], mutate: 'subjectChanged',
    verifier: 'dkimgate', expect: ['pass', 'fail:signature_mismatch'] });
}

// F. Oversigned headers (From:From, Subject:Subject) and a From added above.
{
  const o = (by: Peer): SignStep => ({ by, key: 'rsa', headers: HEADERS.oversigned });
  add({ message: 'plain', sign: [o('dkimpy')], verifier: 'dkimgate', expect: ['pass'] });
  add({ message: 'plain', sign: [o('mailDkim')], verifier: 'dkimgate', expect: ['pass'] });
  add({ message: 'plain', sign: [o('dkimgate')], verifier: 'dkimpy', expect: ['pass'] });
  add({ message: 'plain', sign: [o('dkimgate')], verifier: 'mailDkim', expect: ['pass'] });
  add({ message: 'plain', sign: [o('dkimpy')], mutate: 'fromAddedAbove', verifier: 'dkimgate', expect: ['policy:multiple_from'] });
  add({ message: 'plain', sign: [o('mailDkim')], mutate: 'fromAddedAbove', verifier: 'dkimgate', expect: ['policy:multiple_from'] });
  add({ message: 'plain', sign: [o('dkimgate')], mutate: 'fromAddedAbove', verifier: 'dkimpy', expect: ['fail'] });
  add({ message: 'plain', sign: [o('dkimgate')], mutate: 'fromAddedAbove', verifier: 'mailDkim', expect: ['fail'] });
}

// G. Folded headers re-folded in transit: relaxed header canonicalization survives, simple does not.
{
  const s = (by: Peer, canon: Canon): SignStep => ({ by, key: 'rsa', canon, headers: HEADERS.plain });
  add({ message: 'plain', sign: [s('dkimpy', 'relaxed/simple')], mutate: 'subjectRefolded', verifier: 'dkimgate', expect: ['pass'] });
  add({ message: 'plain', sign: [s('mailDkim', 'relaxed/relaxed')], mutate: 'subjectRefolded', verifier: 'dkimgate', expect: ['pass'] });
  add({ message: 'plain', sign: [s('dkimgate', 'relaxed/simple')], mutate: 'subjectRefolded', verifier: 'dkimpy', expect: ['pass'] });
  add({ message: 'plain', sign: [s('dkimgate', 'relaxed/relaxed')], mutate: 'subjectRefolded', verifier: 'mailDkim', expect: ['pass'] });
  add({ message: 'plain', sign: [s('dkimpy', 'simple/simple')], mutate: 'subjectRefolded', verifier: 'dkimgate', expect: ['fail:signature_mismatch'] });
  add({ message: 'plain', sign: [s('dkimgate', 'simple/relaxed')], mutate: 'subjectRefolded', verifier: 'dkimpy', expect: ['fail'] });
  add({ message: 'plain', sign: [s('dkimgate', 'simple/simple')], mutate: 'subjectRefolded', verifier: 'mailDkim', expect: ['fail'] });
}

// H. 8-bit UTF-8 header values and body.
for (const canon of ['relaxed/relaxed', 'simple/simple'] as const) {
  const s = (by: Peer): SignStep => ({ by, key: 'rsa', canon, headers: HEADERS.utf8 });
  add({ message: 'utf8', sign: [s('dkimpy')], verifier: 'dkimgate', expect: ['pass'] });
  add({ message: 'utf8', sign: [s('mailDkim')], verifier: 'dkimgate', expect: ['pass'] });
  add({ message: 'utf8', sign: [s('dkimgate')], verifier: 'dkimpy', expect: ['pass'] });
  add({ message: 'utf8', sign: [s('dkimgate')], verifier: 'mailDkim', expect: ['pass'] });
}

// I. Empty body and a body without a final CRLF. RFC 6376 §3.4.3: "simple" adds the missing CRLF.
// Mail::DKIM 1.20230212 does not (its simple canonicalization hashes the last line as is; dkimpy
// and the RFC add CRLF), so there dkimgate and Mail::DKIM must disagree: each says the other's
// body hash is wrong.
for (const canon of ['simple/simple', 'relaxed/relaxed'] as const) {
  for (const message of ['emptyBody', 'noFinalCrlf'] as const) {
    const s = (by: Peer): SignStep => ({ by, key: 'rsa', canon, headers: HEADERS[message] });
    const mailDkimDeviates = message === 'noFinalCrlf' && canon.endsWith('/simple');
    add({ message, sign: [s('dkimpy')], verifier: 'dkimgate', expect: ['pass'] });
    add({ message, sign: [s('dkimgate')], verifier: 'dkimpy', expect: ['pass'] });
    add({ message, sign: [s('mailDkim')], verifier: 'dkimgate', expect: [mailDkimDeviates ? 'fail:body_hash_mismatch' : 'pass'] });
    add({ message, sign: [s('dkimgate')], verifier: 'mailDkim', expect: [mailDkimDeviates ? 'fail~body has been altered' : 'pass'] });
  }
}

// J. Tampered messages: must fail on both sides.
for (const message of ['plain', 'canon'] as const) {
  const canon: Canon = message === 'plain' ? 'relaxed/relaxed' : 'simple/simple';
  const s = (by: Peer): SignStep => ({ by, key: 'rsa', canon, headers: HEADERS[message] });
  add({ message, sign: [s('dkimpy')], mutate: 'bodyChanged', verifier: 'dkimgate', expect: ['fail:body_hash_mismatch'] });
  add({ message, sign: [s('mailDkim')], mutate: 'bodyChanged', verifier: 'dkimgate', expect: ['fail:body_hash_mismatch'] });
  add({ message, sign: [s('dkimgate')], mutate: 'bodyChanged', verifier: 'dkimpy', expect: ['fail'] });
  add({ message, sign: [s('dkimgate')], mutate: 'bodyChanged', verifier: 'mailDkim', expect: ['fail~body has been altered'] });
  add({ message, sign: [s('dkimpy')], mutate: 'subjectChanged', verifier: 'dkimgate', expect: ['fail:signature_mismatch'] });
  add({ message, sign: [s('mailDkim')], mutate: 'subjectChanged', verifier: 'dkimgate', expect: ['fail:signature_mismatch'] });
  add({ message, sign: [s('dkimgate')], mutate: 'subjectChanged', verifier: 'dkimpy', expect: ['fail'] });
  add({ message, sign: [s('dkimgate')], mutate: 'subjectChanged', verifier: 'mailDkim', expect: ['fail~message has been altered'] });
}
{
  const e = (by: Peer): SignStep => ({ by, key: 'ed', headers: HEADERS.utf8 });
  add({ message: 'utf8', sign: [e('dkimpy')], mutate: 'bodyChanged', verifier: 'dkimgate', expect: ['fail:body_hash_mismatch'] });
  add({ message: 'utf8', sign: [e('dkimgate')], mutate: 'subjectChanged', verifier: 'dkimpy', expect: ['fail'] });
  const m = (by: Peer): SignStep => ({ by, key: 'rsa', canon: 'simple/simple', headers: HEADERS.emptyBody });
  add({ message: 'emptyBody', sign: [m('dkimpy')], mutate: 'bodyChanged', verifier: 'dkimgate', expect: ['fail:body_hash_mismatch'] });
  add({ message: 'emptyBody', sign: [m('dkimgate')], mutate: 'bodyChanged', verifier: 'mailDkim', expect: ['fail~body has been altered'] });
}

// K. i= identity and rsa-sha1 (RFC 8301: dkimgate refuses it by default, peers still accept it).
{
  const i = (by: Peer): SignStep => ({ by, key: 'rsa', headers: HEADERS.plain, identity: 'alice@example.com' });
  add({ message: 'plain', sign: [i('dkimpy')], verifier: 'dkimgate', expect: ['pass'], gateFields: [{ identity: 'alice@example.com' }] });
  add({ message: 'plain', sign: [i('mailDkim')], verifier: 'dkimgate', expect: ['pass'], gateFields: [{ identity: 'alice@example.com' }] });
  add({ message: 'plain', sign: [i('dkimgate')], verifier: 'dkimpy', expect: ['pass'] });
  add({ message: 'plain', sign: [i('dkimgate')], verifier: 'mailDkim', expect: ['pass'] });
  const sha1 = (by: Peer): SignStep => ({ by, key: 'rsa', algorithm: 'rsa-sha1', headers: HEADERS.plain });
  add({ message: 'plain', sign: [sha1('dkimpy')], verifier: 'dkimgate', expect: ['policy:sha1_not_allowed'] });
  add({ message: 'plain', sign: [sha1('mailDkim')], verifier: 'dkimgate', expect: ['policy:sha1_not_allowed'] });
  add({ message: 'plain', sign: [sha1('dkimgate')], verifier: 'dkimpy', expect: ['pass'] });
  add({ message: 'plain', sign: [sha1('dkimgate')], verifier: 'mailDkim', expect: ['pass'] });
}

// L. Odd header syntax, whitespace-only and large bodies, Ed25519 with l=, identity in a subdomain.
for (const canon of CANONS) {
  for (const message of ['oddHeaders', 'blankBody', 'bigBody'] as const) {
    const s = (by: Peer): SignStep => ({ by, key: 'rsa', canon, headers: HEADERS[message] });
    add({ message, sign: [s('dkimpy')], verifier: 'dkimgate', expect: ['pass'] });
    add({ message, sign: [s('dkimgate')], verifier: 'dkimpy', expect: ['pass'] });
    add({ message, sign: [s('mailDkim')], verifier: 'dkimgate', expect: ['pass'] });
    add({ message, sign: [s('dkimgate')], verifier: 'mailDkim', expect: ['pass'] });
  }
}
for (const canon of CANONS) {
  const s = (by: Peer): SignStep => ({ by, key: 'rsa', canon, headers: HEADERS.wspBeforeColon });
  add({ message: 'wspBeforeColon', sign: [s('mailDkim')], verifier: 'dkimgate', expect: ['pass'] });
  add({ message: 'wspBeforeColon', sign: [s('dkimgate')], verifier: 'mailDkim', expect: ['pass'] });
}
{
  const s = (by: Peer): SignStep => ({ by, key: 'rsa', canon: 'relaxed/relaxed', headers: HEADERS.oddHeaders });
  add({ message: 'oddHeaders', sign: [s('dkimpy')], mutate: 'xTagsSwapped', verifier: 'dkimgate', expect: ['fail:signature_mismatch'] });
  add({ message: 'oddHeaders', sign: [s('mailDkim')], mutate: 'xTagsSwapped', verifier: 'dkimgate', expect: ['fail:signature_mismatch'] });
  add({ message: 'oddHeaders', sign: [s('dkimgate')], mutate: 'xTagsSwapped', verifier: 'dkimpy', expect: ['fail'] });
  add({ message: 'oddHeaders', sign: [s('dkimgate')], mutate: 'xTagsSwapped', verifier: 'mailDkim', expect: ['fail~message has been altered'] });
  const b = (by: Peer): SignStep => ({ by, key: 'rsa', canon: 'simple/relaxed', headers: HEADERS.bigBody });
  add({ message: 'bigBody', sign: [b('dkimpy')], mutate: 'bodyChanged', verifier: 'dkimgate', expect: ['fail:body_hash_mismatch'] });
  add({ message: 'bigBody', sign: [b('dkimgate')], mutate: 'bodyChanged', verifier: 'mailDkim', expect: ['fail~body has been altered'] });
  const el = (by: Peer): SignStep => ({ by, key: 'ed', canon: 'relaxed/simple', headers: HEADERS.canon, length: true });
  add({ message: 'canon', sign: [el('dkimpy')], verifier: 'dkimgate', expect: ['pass'] });
  add({ message: 'canon', sign: [el('dkimgate')], verifier: 'dkimpy', expect: ['pass'] });
  const sub = (by: Peer): SignStep => ({ by, key: 'rsa', headers: HEADERS.plain, identity: 'alice@mail.example.com' });
  add({ message: 'plain', sign: [sub('dkimpy')], verifier: 'dkimgate', expect: ['pass'], gateFields: [{ identity: 'alice@mail.example.com' }] });
  add({ message: 'plain', sign: [sub('dkimgate')], verifier: 'dkimpy', expect: ['pass'] });
  add({ message: 'plain', sign: [sub('dkimgate')], verifier: 'mailDkim', expect: ['pass'] });
}

// M. z= copied header fields (peers must ignore them) and a header signed as absent, then added.
for (const message of ['utf8', 'canon'] as const) {
  const z: SignStep = { by: 'dkimgate', key: 'rsa', headers: HEADERS[message], copyHeaders: true };
  add({ message, sign: [z], verifier: 'dkimpy', expect: ['pass'] });
  add({ message, sign: [z], verifier: 'mailDkim', expect: ['pass'] });
}
{
  const cc = (by: Peer): SignStep => ({ by, key: 'rsa', headers: [...HEADERS.plain, 'Cc'] });
  add({ message: 'plain', sign: [cc('dkimpy')], mutate: 'ccAdded', verifier: 'dkimgate', expect: ['fail:signature_mismatch'] });
  add({ message: 'plain', sign: [cc('mailDkim')], mutate: 'ccAdded', verifier: 'dkimgate', expect: ['fail:signature_mismatch'] });
  add({ message: 'plain', sign: [cc('dkimgate')], mutate: 'ccAdded', verifier: 'dkimpy', expect: ['fail'] });
  add({ message: 'plain', sign: [cc('dkimgate')], mutate: 'ccAdded', verifier: 'mailDkim', expect: ['fail~message has been altered'] });
  add({ message: 'plain', sign: [cc('dkimgate')], verifier: 'mailDkim', expect: ['pass'] });
  add({ message: 'plain', sign: [cc('mailDkim')], verifier: 'dkimgate', expect: ['pass'] });
}

export const CASES: readonly InteropCase[] = cases;

// ---- mutations (byte-exact; latin1 keeps every byte of UTF-8 text as one char) ----

function split(msg: Buffer): { head: string; body: string } {
  const s = msg.toString('latin1');
  const at = s.indexOf('\r\n\r\n');
  if (at < 0) throw new Error('interop message without a header/body separator');
  return { head: s.slice(0, at + 2), body: s.slice(at + 4) };
}

const join = (head: string, body: string): Buffer => Buffer.from(`${head}\r\n${body}`, 'latin1');

const SUBJECT_FIELD = /^Subject:[^\r]*\r\n(?:[ \t][^\r]*\r\n)*/im;

export function applyMutation(msg: Buffer, m: Mutation): Buffer {
  const { head, body } = split(msg);
  switch (m) {
    case 'bodyChanged': {
      const at = body.search(/[a-z]/);
      if (at < 0) return join(head, `${body}tampered\r\n`);
      return join(head, body.slice(0, at) + body.charAt(at).toUpperCase() + body.slice(at + 1));
    }
    case 'subjectChanged': {
      if (!SUBJECT_FIELD.test(head)) throw new Error('no Subject field to change');
      return join(head.replace(SUBJECT_FIELD, 'Subject: Wire the money today\r\n'), body);
    }
    case 'fromAddedAbove':
      return join(`From: Mallory <mallory@evil.example>\r\n${head}`, body);
    case 'footerAppended': {
      const sep = body === '' || body.endsWith('\r\n') ? '' : '\r\n';
      return join(head, `${body}${sep}_______________\r\nlist footer: unsubscribe at https://lists.example.net/\r\n`);
    }
    case 'subjectRefolded': {
      const field = SUBJECT_FIELD.exec(head);
      if (!field) throw new Error('no Subject field to refold');
      const value = field[0].slice('Subject:'.length).replace(/\r\n$/, '');
      const firstSpace = value.indexOf(' ', 1);
      if (firstSpace < 0) throw new Error('Subject has one word only');
      const refolded = `Subject:${value.slice(0, firstSpace)}  \t\r\n\t  ${value.slice(firstSpace + 1)}   \r\n`;
      return join(head.replace(SUBJECT_FIELD, refolded), body);
    }
    case 'ccAdded':
      return join(`${head}Cc: eve@example.net\r\n`, body);
    case 'xTagsSwapped': {
      const tags = [...head.matchAll(/^X-Tag:[^\r]*\r\n/gim)].map((t) => t[0]);
      if (tags.length !== 2) throw new Error('xTagsSwapped wants exactly two X-Tag fields');
      const [a, b] = tags as [string, string];
      return join(head.replace(a, '\0').replace(b, a).replace('\0', b), body);
    }
  }
}
