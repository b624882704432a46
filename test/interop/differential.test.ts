// Differential interop: hundreds of random messages (odd whitespace, folding, header case, repeated fields,
// trailing blank lines), random canonicalizations, header lists and l=, random edits after signing; dkimgate's
// verdict must equal dkimpy's on every one, in both directions (dkimpy signs and we verify; we sign and dkimpy
// verifies what both judge), and Perl Mail::DKIM judges the same messages too. The fixed interop cases prove
// named behaviours; this finds the combinations nobody wrote down. The one designed difference: content past
// l= is `policy` here (RFC 6376 §8.2), `pass` in dkimpy and Mail::DKIM.
//
// Spawns /usr/bin/python3 (Debian python3-dkim) running peers/dkimpy-differential.py, perl (libmail-dkim-perl)
// running peers/mail-dkim-verify.pl and dnsmasq for its key lookups; a temp dir of messages (kept when
// KEEP_INTEROP_DIR=1). DIFF_SEED replays a run, DIFF_CASES sets its size.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Canonicalization } from '../../src/dkim/signature.js';
import { createSigner, signMessage } from '../../src/dkim/sign.js';
import { verifyMessage } from '../../src/dkim/verify.js';
import { rsaKey, tableLookup } from '../helpers/dkim-test-kit.js';
import { startDnsServer, type RunningDnsServer } from '../helpers/dns-server.js';
import { jsonLines, run } from './peer-process.js';

const PEERS = join(dirname(fileURLToPath(import.meta.url)), 'peers');
const PEER = join(PEERS, 'dkimpy-differential.py');
const SEED = Number(process.env.DIFF_SEED ?? 20261207);
const CASES = Number(process.env.DIFF_CASES ?? 300);
const KEY = rsaKey(2048);
const lookupTxt = tableLookup({ 's1._domainkey.example.com': KEY.record });

type Case = { file: string; dkimpy: string; canon: string | null; edit: string };
type Disagreement = Case & { mailDkim: string; ours: string; reason: string | null };

let dir = '';
let dns: RunningDnsServer;

async function peer(...args: string[]): Promise<Case[]> {
  const out = await run('/usr/bin/python3', [PEER, ...args, dir], 'dkimpy (differential peer)', 120_000);
  return jsonLines(out) as unknown as Case[];
}

/** Mail::DKIM's verdict on the first signature of each file ('pass', 'fail', 'invalid', …), by file. */
async function mailDkimVerdicts(files: string[]): Promise<Map<string, string>> {
  const out = await run('/usr/bin/perl', [join(PEERS, 'mail-dkim-verify.pl'), '--dns', dns.server, ...files], 'Mail::DKIM verify', 120_000);
  const verdicts = new Map<string, string>();
  for (const line of jsonLines(out)) if (!verdicts.has(String(line.file))) verdicts.set(String(line.file), String(line.result));
  return verdicts;
}

/**
 * The cases where dkimgate disagrees with dkimpy or with Mail::DKIM on pass, apart from the designed l=
 * difference; each peer's verdict is in the entry.
 */
async function disagreements(cases: Case[]): Promise<Disagreement[]> {
  const perl = await mailDkimVerdicts(cases.map((c) => c.file));
  const out: Disagreement[] = [];
  for (const c of cases) {
    const report = await verifyMessage(await readFile(c.file), { lookupTxt, nowSec: Math.floor(Date.now() / 1000) });
    const first = report.signatures[0];
    const ours = first?.result ?? 'none';
    const reason = first?.reason ?? null;
    const mailDkim = perl.get(c.file) ?? 'no verdict';
    const designed = ours === 'policy' && reason === 'body_length_short';
    const agrees = (peer: string) => (ours === 'pass') === (peer === 'pass') || (designed && peer === 'pass');
    if (agrees(c.dkimpy) && agrees(mailDkim)) continue;
    out.push({ ...c, mailDkim, ours, reason });
  }
  return out;
}

/** A tiny seeded PRNG (mulberry32) for our side's choices. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dkimgate-differential-'));
  await writeFile(join(dir, 'key.pem'), KEY.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  await writeFile(join(dir, 'record.txt'), KEY.record);
  dns = await startDnsServer({ txt: { 's1._domainkey.example.com': KEY.record } });
});
afterAll(async () => {
  await dns?.stop();
  if (process.env.KEEP_INTEROP_DIR === '1') console.log(`differential messages kept in ${dir}`);
  else await rm(dir, { recursive: true, force: true });
});

describe(`dkimgate, dkimpy and Mail::DKIM judge random messages alike (seed ${SEED}, DIFF_SEED replays)`, () => {
  it(`${CASES} messages signed by dkimpy, then edited: our verdict is dkimpy's and Mail::DKIM's`, { timeout: 120_000 }, async () => {
    const cases = await peer('dkimpy-signs', String(SEED), String(CASES));
    expect(cases).toHaveLength(CASES);
    // the run proves something: both verdicts occur often, under every canonicalization
    expect(cases.filter((c) => c.dkimpy === 'pass').length).toBeGreaterThan(CASES / 5);
    expect(cases.filter((c) => c.dkimpy === 'fail').length).toBeGreaterThan(CASES / 5);
    expect(new Set(cases.map((c) => c.canon)).size).toBe(4);
    expect(await disagreements(cases)).toEqual([]);
  });

  it(`${CASES} messages signed by dkimgate, then edited: dkimpy's and Mail::DKIM's verdicts are ours`, { timeout: 120_000 }, async () => {
    await peer('unsigned', String(SEED + 1), String(CASES));
    const rnd = prng(SEED);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;
    const canons: readonly Canonicalization[] = ['simple', 'relaxed'];
    for (let i = 0; i < CASES; i++) {
      const message = await readFile(join(dir, `u-${i}.eml`));
      const signer = createSigner({
        signingDomain: 'example.com',
        selector: 's1',
        privateKey: KEY.privateKey,
        algorithm: 'rsa-sha256',
        headerCanon: pick(canons),
        bodyCanon: pick(canons),
        headerList: pick(['From:To:Subject', 'From:From:Reply-To:Subject:Date:To:Cc?:Message-ID?', 'From:X-A*:Subject+:Date', 'From:x-a:X-B?:Cc']),
        bodyLengthLimit: rnd() < 0.15,
      });
      const signed = await signMessage(message, [signer], Math.floor(Date.now() / 1000));
      if (signed.kind !== 'signed') throw new Error(`u-${i}.eml: ${signed.reason}`);
      await writeFile(join(dir, `s-${i}.eml`), Buffer.concat([Buffer.from(signed.fields.join(''), 'latin1'), message]));
    }
    const cases = await peer('edit-verify', String(SEED + 2));
    expect(cases).toHaveLength(CASES);
    expect(cases.filter((c) => c.dkimpy === 'pass').length).toBeGreaterThan(CASES / 5);
    expect(cases.filter((c) => c.dkimpy === 'fail').length).toBeGreaterThan(CASES / 5);
    expect(await disagreements(cases)).toEqual([]);
  });
});
