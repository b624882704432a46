// Signature-tag and key-record syntax, judged by three verifiers. Each case is a DKIM-Signature written by hand
// (odd tag case, spacing, duplicates, i=/t=/x=/l=/q= values, missing tags) or a key record written by hand
// (v= placement, k=/h=/s=/t= flags, p= forms, several records), signed here with node:crypto over the test
// suite's reference canonicalization (test/helpers/reference-canon.ts, not dkimgate's code), the record
// served by dnsmasq. dkimgate must give the pinned verdict; and where dkimpy and Mail::DKIM give the same
// answer (pass, or not pass), dkimgate must give it too unless the case says why it differs (`differs`).
//
// Spawns /usr/bin/python3 (python3-dkim, python3-dnspython), perl (libmail-dkim-perl, libnet-dns-perl) and
// dnsmasq; writes the messages to a temp dir (kept when KEEP_INTEROP_DIR=1). TAG_SYNTAX_TABLE=1 prints every verdict.
import { createHash, sign } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDnsResolver } from '../../src/dns/create-dns-resolver.js';
import { verifyMessage } from '../../src/dkim/verify.js';
import { ed25519Key, rsaKey } from '../helpers/dkim-test-kit.js';
import { startDnsServer, type RunningDnsServer, type TxtData } from '../helpers/dns-server.js';
import { referenceRelaxedHeader, referenceSimpleBody } from '../helpers/reference-canon.js';
import { jsonLines, run } from './peer-process.js';

const PEERS = join(dirname(fileURLToPath(import.meta.url)), 'peers');
const NOW = Math.floor(Date.now() / 1000);
const T = NOW - 60;
const RSA = rsaKey(2048);
const ED = ed25519Key();
const P = RSA.record.replace(/^.*p=/, '');
const PKCS1 = (RSA.publicKey.export({ type: 'pkcs1', format: 'der' }) as Buffer).toString('base64');
const ED_P = ED.record.replace(/^.*p=/, '');

const HEAD = ['From: Alice <alice@example.com>\r\n', 'To: bob@example.org\r\n', 'Subject: hi  there\r\n', 'Date: Mon, 7 Dec 2026 10:00:00 +0000\r\n'];
const BODY = 'Hello  world \r\n\r\nsecond line\r\n\r\n';
const CANON_BODY = referenceSimpleBody(BODY);

interface Case {
  name: string;
  /** The DKIM-Signature value; {s} selector, {bh} body hash, {b} signature. Default: SIG(). */
  tags?: string;
  /** Key record(s) at {s}._domainkey.example.com; null: no record (NXDOMAIN). Default: REC. */
  record?: TxtData | null;
  /** Field names hashed, in h= order (default from, to, subject). */
  hashed?: string[];
  sha1?: boolean;
  ed25519?: boolean;
  /** Body octets hashed (l=); default all. */
  bodyOctets?: number;
  /** Rewrites the b= value after signing (FWS, damage). */
  b?: (b: string) => string;
  /** dkimgate's verdict: 'pass' or 'result:reason'. */
  ours: string;
  /** Why dkimgate's pass / not-pass differs from the verdict dkimpy and Mail::DKIM share. */
  differs?: string;
}

const REC = `v=DKIM1; k=rsa; p=${P}`;
const SIG = (extra = '', o: { v?: string; a?: string; c?: string; d?: string; h?: string; t?: string; tail?: string } = {}): string =>
  `${o.v ?? 'v=1; '}a=${o.a ?? 'rsa-sha256'}; c=${o.c ?? 'relaxed/simple'}; d=${o.d ?? 'example.com'}; s={s}; t=${o.t ?? T}; ` +
  `h=${o.h ?? 'from:to:subject'};${extra} bh={bh}; b={b}${o.tail ?? ''}`;

const STRICT_GRAMMAR = 'RFC 6376 §3.5 grammar: hdr-name is 1*ftext, an empty name is no field name';
const CASE_FOLDED = 'values compared without case, as OpenDKIM does (RFC 6376 §3.2 makes them case-sensitive)';

