// `dkimgate doctor` from the built CLI against a real DNS server (dnsmasq on loopback): a good setup passes
// with exit 0, and each kind of problem gets its line (and exit 1 when it is a FAIL).
// Touches: a temp dir (keys, configs, users file), the dnsmasq and silent DNS server it starts and stops.

import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatTxtRecordZone } from '../../../src/keys/generate-key.js';
import { ed25519Key, rsaKey, type TestKey } from '../../helpers/dkim-test-kit.js';
import { startDnsServer, startSilentDnsServer, type RunningDnsServer, type SilentDnsServer } from '../../helpers/dns-server.js';
import { runCli } from '../../helpers/run-cli.js';

let dir = '';
let dns: RunningDnsServer;
let silent: SilentDnsServer;

const rsa = rsaKey(2048);
const ed = ed25519Key();
const small = rsaKey(1024);
const other = rsaKey(2048);

function writeKey(domain: string, selector: string, key: TestKey, mode = 0o600): void {
  mkdirSync(join(dir, 'keys', domain), { recursive: true });
  const path = join(dir, 'keys', domain, `${selector}.pem`);
  writeFileSync(path, key.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  chmodSync(path, mode);
}

/** The Ed25519 key's whole SubjectPublicKeyInfo: the usual publishing mistake (RFC 8463 wants the raw 32 bytes). */
const edSpki = (ed.publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dkimgate-doctor-'));
  writeKey('good.example', 'rsa1', rsa);
  writeKey('good.example', 'ed1', ed);
  writeKey('small.example', 's1', small);
  writeKey('open.example', 's1', rsa, 0o644);
  writeKey('loose.example', 's1', rsa, 0o666);
  writeKey('differs.example', 's1', rsa);
  writeKey('broken.example', 's1', rsa);
  writeKey('spki.example', 'ed1', ed);
  writeKey('testing.example', 's1', rsa);
  writeKey('wrongtype.example', 's1', ed);
  writeKey('quiet.example', 's1', rsa);
  writeKey('notyet.example', 's1', rsa);
  writeKey('stale.example', 's1', rsa);
  writeFileSync(join(dir, 'users'), `alice:${bcrypt.hashSync('secret', 4)}\nbob:${bcrypt.hashSync('secret', 4)}:elsewhere.example\n`);
  // The fragment keygen prints for it, not yet in DNS.
  writeFileSync(join(dir, 'notyet.zone'), `${formatTxtRecordZone('s1', 'notyet.example', rsa.record)}\n`);
  dns = await startDnsServer({
    txt: {
      'rsa1._domainkey.good.example': rsa.record,
      'ed1._domainkey.good.example': ed.record,
      's1._domainkey.small.example': small.record,
      's1._domainkey.open.example': rsa.record,
      's1._domainkey.loose.example': rsa.record,
      's1._domainkey.differs.example': other.record,
      's1._domainkey.broken.example': 'v=DKIM1; k=rsa; p=not*base64',
      'ed1._domainkey.spki.example': `v=DKIM1; k=ed25519; p=${edSpki}`,
      's1._domainkey.testing.example': `v=DKIM1; t=y; k=rsa; p=${rsa.p}`,
      's1._domainkey.wrongtype.example': ed.record,
      's1._domainkey.quiet.example': rsa.record,
      // ours and a stale one: a verifier may pick either
      's1._domainkey.stale.example': [[other.record], [rsa.record]],
    },
  });
  silent = await startSilentDnsServer();
});

