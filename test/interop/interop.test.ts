// DKIM interop, both directions: dkimgate's CLI against Debian's dkimpy (python3-dkim) and Perl
// Mail::DKIM (libmail-dkim-perl), keys published through a real DNS server (dnsmasq) on loopback.
//
// Spawns /usr/bin/python3, perl and `node dist/cli.js` (run `npm run build` first); writes per-run
// keys and messages to a temp dir (kept when KEEP_INTEROP_DIR=1). CI needs the Debian packages
// python3-dkim python3-dnspython python3-nacl libmail-dkim-perl libnet-dns-perl dnsmasq-base.
//
// Speed: every case is evaluated up front in beforeAll. Signing runs in rounds (first signature of
// every chain, then the second); each round signs all dkimpy jobs in one python process and all
// Mail::DKIM jobs in one perl process, dkimgate runs in parallel; then each peer verifies all its
// messages in one process. The tests then only assert.
import { execFile } from 'node:child_process';
import { generateKeyPair, type KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PHRASE_BY_REASON, type VerifyReason } from '../../src/dkim/results.js';
import { startDnsServer } from '../helpers/dns-server.js';
import {
  applyMutation,
  CASES,
  HEADERS,
  KEY_IDS,
  MESSAGES,
  type InteropCase,
  type KeyName,
  type MessageName,
  type Peer,
  type SignStep,
} from './interop-cases.js';
import { jsonLines, run } from './peer-process.js';

const pExecFile = promisify(execFile);

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..');
const CLI = join(REPO, 'dist', 'cli.js');
const PEERS = join(HERE, 'peers');
/** Debian's interpreter: the `python3` on PATH may be a pyenv build without dkimpy. */
const PYTHON = '/usr/bin/python3';
const PERL = '/usr/bin/perl';
const PARALLEL = Math.max(4, availableParallelism() * 2);

/** The run's clock: every signer stamps t= from it, dkimgate verifies at it (peers use real time). */
const NOW = Math.floor(Date.now() / 1000) - 5;

// Peers against each other: proves the harness (keys, DNS, wrappers) can both pass and fail.
const HARNESS: InteropCase[] = [
  { name: 'dkimpy signs the folded message relaxed/relaxed and Mail::DKIM verifies it: pass', message: 'canon',
    sign: [{ by: 'dkimpy', key: 'rsa', headers: HEADERS.canon }], verifier: 'mailDkim', expect: ['pass'] },
  { name: 'Mail::DKIM signs the folded message simple/simple with l= and dkimpy verifies it: pass', message: 'canon',
    sign: [{ by: 'mailDkim', key: 'rsa', canon: 'simple/simple', length: true, headers: HEADERS.canon }], verifier: 'dkimpy', expect: ['pass'] },
  { name: 'dkimpy signs with Ed25519 and dkimpy verifies it over DNS: pass', message: 'utf8',
    sign: [{ by: 'dkimpy', key: 'ed', headers: HEADERS.utf8 }], verifier: 'dkimpy', expect: ['pass'] },
  { name: 'dkimpy signs, the body is changed, Mail::DKIM verifies: fail', message: 'plain',
    sign: [{ by: 'dkimpy', key: 'rsa' }], mutate: 'bodyChanged', verifier: 'mailDkim', expect: ['fail~body has been altered'] },
  { name: 'Mail::DKIM signs, the Subject is changed, dkimpy verifies: fail', message: 'plain',
    sign: [{ by: 'mailDkim', key: 'rsa' }], mutate: 'subjectChanged', verifier: 'dkimpy', expect: ['fail'] },
  { name: 'Mail::DKIM signs with an expired x=, dkimpy verifies: fail', message: 'plain',
    sign: [{ by: 'mailDkim', key: 'rsaOrg', lifetimeHours: 1, clockOffsetSec: -172_800 }], verifier: 'dkimpy', expect: ['fail'] },
];

// ---- process helpers ----