const CASES: Case[] = [
  { name: 'a plain signature', ours: 'pass' },
  // the signature's tags
  { name: 'V=1 (tag names are case-sensitive: no v=)', tags: SIG('', { v: 'V=1; ' }), ours: 'neutral:missing_tag' },
  { name: 'no v=', tags: SIG('', { v: '' }), ours: 'neutral:missing_tag' },
  { name: 'v=1 as the last tag', tags: SIG('', { v: '', tail: '; v=1' }), ours: 'pass' },
  { name: 'v=2', tags: SIG('', { v: 'v=2; ' }), ours: 'neutral:bad_version' },
  { name: 'a=RSA-SHA256', tags: SIG('', { a: 'RSA-SHA256' }), ours: 'pass' },
  { name: 'a=rsa-sha1 (RFC 8301)', tags: SIG('', { a: 'rsa-sha1' }), sha1: true, ours: 'policy:sha1_not_allowed', differs: 'RFC 8301: rsa-sha1 is not accepted by default' },
  { name: 'a=rsa-sha512', tags: SIG('', { a: 'rsa-sha512' }), ours: 'neutral:unknown_algorithm' },
  { name: 'c=relaxed (body simple)', tags: SIG('', { c: 'relaxed' }), ours: 'pass' },
  { name: 'c=Relaxed/Simple', tags: SIG('', { c: 'Relaxed/Simple' }), ours: 'pass' },
  { name: 'c=relaxed/foo', tags: SIG('', { c: 'relaxed/foo' }), ours: 'neutral:unknown_canonicalization' },
  { name: 'd=EXAMPLE.com', tags: SIG('', { d: 'EXAMPLE.com' }), ours: 'pass' },
  { name: 'd=example.com. (trailing dot)', tags: SIG('', { d: 'example.com.' }), ours: 'neutral:bad_tag_value' },
  { name: 'i=@sub.example.com', tags: SIG(' i=@sub.example.com;'), ours: 'pass' },
  { name: 'i=user@example.com', tags: SIG(' i=user@example.com;'), ours: 'pass' },
  { name: 'i=@EXAMPLE.COM', tags: SIG(' i=@EXAMPLE.COM;'), ours: 'pass' },
  { name: 'i= outside d=', tags: SIG(' i=@example.org;'), ours: 'neutral:identity_outside_domain' },
  { name: 'i= a parent of d=', tags: SIG(' i=@com;'), ours: 'neutral:identity_outside_domain' },
  { name: 'i= without @', tags: SIG(' i=example.com;'), ours: 'neutral:bad_tag_value' },
  { name: 'i= empty', tags: SIG(' i=;'), ours: 'neutral:bad_tag_value' },
  { name: 't= an hour ahead', tags: SIG('', { t: String(NOW + 3600) }), ours: 'policy:timestamp_in_future', differs: 'interface.md §2: t= beyond verify.clock_skew is policy' },
  { name: 't= not a number', tags: SIG('', { t: 'abc' }), ours: 'neutral:bad_tag_value' },
  { name: 'x= past', tags: SIG(` x=${NOW - 10};`), ours: 'policy:signature_expired' },
  { name: 'x= before t=', tags: SIG(` x=${T - 60};`), ours: 'neutral:bad_tag_value' },
  { name: 'x= equal to t=', tags: SIG(` x=${T};`), ours: 'neutral:bad_tag_value' },
  { name: 'x= ahead', tags: SIG(` x=${NOW + 3600};`), ours: 'pass' },
  { name: 'h= without from', tags: SIG('', { h: 'to:subject' }), hashed: ['to', 'subject'], ours: 'permerror:from_not_signed', differs: 'RFC 6376 §5.4: From MUST be signed' },
  { name: 'h= in upper case', tags: SIG('', { h: 'FROM:To:SUBJECT' }), ours: 'pass' },
  { name: 'h= with spaces around the colons', tags: SIG('', { h: 'from : to : subject' }), ours: 'pass' },
  { name: 'h= folded', tags: SIG('', { h: 'from:to:\r\n\tsubject' }), ours: 'pass' },
  { name: 'h= naming an absent field', tags: SIG('', { h: 'from:to:subject:x-nope' }), hashed: ['from', 'to', 'subject', 'x-nope'], ours: 'pass' },
  { name: 'h= with an empty name', tags: SIG('', { h: 'from::to' }), hashed: ['from', 'to'], ours: 'neutral:bad_tag_value', differs: STRICT_GRAMMAR },
  { name: 'h= ending in a colon', tags: SIG('', { h: 'from:to:subject:' }), ours: 'neutral:bad_tag_value', differs: STRICT_GRAMMAR },
  { name: 'q=dns/txt', tags: SIG(' q=dns/txt;'), ours: 'pass' },
  { name: 'q=foo:dns/txt', tags: SIG(' q=foo:dns/txt;'), ours: 'pass' },
  { name: 'q=http/well-known', tags: SIG(' q=http/well-known;'), ours: 'neutral:bad_tag_value' },
  { name: 'l= the whole body', tags: SIG(` l=${CANON_BODY.length};`), ours: 'pass' },
  { name: 'l= part of the body', tags: SIG(' l=5;'), bodyOctets: 5, ours: 'policy:body_length_short', differs: 'interface.md §2: content past l= is policy (RFC 6376 §8.2)' },
  { name: 'l= longer than the body', tags: SIG(' l=1000;'), ours: 'fail:body_hash_mismatch', differs: 'the signer cannot have hashed 1000 octets of this body' },
  { name: 'l= of 30 digits', tags: SIG(` l=${'9'.repeat(30)};`), ours: 'fail:body_hash_mismatch', differs: 'the signer cannot have hashed that many octets of this body' },
  { name: 'an unknown tag', tags: SIG(' foo=bar;'), ours: 'pass' },
  { name: 'an unknown tag with spaces in its value', tags: SIG(' foo=a b\tc;'), ours: 'pass' },
  { name: 'a duplicated tag', tags: SIG(' d=example.com;'), ours: 'neutral:duplicate_tag' },
  { name: 'a duplicated unknown tag', tags: SIG(' foo=1; foo=2;'), ours: 'neutral:duplicate_tag' },
  { name: 'a tag name starting with a digit', tags: SIG(' 1x=2;'), ours: 'neutral:bad_tag_syntax' },
  { name: 'spaces around = and ;', tags: ` v = 1 ;  a = rsa-sha256 ; c = relaxed/simple ; d = example.com ; s = {s} ; t = ${T} ; h = from:to:subject ; bh = {bh} ; b = {b}`, ours: 'pass' },
  { name: 'folded between tags', tags: `v=1;\r\n a=rsa-sha256;\r\n\tc=relaxed/simple; d=example.com;\r\n s={s}; t=${T}; h=from:to:subject; bh={bh};\r\n b={b}`, ours: 'pass' },
  { name: 'b= folded', b: (b) => `${b.slice(0, 40)}\r\n\t${b.slice(40, 100)} ${b.slice(100)}`, ours: 'pass' },
  { name: 'bh= folded', tags: SIG().replace('{bh}', '{bh-folded}'), ours: 'pass' },
  { name: 'a final semicolon', tags: SIG('', { tail: ';' }), ours: 'pass' },
  { name: 'z= copied fields', tags: SIG(' z=From:Alice|To:bob;'), ours: 'pass' },
  { name: 'no bh=', tags: SIG().replace(' bh={bh};', ''), ours: 'neutral:missing_tag' },
  { name: 'no d=', tags: SIG().replace(' d=example.com;', ''), ours: 'neutral:missing_tag' },
  { name: 'no h=', tags: SIG().replace(' h=from:to:subject;', ''), ours: 'neutral:missing_tag' },
  { name: 'b= empty', b: () => '', ours: 'neutral:bad_base64' },
  { name: 'b= damaged', b: (b) => `${b.slice(0, -4)}!!!!`, ours: 'neutral:bad_base64' },
  // the key record
  { name: 'record without v=', record: `k=rsa; p=${P}`, ours: 'pass' },
  { name: 'record with v= not first', record: `k=rsa; v=DKIM1; p=${P}`, ours: 'pass' },
  { name: 'record v=DKIM2', record: `v=DKIM2; k=rsa; p=${P}`, ours: 'permerror:key_syntax' },
  { name: 'record k=RSA', record: `v=DKIM1; k=RSA; p=${P}`, ours: 'pass', differs: CASE_FOLDED },
  { name: 'record k=ed25519 for an RSA signature', record: `v=DKIM1; k=ed25519; p=${ED_P}`, ours: 'permerror:key_type_mismatch' },
  { name: 'record k=dsa', record: `v=DKIM1; k=dsa; p=${P}`, ours: 'permerror:key_type_mismatch' },
  { name: 'record h=sha1 for a sha256 signature', record: `v=DKIM1; h=sha1; k=rsa; p=${P}`, ours: 'permerror:key_hash_mismatch' },
  { name: 'record h=sha1:sha256', record: `v=DKIM1; h=sha1:sha256; k=rsa; p=${P}`, ours: 'pass' },
  { name: 'record s=email', record: `v=DKIM1; s=email; p=${P}`, ours: 'pass' },
  { name: 'record s=*', record: `v=DKIM1; s=*; p=${P}`, ours: 'pass' },
  { name: 'record s=other', record: `v=DKIM1; s=other; p=${P}`, ours: 'permerror:key_service_mismatch' },
  { name: 'record s=other:email', record: `v=DKIM1; s=other:email; p=${P}`, ours: 'pass' },
  { name: 'record t=y (testing)', record: `v=DKIM1; t=y; p=${P}`, ours: 'pass' },
  { name: 'record t=s, i= the domain itself', tags: SIG(' i=@example.com;'), record: `v=DKIM1; t=s; p=${P}`, ours: 'pass' },
  { name: 'record t=s, i= in a subdomain', tags: SIG(' i=@sub.example.com;'), record: `v=DKIM1; t=s; p=${P}`, ours: 'permerror:key_strict_subdomain' },
  { name: 'record p= empty (revoked)', record: 'v=DKIM1; k=rsa; p=', ours: 'permerror:key_revoked' },
  { name: 'record p= with spaces', record: `v=DKIM1; k=rsa; p=${P.slice(0, 50)} ${P.slice(50, 120)}  ${P.slice(120)}`, ours: 'pass' },
  { name: 'record p= not base64', record: 'v=DKIM1; k=rsa; p=!!!!', ours: 'permerror:key_syntax' },
  { name: 'record p= cut short', record: `v=DKIM1; k=rsa; p=${P.slice(0, 200)}`, ours: 'permerror:key_syntax' },
  { name: 'record p= a bare RSAPublicKey (PKCS#1)', record: `v=DKIM1; k=rsa; p=${PKCS1}`, ours: 'pass' },
  { name: 'record with an unknown tag', record: `v=DKIM1; x=y; k=rsa; p=${P}`, ours: 'pass' },
  { name: 'record with a duplicated tag', record: `v=DKIM1; k=rsa; k=rsa; p=${P}`, ours: 'permerror:key_syntax' },
  { name: 'record with a final semicolon', record: `v=DKIM1; k=rsa; p=${P};`, ours: 'pass' },
  { name: 'record with n= notes', record: `v=DKIM1; n=some notes here; k=rsa; p=${P}`, ours: 'pass' },
  { name: 'record without p=', record: 'v=DKIM1; k=rsa', ours: 'permerror:key_syntax' },
  { name: 'record with spaces around = and ;', record: `v = DKIM1 ; k = rsa ; p = ${P}`, ours: 'pass' },
  { name: 'record tag names in upper case', record: `V=DKIM1; K=rsa; P=${P}`, ours: 'permerror:key_syntax' },
  { name: 'record that is not a key record', record: 'hello world', ours: 'permerror:key_syntax' },
  { name: 'record that is an SPF record', record: 'v=spf1 -all', ours: 'permerror:key_syntax' },
  { name: 'two copies of the record', record: [[REC], [REC]], ours: 'pass' },
  { name: 'no record', record: null, ours: 'permerror:no_key' },
  { name: 'ed25519-sha256', tags: SIG('', { a: 'ed25519-sha256' }), record: `v=DKIM1; k=ed25519; p=${ED_P}`, ed25519: true, ours: 'pass' },
  { name: 'ed25519-sha256 with a k=rsa record', tags: SIG('', { a: 'ed25519-sha256' }), record: `v=DKIM1; k=rsa; p=${ED_P}`, ed25519: true, ours: 'permerror:key_syntax' },
];

