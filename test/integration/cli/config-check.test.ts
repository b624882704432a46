import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError, type CliIo } from '../../../src/cli/cli-error.js';
import { runConfigCheck } from '../../../src/cli/config-check-command.js';
import { runKeygen } from '../../../src/cli/keygen-command.js';
import { createSelfSignedCertificate } from '../../helpers/next-hop-server.js';

const EXAMPLE = new URL('../../../config/dkimgate.example.yaml', import.meta.url).pathname;
const CLI = new URL('../../../dist/cli.js', import.meta.url).pathname;

let dir = '';
let counter = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dkimgate-config-check-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function captureIo() {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stdout.on('data', (chunk: Buffer) => out.push(chunk));
  stderr.on('data', (chunk: Buffer) => err.push(chunk));
  const io: CliIo = { stdout, stderr, stdin: new PassThrough() };
  return { io, stdout: () => Buffer.concat(out).toString('utf8'), stderr: () => Buffer.concat(err).toString('utf8') };
}

async function check(args: string[]) {
  const capture = captureIo();
  const status = await runConfigCheck(args, capture.io);
  return { status, stdout: capture.stdout(), stderr: capture.stderr() };
}

async function keygen(keysDir: string, domain: string, selector: string, type: 'rsa' | 'ed25519' = 'rsa') {
  const status = await runKeygen(['--domain', domain, '--selector', selector, '--type', type, '--keys-dir', keysDir], captureIo().io);
  expect(status).toBe(0);
}

/** Writes `text` as a fresh config file in its own directory; returns both paths. */
async function configFile(text: string): Promise<{ path: string; home: string }> {
  const home = join(dir, `case-${++counter}`);
  await mkdir(home);
  const path = join(home, 'dkimgate.yaml');
  await writeFile(path, text);
  return { path, home };
}

/** The example configuration with its key template made absolute (same line numbers). */
function exampleWithKeysIn(keysDir: string): string {
  const text = readFileSync(EXAMPLE, 'utf8');
  const replaced = text.replace('key: "keys/%{d}/%{s}.pem"', `key: "${keysDir}/%{d}/%{s}.pem"`);
  expect(replaced).not.toBe(text);
  return replaced;
}

function lineOf(text: string, needle: string): number {
  return text.split('\n').findIndex((line) => line.includes(needle)) + 1;
}