/** At most `n` calls of the returned function run at once. */
function limiter(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: Array<() => void> = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    while (active >= n) await new Promise<void>((wake) => waiting.push(wake));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

async function requirePeer(cmd: string, args: string[], pkgs: string): Promise<string | null> {
  try {
    await pExecFile(cmd, args, { timeout: 10_000 });
    return null;
  } catch {
    return `${cmd} ${args.join(' ')} failed: install the Debian package(s) ${pkgs}`;
  }
}

async function newKey(type: 'rsa' | 'ed25519'): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> {
  const gen = promisify(generateKeyPair) as unknown as (
    t: string,
    o: object,
  ) => Promise<{ privateKey: KeyObject; publicKey: KeyObject }>;
  return type === 'rsa' ? gen('rsa', { modulusLength: 2048 }) : gen('ed25519', {});
}

// ---- run state ----

interface KeyFiles {
  pkcs8: string; // dkimgate
  peer: string; // dkimpy / Mail::DKIM: RSA PKCS#1 PEM, Ed25519 base64 seed
}

interface Prepared {
  file: string;
  data: Buffer;
}

interface GateSignature {
  result: string;
  reason: string | null; // a phrase (PHRASE_BY_REASON)
  reasonCode?: string | null; // the stable code, when the CLI prints it
  [field: string]: unknown;
}

interface Verified {
  verdicts: string[];
  raw: string;
  gate: GateSignature[];
}

type Outcome = { kind: 'done'; prepared: Prepared; verified: Verified } | { kind: 'error'; error: Error; prepared: Prepared | null };

/** Set when a peer is missing: every case then fails with it (never skips). */
let setupError: Error | null = null;
let work = '';
let dnsServer = '';
let stopDns: (() => Promise<void>) | null = null;
const keys = new Map<KeyName, KeyFiles>();
const outcomes = new Map<InteropCase, Outcome>();
let fileSeq = 0;

async function writeMsg(label: string, data: Buffer): Promise<string> {
  const file = join(work, 'msg', `${String(++fileSeq).padStart(3, '0')}-${label}.eml`);
  await writeFile(file, data);
  return file;
}

function keyOf(name: KeyName): KeyFiles {
  const k = keys.get(name);
  if (!k) throw new Error(`interop key ${name} was not generated`);
  return k;
}

// ---- signing ----

function stepParams(step: SignStep): { alg: string; t: number; x: number | null; headers: readonly string[]; canon: string } {
  const alg = step.algorithm ?? (KEY_IDS[step.key].type === 'ed25519' ? 'ed25519-sha256' : 'rsa-sha256');
  const t = NOW + (step.clockOffsetSec ?? 0);
  const x = step.lifetimeHours !== undefined ? t + step.lifetimeHours * 3600 : null;
  return { alg, t, x, headers: step.headers ?? HEADERS.plain, canon: step.canon ?? 'relaxed/relaxed' };
}

function gateSignArgs(step: SignStep, input: string): string[] {
  const { domain, selector } = KEY_IDS[step.key];
  const { alg, t, headers, canon } = stepParams(step);
  const [hc, bc] = canon.split('/') as [string, string];
  const args = [CLI, 'sign', '--domain', domain, '--selector', selector, '--key', keyOf(step.key).pkcs8, '--digest', alg,
    '--header-canon', hc, '--body-canon', bc, '--headerlist', headers.join(':'), '--now', String(t)];
  if (step.identity) args.push('--identity', step.identity);
  if (step.lifetimeHours !== undefined) args.push('--lifetime', String(step.lifetimeHours));
  if (step.length) args.push('--body-length-limit');
  if (step.copyHeaders) args.push('--copy-headers');
  return [...args, input];
}

/** Options of dkimpy-sign.py and mail-dkim-sign.pl (the same on both). */
function peerSignArgs(step: SignStep, input: string): string[] {
  const { domain, selector } = KEY_IDS[step.key];
  const { alg, t, x, headers, canon } = stepParams(step);
  if (step.copyHeaders) throw new Error(`${step.by} cannot add z= (copyHeaders is a dkimgate-only step option)`);
  const args = ['--domain', domain, '--selector', selector, '--key', keyOf(step.key).peer, '--algorithm', alg,
    '--canon', canon, '--headers', headers.join(':').toLowerCase(), '--timestamp', String(t)];
  if (x !== null) args.push('--expiry', String(x));
  if (step.identity) args.push('--identity', step.identity);
  if (step.length) args.push('--length');
  return [...args, input];
}

interface SignJob {
  step: SignStep;
  input: string;
  label: string;
  done: (r: Prepared | Error) => void;
}

async function signWithGate(job: SignJob): Promise<void> {
  try {
    if (!existsSync(CLI)) throw new Error(`${CLI} missing: run \`npm run build\` first`);
    const data = await run(process.execPath, gateSignArgs(job.step, job.input), 'dkimgate sign');
    job.done({ file: await writeMsg(job.label, data), data });
  } catch (err) {
    job.done(err as Error);
  }
}

/** All jobs of one peer in one process (`--batch JOBS.json`). */
async function signWithPeerBatch(peer: 'dkimpy' | 'mailDkim', jobs: SignJob[]): Promise<void> {
  if (jobs.length === 0) return;
  const batch = jobs.map((j) => {
    const output = join(work, 'msg', `${String(++fileSeq).padStart(3, '0')}-${j.label}.eml`);
    try {
      return { job: j, output, args: peerSignArgs(j.step, j.input) };
    } catch (err) {
      j.done(err as Error);
      return null;
    }
  });
  const valid = batch.filter((b): b is NonNullable<typeof b> => b !== null);
  const jobsFile = join(work, `${peer}-jobs-${++fileSeq}.json`);
  await writeFile(jobsFile, JSON.stringify(valid.map((b) => ({ args: b.args, output: b.output }))));
  try {
    const out =
      peer === 'dkimpy'
        ? await run(PYTHON, [join(PEERS, 'dkimpy-sign.py'), '--batch', jobsFile], 'dkimpy sign')
        : await run(PERL, [join(PEERS, 'mail-dkim-sign.pl'), '--batch', jobsFile], 'Mail::DKIM sign');
    const errors = new Map(jsonLines(out).map((l) => [String(l.output), l.error ? String(l.error) : null]));
    for (const b of valid) {
      const error = errors.get(b.output);
      if (error === undefined) b.job.done(new Error(`${peer} sign batch gave no result for ${b.args.join(' ')}`));
      else if (error !== null) b.job.done(new Error(`${peer} sign failed: ${error}\n  options: ${b.args.join(' ')}`));
      else b.job.done({ file: b.output, data: await readFile(b.output) });
    }
  } catch (err) {
    for (const b of valid) b.job.done(err as Error);
  }
}

/** Signs every chain (shared prefixes once) and applies the mutations; one Prepared per case. */
async function prepareAll(all: readonly InteropCase[], limit: ReturnType<typeof limiter>): Promise<Map<InteropCase, Prepared | Error>> {
  const chainKey = (message: MessageName, steps: readonly SignStep[]): string => JSON.stringify([message, steps]);
  const signed = new Map<string, Prepared | Error>();
  for (const message of new Set(all.map((c) => c.message))) {
    signed.set(chainKey(message, []), { file: await writeMsg(`${message}-base`, MESSAGES[message]), data: MESSAGES[message] });
  }
  const depth = Math.max(...all.map((c) => c.sign.length));
  for (let d = 1; d <= depth; d++) {
    const jobs: Record<Peer, SignJob[]> = { dkimgate: [], dkimpy: [], mailDkim: [] };
    for (const c of all) {
      if (c.sign.length < d) continue;
      const key = chainKey(c.message, c.sign.slice(0, d));
      if (signed.has(key)) continue;
      const parent = signed.get(chainKey(c.message, c.sign.slice(0, d - 1)));
      const step = c.sign[d - 1]!;
      if (parent === undefined || parent instanceof Error) {
        signed.set(key, parent ?? new Error('unsigned parent chain'));
        continue;
      }
      signed.set(key, new Error('not signed yet'));
      jobs[step.by].push({ step, input: parent.file, label: `${c.message}-${d}-${step.by}-${step.key}`, done: (r) => signed.set(key, r) });
    }
    await Promise.all([
      ...jobs.dkimgate.map((j) => limit(() => signWithGate(j))),
      limit(() => signWithPeerBatch('dkimpy', jobs.dkimpy)),
      limit(() => signWithPeerBatch('mailDkim', jobs.mailDkim)),
    ]);
  }
  const prepared = new Map<InteropCase, Prepared | Error>();
  const mutated = new Map<string, Prepared | Error>();
  for (const c of all) {
    const base = signed.get(chainKey(c.message, c.sign)) ?? new Error('chain was never signed');
    if (!c.mutate || base instanceof Error) {
      prepared.set(c, base);
      continue;
    }
    const key = JSON.stringify([chainKey(c.message, c.sign), c.mutate]);
    let m = mutated.get(key);
    if (!m) {
      try {
        const data = applyMutation(base.data, c.mutate);
        m = { file: await writeMsg(`${c.message}-${c.mutate}`, data), data };
      } catch (err) {
        m = err as Error;
      }
      mutated.set(key, m);
    }
    prepared.set(c, m);
  }
  return prepared;
}

// ---- verifying ----

const CODE_BY_PHRASE = new Map<string, VerifyReason>(
  (Object.entries(PHRASE_BY_REASON) as Array<[VerifyReason, string]>).map(([code, phrase]) => [phrase, code]),
);

/** dkimgate's verdict reason as a stable code: reasonCode, else the code its phrase stands for. */
function reasonCode(s: GateSignature): string | null {
  if (typeof s.reasonCode === 'string') return s.reasonCode;
  if (s.reason === null) return null;
  return CODE_BY_PHRASE.get(s.reason) ?? s.reason;
}

async function verifyWithGate(file: string): Promise<Verified> {
  if (!existsSync(CLI)) throw new Error(`${CLI} missing: run \`npm run build\` first`);
  const out = await run(process.execPath, [CLI, 'verify', '--json', '--dns-server', dnsServer, '--now', String(NOW), file], 'dkimgate verify');
  const raw = out.toString('utf8');
  const report = JSON.parse(raw) as { signatures: GateSignature[] };
  const verdicts = report.signatures.map((s) => {
    const code = reasonCode(s);
    return code === null ? s.result : `${s.result}:${code}`;
  });
  return { verdicts, raw, gate: report.signatures };
}

/** Every file in one peer process; its JSON lines carry the file they belong to. */
async function verifyWithPeerBatch(peer: 'dkimpy' | 'mailDkim', files: string[]): Promise<Map<string, Verified | Error>> {
  const results = new Map<string, Verified | Error>();
  if (files.length === 0) return results;
  try {
    const out =
      peer === 'dkimpy'
        ? await run(PYTHON, [join(PEERS, 'dkimpy-verify.py'), '--dns', dnsServer, ...files], 'dkimpy verify')
        : await run(PERL, [join(PEERS, 'mail-dkim-verify.pl'), '--dns', dnsServer, ...files], 'Mail::DKIM verify');
    const lines = jsonLines(out);
    for (const file of files) {
      const mine = lines.filter((l) => l.file === file);
      results.set(file, {
        verdicts: mine.map((l) => `${String(l.result)}${l.detail ? `~${String(l.detail)}` : ''}`),
        raw: mine.map((l) => JSON.stringify(l)).join('\n'),
        gate: [],
      });
    }
  } catch (err) {
    for (const file of files) results.set(file, err as Error);
  }
  return results;
}

async function evaluateAll(all: readonly InteropCase[]): Promise<void> {
  const limit = limiter(PARALLEL);
  const prepared = await prepareAll(all, limit);
  const filesFor = (v: Peer): string[] => [
    ...new Set(all.filter((c) => c.verifier === v).flatMap((c) => {
      const p = prepared.get(c);
      return p && !(p instanceof Error) ? [p.file] : [];
    })),
  ];
  const gateResults = new Map<string, Verified | Error>();
  const [py, pl] = await Promise.all([
    limit(() => verifyWithPeerBatch('dkimpy', filesFor('dkimpy'))),
    limit(() => verifyWithPeerBatch('mailDkim', filesFor('mailDkim'))),
    ...filesFor('dkimgate').map((f) =>
      limit(() => verifyWithGate(f)).then(
        (v) => void gateResults.set(f, v),
        (e: Error) => void gateResults.set(f, e),
      ),
    ),
  ]);
  const byVerifier: Record<Peer, Map<string, Verified | Error>> = { dkimgate: gateResults, dkimpy: py, mailDkim: pl };
  for (const c of all) {
    const p = prepared.get(c) ?? new Error('case was never prepared');
    if (p instanceof Error) {
      outcomes.set(c, { kind: 'error', error: p, prepared: null });
      continue;
    }
    const v = byVerifier[c.verifier].get(p.file) ?? new Error(`${c.verifier} gave no verdict for ${p.file}`);
    outcomes.set(c, v instanceof Error ? { kind: 'error', error: v, prepared: p } : { kind: 'done', prepared: p, verified: v });
  }
}

// ---- setup ----

beforeAll(async () => {
  const missing = (
    await Promise.all([
      requirePeer(PYTHON, ['-c', 'import dkim, dns.resolver, nacl'], 'python3-dkim python3-dnspython python3-nacl'),
      requirePeer(PERL, ['-MMail::DKIM::Signer', '-MMail::DKIM::Verifier', '-MNet::DNS', '-MJSON::PP', '-e1'], 'libmail-dkim-perl libnet-dns-perl'),
      existsSync('/usr/sbin/dnsmasq') ? null : '/usr/sbin/dnsmasq missing: install the Debian package dnsmasq-base',
    ])
  ).filter((m): m is string => m !== null);
  if (missing.length > 0) {
    setupError = new Error(`DKIM interop peers missing:\n  ${missing.join('\n  ')}`);
    return;
  }

  work = await mkdtemp(join(tmpdir(), 'dkimgate-interop-'));
  await mkdir(join(work, 'msg'));
  const txt: Record<string, string> = {};
  await Promise.all(
    (Object.keys(KEY_IDS) as KeyName[]).map(async (name) => {
      const id = KEY_IDS[name];
      const { privateKey, publicKey } = await newKey(id.type);
      const pkcs8 = join(work, `${name}.pkcs8.pem`);
      const peer = join(work, id.type === 'rsa' ? `${name}.pkcs1.pem` : `${name}.seed.b64`);
      await writeFile(pkcs8, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
      let p: string;
      if (id.type === 'rsa') {
        await writeFile(peer, privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
        p = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
      } else {
        const jwk = privateKey.export({ format: 'jwk' });
        await writeFile(peer, `${Buffer.from(String(jwk.d), 'base64url').toString('base64')}\n`, { mode: 0o600 });
        p = Buffer.from(String(jwk.x), 'base64url').toString('base64');
      }
      keys.set(name, { pkcs8, peer });
      txt[`${id.selector}._domainkey.${id.domain}`] = `v=DKIM1; k=${id.type}; p=${p}`;
    }),
  );
  const dns = await startDnsServer({ txt });
  dnsServer = dns.server;
  stopDns = () => dns.stop();
  await evaluateAll([...HARNESS, ...CASES]);
}, 180_000);

afterAll(async () => {
  if (stopDns) await stopDns();
  if (work && !process.env.KEEP_INTEROP_DIR) await rm(work, { recursive: true, force: true });
});

// ---- assertions ----

/** 'fail~body has been altered' expects result fail and that substring in the peer's detail. */
function matches(expected: string, actual: string, verifier: Peer): boolean {
  if (verifier === 'dkimgate') return expected === actual;
  const [expResult, expDetail] = expected.split('~', 2) as [string, string | undefined];
  const [actResult, ...rest] = actual.split('~');
  if (expResult !== actResult) return false;
  return expDetail === undefined || rest.join('~').includes(expDetail);
}

function check(c: InteropCase): void {
  if (setupError) throw setupError;
  const o = outcomes.get(c);
  if (!o) throw new Error('case was not evaluated (beforeAll failed?)');
  if (o.kind === 'error') {
    const where = o.prepared ? `\nmessage file: ${o.prepared.file}` : '';
    throw new Error(`case: ${c.name}\n${o.error.message}${where}`);
  }
  const { verdicts, raw, gate } = o.verified;
  const ok = verdicts.length === c.expect.length && c.expect.every((e, i) => matches(e, verdicts[i] ?? '', c.verifier));
  const diag =
    `case: ${c.name}\nexpected: ${JSON.stringify(c.expect)}\nactual:   ${JSON.stringify(verdicts)}\n` +
    `${c.verifier} said: ${raw.trim()}\nmessage file: ${o.prepared.file}\n--- message ---\n${o.prepared.data.toString('utf8')}`;
  expect(ok, diag).toBe(true);
  c.gateFields?.forEach((fields, i) => {
    expect(gate[i], diag).toMatchObject(fields);
  });
}

describe('DKIM interop harness: dkimpy and Mail::DKIM agree with each other', () => {
  for (const c of HARNESS) it(c.name, () => check(c));
});

describe('DKIM interop: dkimgate against dkimpy and Mail::DKIM over a loopback DNS server', () => {
  it('has at least 40 uniquely named cases covering every direction', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(40);
    expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length);
    const directions = new Set(CASES.map((c) => `${c.sign.map((s) => s.by).join('+')}>${c.verifier}`));
    for (const d of ['dkimpy>dkimgate', 'dkimgate>dkimpy', 'mailDkim>dkimgate', 'dkimgate>mailDkim']) {
      expect(directions.has(d), `direction ${d} has no case`).toBe(true);
    }
  });

  for (const c of CASES) it(c.name, () => check(c));
});