/** The signed message of a case: the hand-written DKIM-Signature on top of HEAD and BODY. */
function signedMessage(c: Case, selector: string): Buffer {
  const body = CANON_BODY.slice(0, c.bodyOctets ?? CANON_BODY.length);
  const hash = (data: string) => createHash(c.sha1 ? 'sha1' : 'sha256').update(data, 'latin1').digest('base64');
  const bh = hash(body);
  const value = (c.tags ?? SIG())
    .replace('{s}', selector)
    .replace('{bh-folded}', `${bh.slice(0, 10)}\r\n ${bh.slice(10, 20)} ${bh.slice(20)}`)
    .replace('{bh}', bh);
  // relaxed header canonicalization: the hashed fields (the last instance of each name), then this field without b=
  const hashed = (c.hashed ?? ['from', 'to', 'subject']).map((name) => HEAD.find((f) => f.toLowerCase().startsWith(`${name}:`)));
  const data = hashed.map((f) => (f === undefined ? '' : referenceRelaxedHeader(f))).join('') + referenceRelaxedHeader(`DKIM-Signature: ${value.replace('{b}', '')}`).slice(0, -2);
  let b: string;
  if (c.ed25519) b = sign(null, createHash('sha256').update(data, 'latin1').digest(), ED.privateKey).toString('base64');
  else b = sign(c.sha1 ? 'sha1' : 'sha256', Buffer.from(data, 'latin1'), RSA.privateKey).toString('base64');
  if (c.b) b = c.b(b);
  return Buffer.from(`DKIM-Signature: ${value.replace('{b}', b)}\r\n${HEAD.join('')}\r\n${BODY}`, 'latin1');
}