afterAll(async () => {
  await dns?.stop();
  await silent?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs doctor in the temp dir with a config made of `yaml` lines (plus the DNS server unless given). */
async function doctor(name: string, yaml: string[], flags: string[] = []) {
  const config = join(dir, `${name}.yaml`);
  const withDns = yaml.some((l) => l.startsWith('dns:')) ? yaml : [...yaml, `dns: { servers: ["${dns.server}"], timeout: 2000 }`];
  writeFileSync(config, `${withDns.join('\n')}\n`);
  const r = await runCli(['doctor', '--config', config, ...flags], { cwd: dir });
  expect(r.stderr).toBe('');
  const lines = r.stdout.trim().split('\n');
  expect(lines[0]).toMatch(new RegExp(`^info config: ${config.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}; DNS: `));
  return { status: r.status, lines: lines.slice(1) };
}

const oneDomain = (domain: string, entry = '{ selector: s1 }') => ['sign:', '  domains:', `    ${domain}: ${entry}`];

describe('dkimgate doctor', () => {
  it('says ok on every line for a good RSA and Ed25519 setup, and exits 0', async () => {
    const r = await doctor('good', [...oneDomain('good.example', '{ selectors: [rsa1, { selector: ed1, digest: ed25519-sha256 }] }')]);
    expect(r.lines).toEqual([
      'ok   rsa1._domainkey.good.example key file: keys/good.example/rsa1.pem (mode 0600)',
      'ok   rsa1._domainkey.good.example key size: RSA 2048 bits, digest rsa-sha256',
      'ok   rsa1._domainkey.good.example DNS record: published (1 TXT record)',
      "ok   rsa1._domainkey.good.example matches: the record holds the private key's public half (rsa 2048 bits)",
      'ok   rsa1._domainkey.good.example in use: signs mail From good.example sent by relay hosts 127.0.0.1/32, ::1/128',
      'ok   ed1._domainkey.good.example key file: keys/good.example/ed1.pem (mode 0600)',
      'ok   ed1._domainkey.good.example key size: Ed25519, digest ed25519-sha256',
      'ok   ed1._domainkey.good.example DNS record: published (1 TXT record)',
      "ok   ed1._domainkey.good.example matches: the record holds the private key's public half (ed25519 256 bits)",
      'ok   ed1._domainkey.good.example ed25519: k=ed25519 with a raw 32-byte key (RFC 8463)',
      'ok   ed1._domainkey.good.example in use: signs mail From good.example sent by relay hosts 127.0.0.1/32, ::1/128',
    ]);
    expect(r.status).toBe(0);
  });

  it.each([
    ['a missing key file', 'missing.example', '{ selector: s1 }', [
      /^FAIL s1\._domainkey\.missing\.example key file: private key keys\/missing\.example\/s1\.pem does not exist; create it with: dkimgate keygen --domain missing\.example --selector s1$/,
      /^skip s1\._domainkey\.missing\.example key size: no key file$/,
      /^FAIL s1\._domainkey\.missing\.example DNS record: not published \(no such name\)/,
      /^skip s1\._domainkey\.missing\.example matches: no usable private key$/,
    ]],
    ['a key file others can write', 'loose.example', '{ selector: s1 }', [/^FAIL s1\._domainkey\.loose\.example key file: .*writable by others \(mode 0666\).*chmod 600/]],
    ['a key of the wrong type for the digest', 'wrongtype.example', '{ selector: s1 }', [/^FAIL s1\._domainkey\.wrongtype\.example key size: Ed25519, but the digest is rsa-sha256: set digest: ed25519-sha256/]],
    ['a selector that is not published', 'notyet.example', '{ selector: s1 }', [/^FAIL s1\._domainkey\.notyet\.example DNS record: not published \(no such name\); publish the record dkimgate keygen printed$/, /^skip .* matches: no record$/]],
    ['a record holding another key', 'differs.example', '{ selector: s1 }', [/^FAIL s1\._domainkey\.differs\.example matches: published key differs from the private key \(private key keys\/differs\.example\/s1\.pem\)$/]],
    ['another valid key published beside ours', 'stale.example', '{ selector: s1 }', [
      /^ok   s1\._domainkey\.stale\.example DNS record: published \(2 TXT records\)$/,
      /^FAIL s1\._domainkey\.stale\.example matches: another valid key record \(rsa 2048 bits\) is published beside ours: verifiers use any one of them, so signatures fail whenever they pick another; remove it and keep only ours/,
    ]],
    ['a record that does not parse', 'broken.example', '{ selector: s1 }', [/^FAIL s1\._domainkey\.broken\.example matches: p= is not valid base64/]],
    ['an Ed25519 record with the whole SubjectPublicKeyInfo', 'spki.example', '{ selector: ed1, digest: ed25519-sha256 }', [
      /^FAIL ed1\._domainkey\.spki\.example matches: ed25519 p= holds a SubjectPublicKeyInfo/,
      /^FAIL ed1\._domainkey\.spki\.example ed25519: ed25519 p= holds a SubjectPublicKeyInfo \(44 bytes\); RFC 8463 §4\.2 publishes the raw 32-byte key; publish the record dkimgate keygen --type ed25519 printed$/,
    ]],
    ['a domain only AUTH users may sign for, without a users file', 'quiet.example', '{ selector: s1, sign_condition: auth_user }', [/^FAIL s1\._domainkey\.quiet\.example in use: never used: sign_condition is auth_user but there is no users_file$/]],
  ] as const)('reports %s on its line and exits 1', async (_name, domain, entry, expected) => {
    const r = await doctor(`fail-${domain}`, oneDomain(domain, entry));
    for (const pattern of expected) expect(r.lines, String(pattern)).toContainEqual(expect.stringMatching(pattern));
    expect(r.status).toBe(1);
  });

  it.each([
    ['an RSA key under 2048 bits', 'small.example', /^warn s1\._domainkey\.small\.example key size: private key keys\/small\.example\/s1\.pem is RSA 1024 bits; RFC 8301 recommends at least 2048/],
    ['a key file others can read', 'open.example', /^warn s1\._domainkey\.open\.example key file: private key keys\/open\.example\/s1\.pem is readable by others \(mode 0644\)/],
    ['a record in testing mode (t=y)', 'testing.example', /^warn s1\._domainkey\.testing\.example matches: .*t=y: receivers treat failures as unsigned/],
  ])('warns about %s and exits 0', async (_name, domain, pattern) => {
    const r = await doctor(`warn-${domain}`, oneDomain(domain));
    expect(r.lines).toContainEqual(expect.stringMatching(pattern));
    expect(r.lines.filter((l) => !l.startsWith('ok '))).toHaveLength(1);
    expect(r.status).toBe(0);
  });

  it('reports a DNS lookup that times out as unknown, not as unpublished', async () => {
    const r = await doctor('timeout', [...oneDomain('good.example', '{ selector: rsa1 }'), `dns: { servers: ["${silent.server}"], timeout: 300 }`]);
    expect(r.lines).toContainEqual(expect.stringMatching(/^FAIL rsa1\._domainkey\.good\.example DNS record: the lookup failed \(timeout\), so it is not known whether it is published/));
    expect(r.status).toBe(1);
  });

  it('checks a zone fragment with --dns-zone before it is published', async () => {
    const r = await doctor('prepublish', oneDomain('notyet.example'), ['--dns-zone', 'notyet.zone']);
    expect(r.lines.every((l) => l.startsWith('ok '))).toBe(true);
    expect(r.status).toBe(0);
  });

  it('counts only the AUTH users allowed the domain, on listeners that offer AUTH', async () => {
    const listener = ['listen:', '  - { host: 127.0.0.1, port: 10027, allow_insecure_auth: true }', 'users_file: users', 'relay_hosts: []'];
    const allowed = await doctor('auth-ok', [...listener, ...oneDomain('good.example', '{ selector: rsa1 }')]);
    expect(allowed.lines).toContainEqual('ok   rsa1._domainkey.good.example in use: signs mail From good.example sent by 1 AUTH user');
    expect(allowed.status).toBe(0);

    const noAuth = await doctor('auth-off', ['users_file: users', 'relay_hosts: []', ...oneDomain('good.example', '{ selector: rsa1 }')]);
    expect(noAuth.lines).toContainEqual(
      'FAIL rsa1._domainkey.good.example in use: never used: no listener offers AUTH (it needs tls, or allow_insecure_auth on loopback), and no relay_hosts',
    );
    expect(noAuth.status).toBe(1);
  });

  it('says nothing is signed, and exits 0, when no domain has a selector', async () => {
    const r = await doctor('verify-only', ['verify: { enabled: true }']);
    expect(r.lines).toEqual(['info sign: no domain has a selector, nothing is signed (verify only)']);
    expect(r.status).toBe(0);
  });

  it('copies no key material into its output', async () => {
    const r = await runCli(['doctor', '--config', join(dir, 'good.yaml')], { cwd: dir });
    expect(r.stdout).not.toMatch(/PRIVATE KEY|MII/);
  });

  it('prints its checks with --help and is listed in dkimgate --help', async () => {
    const help = await runCli(['doctor', '--help']);
    expect(help.status).toBe(0);
    for (const check of ['key file', 'key size', 'DNS record', 'matches', 'ed25519', 'in use']) expect(help.stdout).toContain(check);
    expect((await runCli(['--help'])).stdout).toMatch(/^ {2}doctor \[--config FILE\]/m);
  });
});