describe('dkimgate config check', () => {
  it('reports each missing signing key of the example with its line and the keygen command (exit 2)', async () => {
    const { path } = await configFile(exampleWithKeysIn(join(dir, 'no-keys-here')));
    const text = readFileSync(path, 'utf8');
    const result = await check(['--config', path]);
    expect(result.status).toBe(2);
    expect(result.stdout).toBe('');
    const keys = join(dir, 'no-keys-here');
    expect(result.stderr.trim().split('\n')).toEqual([
      `${path}:${lineOf(text, 'example.com: { selector: s2026 }')}: sign.domains.example.com.selector: key for example.com selector s2026: private key ${keys}/example.com/s2026.pem does not exist; create it with: dkimgate keygen --domain example.com --selector s2026 --keys-dir ${keys}`,
      `${path}:${lineOf(text, '- rsa2026')}: sign.domains.example.net.selectors[0]: key for example.net selector rsa2026: private key ${keys}/example.net/rsa2026.pem does not exist; create it with: dkimgate keygen --domain example.net --selector rsa2026 --keys-dir ${keys}`,
      `${path}:${lineOf(text, '{ selector: ed2026')}: sign.domains.example.net.selectors[1]: key for example.net selector ed2026: private key ${keys}/example.net/ed2026.pem does not exist; create it with: dkimgate keygen --domain example.net --selector ed2026 --type ed25519 --keys-dir ${keys}`,
      `${path}:${lineOf(text, 'mail.example.org:')}: sign.domains.mail.example.org.selector: key for mail.example.org selector s1: private key ${keys}/example.org/s1.pem does not exist; create it with: dkimgate keygen --domain example.org --selector s1 --keys-dir ${keys}`,
    ]);
  });

  it('passes the example once its keys exist', async () => {
    const keysDir = join(dir, 'example-keys');
    await keygen(keysDir, 'example.com', 's2026');
    await keygen(keysDir, 'example.net', 'rsa2026');
    await keygen(keysDir, 'example.net', 'ed2026', 'ed25519');
    await keygen(keysDir, 'example.org', 's1');
    const { path } = await configFile(exampleWithKeysIn(keysDir));
    const result = await check(['--config', path]);
    expect([result.status, result.stdout, result.stderr]).toEqual([0, `ok: ${path}\n`, '']);
  });

  it('prints every schema problem as FILE:LINE: key: message and exits 2', async () => {
    const { path } = await configFile('listen:\n  - { port: 99999 }\nsign:\n  digest: rsa-md5\n');
    const result = await check(['--config', path]);
    expect(result.status).toBe(2);
    expect(result.stderr).toBe(
      `${path}:2: listen[0].port: must be a whole number from 0 to 65535\n${path}:4: sign.digest: must be one of rsa-sha256, rsa-sha1, ed25519-sha256\n`,
    );
  });

  it('refuses a key whose type does not match the digest', async () => {
    const keysDir = join(dir, 'mismatch-keys');
    await keygen(keysDir, 'example.com', 's1', 'ed25519');
    const { path } = await configFile(`sign:\n  key: "${keysDir}/%{d}/%{s}.pem"\n  domains:\n    example.com: { selector: s1 }\n`);
    const result = await check(['--config', path]);
    expect(result.status).toBe(2);
    expect(result.stderr).toBe(
      `${path}:4: sign.domains.example.com.selector: key for example.com selector s1: ${keysDir}/example.com/s1.pem is an Ed25519 key but digest is rsa-sha256; set digest: ed25519-sha256 for this selector or point it at an RSA key\n`,
    );
  });

  it('refuses a key file others can write, and warns about one others can read', async () => {
    const keysDir = join(dir, 'perm-keys');
    await keygen(keysDir, 'example.com', 'w', 'ed25519');
    await keygen(keysDir, 'example.com', 'r', 'ed25519');
    await chmod(join(keysDir, 'example.com', 'w.pem'), 0o666);
    await chmod(join(keysDir, 'example.com', 'r.pem'), 0o644);
    const domain = (selector: string) =>
      `sign:\n  digest: ed25519-sha256\n  key: "${keysDir}/%{d}/%{s}.pem"\n  domains:\n    example.com: { selector: ${selector} }\n`;
    const writable = await configFile(domain('w'));
    const refused = await check(['--config', writable.path]);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain('is writable by others (mode 0666)');
    const readable = await configFile(domain('r'));
    const warned = await check(['--config', readable.path]);
    expect(warned.status).toBe(0);
    expect(warned.stdout).toBe(`ok: ${readable.path}\n`);
    expect(warned.stderr).toContain(`${readable.path}:5: sign.domains.example.com.selector: warning: key for example.com selector r: private key`);
    expect(warned.stderr).toContain('is readable by others (mode 0644)');
  });

  it('parses the zone files and names the bad line', async () => {
    const good = join(dir, 'good.zone');
    const bad = join(dir, 'bad.zone');
    await writeFile(good, '$ORIGIN example.com.\ns1._domainkey IN TXT ( "v=DKIM1; k=ed25519; "\n  "p=abc" )\n');
    await writeFile(bad, '$ORIGIN example.com.\ns1._domainkey IN TXT "unterminated\n');
    const ok = await configFile(`dns:\n  zone_files: ["${good}"]\n`);
    expect((await check(['--config', ok.path])).status).toBe(0);
    const broken = await configFile(`dns:\n  zone_files:\n    - "${good}"\n    - "${bad}"\n    - "${join(dir, 'absent.zone')}"\n`);
    const result = await check(['--config', broken.path]);
    expect(result.status).toBe(2);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(new RegExp(`^${broken.path}:4: dns\\.zone_files\\[1\\]: zone file ${bad}:2: `));
    expect(lines[1]).toBe(`${broken.path}:5: dns.zone_files[2]: zone file ${join(dir, 'absent.zone')}: no such file; check the path (start from config/dkimgate.example.yaml)`);
  });

  it('reports missing TLS and users files', async () => {
    const { path } = await configFile(
      `users_file: ${join(dir, 'users.htpasswd')}\nlisten:\n  - port: 2525\n    tls: { key: ${join(dir, 'tls.key')}, cert: ${dir} }\n`,
    );
    const result = await check(['--config', path]);
    expect(result.status).toBe(2);
    expect(result.stderr.trim().split('\n').map((line) => line.slice(path.length).split(':').slice(0, 3).join(':'))).toEqual([
      ':4: listen[0].tls.key',
      ':4: listen[0].tls.cert',
      ':1: users_file',
    ]);
  });

  it('parses the users file as the daemon does: a line it would refuse fails the check, a slow cost warns', async () => {
    const users = join(dir, `users-${++counter}.htpasswd`);
    await writeFile(users, `alice:${'$2y$05$' + 'a'.repeat(53)}\nbob:plain-text-password\n`, { mode: 0o600 });
    const { path } = await configFile(`users_file: ${users}\n`);
    const refused = await check(['--config', path]);
    expect([refused.status, refused.stderr]).toEqual([
      2,
      `${path}:1: users_file: ${users}:2: user "bob" has no bcrypt hash (plain text or an unknown scheme); only bcrypt hashes ($2y$, $2b$, $2a$) are accepted: recreate it with: htpasswd -B ${users} bob\n`,
    ]);

    await writeFile(users, `alice:${'$2y$14$' + 'a'.repeat(53)}\n`);
    const slow = await check(['--config', path]);
    expect(slow.status).toBe(0);
    expect(slow.stderr).toMatch(new RegExp(`^${path}:1: users_file: .*bcrypt cost 14 \\("alice"\\) takes about 1\\.2 s of CPU per AUTH`));
  });

  it('warns about a user limited to domains none of which sign.domains signs for, as start and reload do', async () => {
    const keysDir = join(dir, `keys-${++counter}`);
    await keygen(keysDir, 'example.com', 's1');
    const users = join(dir, `users-${++counter}.htpasswd`);
    const hash = '$2y$05$' + 'a'.repeat(53);
    await writeFile(users, `alice:${hash}:example.net\nbob:${hash}:example.com\ncarol:${hash}\n`, { mode: 0o600 });
    const { path } = await configFile(`users_file: ${users}\nsign:\n  key: "${keysDir}/%{d}/%{s}.pem"\n  domains:\n    example.com: { selector: s1 }\n`);
    // it used to pass in silence: alice authenticates, and nothing she sends is ever signed
    expect(await check(['--config', path])).toMatchObject({
      status: 0,
      stderr: `${path}:1: users_file: warning: users file ${users}: alice may sign only for example.net, and sign.domains has none of them: nothing alice sends is signed; add the domain to sign.domains or to alice's list\n`,
    });
  });

  it('does not warn that auth_user has no users_file when DKIMGATE_USERS_FILE gives one, and warns when it turns them off', async () => {
    const keysDir = join(dir, `keys-${++counter}`);
    await keygen(keysDir, 'example.com', 's1');
    const users = join(dir, `users-${++counter}.htpasswd`);
    await writeFile(users, `alice:${'$2y$05$' + 'a'.repeat(53)}\n`, { mode: 0o600 });
    const yaml = (usersLine: string) => `${usersLine}sign:\n  sign_condition: auth_user\n  key: "${keysDir}/%{d}/%{s}.pem"\n  domains:\n    example.com: { selector: s1 }\n`;
    const withEnvironment = async (text: string, value: string) => {
      const { path } = await configFile(text);
      process.env.DKIMGATE_USERS_FILE = value;
      try {
        return await check(['--config', path]);
      } finally {
        delete process.env.DKIMGATE_USERS_FILE;
      }
    };
    // it used to warn about the file's missing users_file although the environment sets one
    expect(await withEnvironment(yaml(''), users)).toMatchObject({ status: 0, stderr: '' });
    expect(await withEnvironment(yaml(`users_file: ${users}\n`), 'off')).toMatchObject({
      status: 0,
      stderr: 'environment: DKIMGATE_USERS_FILE: warning: auth_user needs SMTP AUTH, but users_file is not set: no client can authenticate, so nothing will be signed\n',
    });
  });

  it('reads the TLS files as the daemon does: a readable file that is no certificate fails the check', async () => {
    const [served, other] = [await createSelfSignedCertificate(), await createSelfSignedCertificate()];
    const tls = { key: join(dir, `tls-key-${++counter}.pem`), cert: join(dir, `tls-cert-${counter}.pem`) };
    await writeFile(tls.key, other.key, { mode: 0o600 });
    await writeFile(tls.cert, served.key); // the key where the certificate belongs
    const { path } = await configFile(`listen:\n  - port: 2525\n    tls: { key: ${tls.key}, cert: ${tls.cert} }\n`);
    const swapped = await check(['--config', path]);
    expect([swapped.status, swapped.stderr]).toEqual([2, `${path}:3: listen[0].tls.cert: TLS certificate ${tls.cert} holds a private key, not a certificate\n`]);
    await writeFile(tls.cert, served.cert);
    const mismatched = await check(['--config', path]);
    expect([mismatched.status, mismatched.stderr]).toEqual([
      2,
      `${path}:3: listen[0].tls.key: TLS key ${tls.key} is not the private key of certificate ${tls.cert} (one renewed without the other?)\n`,
    ]);
    await writeFile(tls.key, served.key);
    expect((await check(['--config', path])).status).toBe(0);
  });

  it('refuses a next_hop.ca_file that holds no certificate (every TLS connection to the next hop would fail)', async () => {
    const ca = join(dir, `ca-${++counter}.pem`);
    await writeFile(ca, (await createSelfSignedCertificate()).key);
    const { path } = await configFile(`next_hop: { host: 127.0.0.1, port: 10026, tls: starttls, ca_file: ${ca} }\n`);
    const result = await check(['--config', path]);
    expect([result.status, result.stderr]).toEqual([
      2,
      `${path}:1: next_hop.ca_file: CA file ${ca} holds no PEM certificate ("-----BEGIN CERTIFICATE-----"): give the next hop's certificate or the CA that issued it\n`,
    ]);
  });

  it('reports a spool_dir where no file can be created', async () => {
    const { path } = await configFile(`limits:\n  spool_dir: ${join(dir, 'no-such-spool')}\n`);
    const result = await check(['--config', path]);
    expect([result.status, result.stderr]).toEqual([2, `${path}:2: limits.spool_dir: cannot create spool files in ${join(dir, 'no-such-spool')}: no such directory\n`]);
  });

  it('checks the system temporary directory when spool_dir is not set, as start does', async () => {
    const { path } = await configFile('authserv_id: mx.example.net\n');
    const missing = join(dir, 'no-such-tmp');
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = missing;
    try {
      // it used to say ok, and serve then refused to start
      expect(await check(['--config', path])).toMatchObject({ status: 2, stderr: `${path}:1: limits.spool_dir: cannot create spool files in ${missing}: no such directory\n` });
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
  });

  it('names a --config file that does not exist (exit 2)', async () => {
    const path = join(dir, 'absent.yaml');
    const result = await check(['--config', path]);
    expect([result.status, result.stderr]).toEqual([2, `${path}: no such file; check the path (start from config/dkimgate.example.yaml)\n`]);
  });

  it('refuses unknown options with a usage error', async () => {
    await expect(check(['--conf', 'x.yaml'])).rejects.toBeInstanceOf(UsageError);
  });

  it('prints its usage for --help', async () => {
    const result = await check(['--help']);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^Usage: dkimgate config check \[--config FILE\]/);
  });

  it.runIf(existsSync(CLI))('checks the built-in defaults when config/dkimgate.yaml is absent (built CLI)', async () => {
    const home = join(dir, 'empty-cwd');
    await mkdir(home);
    const run = spawnSync(process.execPath, [CLI, 'config', 'check'], { cwd: home, encoding: 'utf8', timeout: 20_000 });
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^ok: built-in defaults \(config\/dkimgate\.yaml does not exist/);
  });

  it.runIf(existsSync(CLI))('finds relative key paths from the working directory (built CLI)', async () => {
    const home = join(dir, 'relative-cwd');
    await mkdir(home);
    await keygen(join(home, 'keys'), 'example.com', 's2026');
    await writeFile(join(home, 'dkimgate.yaml'), 'sign:\n  domains:\n    example.com: { selector: s2026 }\n');
    const run = spawnSync(process.execPath, [CLI, 'config', 'check', '--config', 'dkimgate.yaml'], { cwd: home, encoding: 'utf8', timeout: 20_000 });
    expect([run.status, run.stdout, run.stderr]).toEqual([0, 'ok: dkimgate.yaml\n', '']);
  });

  it.runIf(existsSync(CLI))('applies DKIMGATE_* overrides and says which, and names the variable that is wrong (built CLI)', async () => {
    const home = join(dir, 'environment-cwd');
    await mkdir(home);
    await keygen(join(home, 'secrets'), 'example.com', 's2026');
    await writeFile(join(home, 'dkimgate.yaml'), 'sign:\n  domains:\n    example.com: { selector: s2026 }\n');
    const env = { ...process.env, DKIMGATE_CONFIG: 'dkimgate.yaml', DKIMGATE_SIGN_KEY: 'secrets/%{d}/%{s}.pem', DKIMGATE_NEXT_HOP: 'postfix:10026' };
    const good = spawnSync(process.execPath, [CLI, 'config', 'check'], { cwd: home, env, encoding: 'utf8', timeout: 20_000 });
    expect([good.status, good.stdout, good.stderr]).toEqual([0, 'ok: dkimgate.yaml with DKIMGATE_NEXT_HOP, DKIMGATE_SIGN_KEY from the environment\n', '']);
    const bad = spawnSync(process.execPath, [CLI, 'config', 'check'], { cwd: home, env: { ...env, DKIMGATE_NEXT_HOP: 'postfix' }, encoding: 'utf8', timeout: 20_000 });
    expect([bad.status, bad.stdout]).toEqual([2, '']);
    expect(bad.stderr).toBe('environment: DKIMGATE_NEXT_HOP: "postfix": write HOST:PORT, e.g. 192.0.2.25:10026, postfix:10026 or [2001:db8::25]:10026\n');
  });
});