type Verdicts = { ours: string; dkimpy: string; mailDkim: string };

let dir = '';
let dns: RunningDnsServer;
const verdicts = new Map<string, Verdicts>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dkimgate-tag-syntax-'));
  const txt: Record<string, TxtData> = {};
  const files: string[] = [];
  for (const [i, c] of CASES.entries()) {
    const selector = `c${i}`;
    if (c.record !== null) txt[`${selector}._domainkey.example.com`] = c.record ?? REC;
    const file = join(dir, `${String(i).padStart(3, '0')}.eml`);
    await writeFile(file, signedMessage(c, selector));
    files.push(file);
  }
  dns = await startDnsServer({ txt });
  const firstVerdicts = (out: Buffer): Map<string, string> => {
    const byFile = new Map<string, string>();
    for (const line of jsonLines(out)) if (!byFile.has(String(line.file))) byFile.set(String(line.file), String(line.result));
    return byFile;
  };
  const [py, perl] = await Promise.all([
    run('/usr/bin/python3', [join(PEERS, 'dkimpy-verify.py'), '--dns', dns.server, ...files], 'dkimpy verify', 120_000).then(firstVerdicts),
    run('/usr/bin/perl', [join(PEERS, 'mail-dkim-verify.pl'), '--dns', dns.server, ...files], 'Mail::DKIM verify', 120_000).then(firstVerdicts),
  ]);
  const { lookupTxt } = createDnsResolver({ servers: [dns.server], timeoutMs: 5000, cacheSize: 0, cacheTtlSec: 0, negativeTtlSec: 0 });
  for (const [i, c] of CASES.entries()) {
    const first = (await verifyMessage(await readFile(files[i]!), { lookupTxt, nowSec: NOW })).signatures[0];
    const ours = first === undefined ? 'none' : first.reason === null ? first.result : `${first.result}:${first.reason}`;
    verdicts.set(c.name, { ours, dkimpy: py.get(files[i]!) ?? 'no verdict', mailDkim: perl.get(files[i]!) ?? 'no verdict' });
  }
  if (process.env.TAG_SYNTAX_TABLE === '1') console.table(Object.fromEntries(verdicts));
}, 120_000);

afterAll(async () => {
  await dns?.stop();
  if (process.env.KEEP_INTEROP_DIR === '1') console.log(`tag-syntax messages kept in ${dir}`);
  else await rm(dir, { recursive: true, force: true });
});

describe('DKIM-Signature tags and key records: dkimgate, dkimpy and Mail::DKIM', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const v = verdicts.get(c.name)!;
    expect(v.ours).toBe(c.ours);
    const pyPass = v.dkimpy === 'pass';
    const peersAgree = pyPass === (v.mailDkim === 'pass');
    const weDiffer = peersAgree && (v.ours === 'pass') !== pyPass;
    // a difference from both peers is explained; an explanation is only kept while the difference is real
    expect({ weDiffer, peers: [v.dkimpy, v.mailDkim], why: c.differs ?? null }).toEqual({
      weDiffer: c.differs !== undefined,
      peers: [v.dkimpy, v.mailDkim],
      why: c.differs ?? null,
    });
  });

  it('the harness can tell pass from fail: every peer passes the plain signature and fails a damaged one', () => {
    expect(verdicts.get('a plain signature')).toEqual({ ours: 'pass', dkimpy: 'pass', mailDkim: 'pass' });
    const damaged = verdicts.get('b= damaged')!;
    expect([damaged.dkimpy, damaged.mailDkim].includes('pass')).toBe(false);
  });
});
