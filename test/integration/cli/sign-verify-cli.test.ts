import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, runCli } from '../../helpers/run-cli.js';

const NOW = '1700000000';
let dir: string;
let zone: string;

const MESSAGE_LF = 'From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: Hello\nDate: Tue, 14 Nov 2023 22:13:20 +0000\n\nHi Bob.\n';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dkimgate-cli-'));
  const rsa = await runCli(['keygen', '--domain', 'example.com', '--selector', 's1', '--keys-dir', join(dir, 'keys')]);
  const ed = await runCli(['keygen', '--domain', 'example.com', '--selector', 'ed', '--type', 'ed25519', '--keys-dir', join(dir, 'keys')]);
  expect(rsa.status).toBe(0);
  expect(ed.status).toBe(0);
  zone = join(dir, 'example.com.zone');
  // The zone fragment keygen prints is pasted as is.
  writeFileSync(zone, `$TTL 3600\n${rsa.stdout}${ed.stdout}`);
  writeFileSync(join(dir, 'msg-lf.eml'), MESSAGE_LF);
  writeFileSync(join(dir, 'msg-crlf.eml'), MESSAGE_LF.replace(/\n/g, '\r\n'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function signFile(file: string, extra: string[] = []) {
  const key = join(dir, 'keys/example.com/s1.pem');
  return runCli(['sign', '--domain', 'example.com', '--selector', 's1', '--key', key, '--now', NOW, ...extra, join(dir, file)]);
}

async function verifyJson(input: Buffer, extra: string[] = []) {
  const r = await runCli(['verify', '--json', '--dns-zone', zone, '--now', NOW, ...extra], { input });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout) as { authservId: string; authenticationResults: string; signatures: Record<string, unknown>[] };
}

describe('dkimgate sign and verify', () => {
  it('signs a message that then verifies as pass against the pasted keygen record', async () => {
    const signed = await signFile('msg-crlf.eml');
    expect(signed.status).toBe(0);
    const report = await verifyJson(signed.stdoutBytes);
    expect(report.signatures).toEqual([
      expect.objectContaining({ result: 'pass', reason: null, domain: 'example.com', selector: 's1', algorithm: 'rsa-sha256', keyBits: 2048, testing: false }),
    ]);
  });

  it('keeps the message byte-exact after the prepended signature, in the file’s own LF line endings', async () => {
    const signed = await signFile('msg-lf.eml');
    expect(signed.stdout.endsWith(MESSAGE_LF)).toBe(true);
    expect(signed.stdout.startsWith('DKIM-Signature: v=1; a=rsa-sha256;')).toBe(true);
    expect(signed.stdout).not.toContain('\r');
    expect((await verifyJson(signed.stdoutBytes)).signatures[0]).toMatchObject({ result: 'pass' });
  });

  it('signs with Ed25519 by default for an Ed25519 key, and stacks on an RSA signature', async () => {
    const first = await signFile('msg-crlf.eml');
    const second = await runCli(['sign', '--domain', 'example.com', '--selector', 'ed', '--key', join(dir, 'keys/example.com/ed.pem'), '--now', NOW], { input: first.stdoutBytes });
    expect(second.status).toBe(0);
    const report = await verifyJson(second.stdoutBytes);
    expect(report.signatures.map((s) => [s.algorithm, s.result])).toEqual([
      ['ed25519-sha256', 'pass'],
      ['rsa-sha256', 'pass'],
    ]);
  });

  it('takes the shared --dns-server and --dns-zone options and signs exactly as without them', async () => {
    const plain = await signFile('msg-crlf.eml');
    const withDns = await signFile('msg-crlf.eml', ['--dns-server', '127.0.0.1:1', '--dns-server', '[::1]:5353', '--dns-zone', zone]);
    expect(withDns.stderr).toBe('');
    expect(withDns.status).toBe(0);
    expect(withDns.stdoutBytes.equals(plain.stdoutBytes)).toBe(true);
    expect((await runCli(['sign', '--help'])).stdout).toMatch(/--dns-zone FILE +signing looks nothing up/);
  });

  it('honours every signing option of the contract', async () => {
    const signed = await signFile('msg-crlf.eml', [
      '--header-canon', 'simple', '--body-canon', 'simple', '--headerlist', 'From:From:Subject:To:Cc?',
      '--identity', 'alice@example.com', '--lifetime', '2', '--body-length-limit', '--copy-headers',
    ]);
    expect(signed.status).toBe(0);
    const field = signed.stdout.slice(0, signed.stdout.indexOf('\nFrom:')).replace(/\r?\n\t/g, ' ');
    expect(field).toMatch(/c=simple\/simple;/);
    expect(field).toMatch(/i=alice@example\.com;/);
    expect(field).toMatch(/x=1700007200;/);
    expect(field).toMatch(/l=\d+;/);
    expect(field.replace(/\s/g, '')).toContain('h=From:From:Subject:To;');
    expect(field).toMatch(/z=From:Alice=20<alice@example\.com>\|/);
    const report = await verifyJson(signed.stdoutBytes);
    expect(report.signatures[0]).toMatchObject({ result: 'pass', identity: 'alice@example.com', canonicalization: 'simple/simple' });
    const late = await verifyJson(signed.stdoutBytes, ['--now', '1700007201']);
    expect(late.signatures[0]).toMatchObject({ result: 'policy', reasonCode: 'signature_expired' });
  });

  it('takes --identity with its domain in another case or with a trailing dot, writing it as d= is', async () => {
    const signed = await signFile('msg-crlf.eml', ['--identity', 'alice@Mail.EXAMPLE.com.']);
    expect(signed.status).toBe(0);
    const field = signed.stdout.slice(0, signed.stdout.indexOf('\nFrom:')).replace(/\r?\n\t/g, ' ');
    expect(field).toMatch(/ i=alice@mail\.example\.com;/);
    expect((await verifyJson(signed.stdoutBytes)).signatures[0]).toMatchObject({ result: 'pass', identity: 'alice@mail.example.com' });
  });

  it('refuses, in one line and exit 1, a message with two From fields, which every verifier would reject', async () => {
    writeFileSync(join(dir, 'two-from.eml'), MESSAGE_LF.replace('To:', 'From: Mallory <mallory@example.net>\nTo:'));
    const r = await signFile('two-from.eml');
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('dkimgate sign: cannot sign: message has 2 From fields; RFC 5322 allows one, and verifiers reject every signature of such a message\n');
  });

  it('prepends an Authentication-Results field and leaves the message byte-exact', async () => {
    const signed = await signFile('msg-lf.eml');
    const r = await runCli(['verify', '--authserv-id', 'mx.example.net', '--dns-zone', zone, '--now', NOW], { input: signed.stdoutBytes });
    expect(r.status).toBe(0);
    expect(r.stdout.startsWith('Authentication-Results: mx.example.net;\n\tdkim=pass')).toBe(true);
    expect(r.stdoutBytes.subarray(r.stdoutBytes.length - signed.stdoutBytes.length).equals(signed.stdoutBytes)).toBe(true);
  });

  it('refuses, in one line and exit 1, to put a field above a message whose first line is a continuation', async () => {
    const folded = Buffer.from(`\tdkim=pass header.d=paypal.example\n${MESSAGE_LF}`);
    writeFileSync(join(dir, 'folded.eml'), folded);
    const signed = await signFile('folded.eml');
    expect(signed.status).toBe(1);
    expect(signed.stdout).toBe('');
    expect(signed.stderr).toMatch(/folded\.eml: the first line starts with a space or tab .* part of the DKIM-Signature put above it; remove or unfold that line\n$/);
    const verified = await runCli(['verify', '--dns-zone', zone, '--now', NOW], { input: folded });
    expect(verified.status).toBe(1);
    expect(verified.stdout).toBe('');
    expect(verified.stderr).toMatch(/^dkimgate verify: stdin: the first line starts with a space or tab .* Authentication-Results field put above it/);
    // --json prints no message, so nothing can be appended to our field: it verifies
    expect((await verifyJson(folded)).signatures).toEqual([]);
  });

  it('reports dkim=none for an unsigned message', async () => {
    const report = await verifyJson(Buffer.from(MESSAGE_LF), ['--authserv-id', 'mx.example.net']);
    expect(report.signatures).toEqual([]);
    expect(report.authenticationResults).toBe('Authentication-Results: mx.example.net; dkim=none');
  });

  it('reports fail for a tampered body and still exits 0', async () => {
    const signed = await signFile('msg-crlf.eml');
    const tampered = Buffer.from(signed.stdout.replace('Hi Bob.', 'Hi Eve.'));
    const report = await verifyJson(tampered);
    expect(report.signatures[0]).toMatchObject({ result: 'fail', reason: 'body hash did not verify', reasonCode: 'body_hash_mismatch' });
  });

  it('reports permerror when the selector is not published in the zone', async () => {
    const signed = await signFile('msg-crlf.eml');
    const other = join(dir, 'other.zone');
    writeFileSync(other, 'nothing._domainkey.example.com. IN TXT "v=DKIM1; p="\n');
    const r = await runCli(['verify', '--json', '--dns-zone', other, '--dns-server', '127.0.0.1:1', '--now', NOW], { input: signed.stdoutBytes });
    const sig = (JSON.parse(r.stdout) as { signatures: { result: string }[] }).signatures[0]!;
    // The static zone does not hold the name, so it goes to the (unreachable) DNS server: a temporary error.
    expect(sig.result).toBe('temperror');
  });
});

describe('dkimgate command-line errors', () => {
  it.each([
    [['sign', '--domain', 'example.com'], 2, /needs --selector/],
    [['sign', '--domain', 'example.com', '--selector', 's1', '--key', '/nonexistent/key.pem'], 1, /nonexistent\/key\.pem/],
    [['verify', '--bogus'], 2, /^dkimgate verify: unknown option --bogus \(run dkimgate verify --help\)\n$/],
    [['verify', '--dns-zone', '/nonexistent/keys.zone'], 1, /^dkimgate verify: --dns-zone \/nonexistent\/keys\.zone: cannot read zone file: no such file\n$/],
    [['sign', '--domain', 'example.com', '--selector', 's1', '--key', 'k.pem', '--dns-zone', '/nonexistent/keys.zone'], 1, /^dkimgate sign: --dns-zone \/nonexistent\/keys\.zone: cannot read zone file: no such file\n$/],
    [['verify', '--json=yes'], 2, /^dkimgate verify: option --json takes no value \(run dkimgate verify --help\)\n$/],
    [['keycheck', '--config'], 2, /^dkimgate keycheck: option --config needs a value \(run dkimgate keycheck --help\)\n$/],
    [['verify', '/nonexistent/message.eml'], 1, /\/nonexistent\/message\.eml: cannot read message: no such file/],
    [['verify', '--now', 'yesterday'], 2, /--now yesterday/],
    [['verify', '--min-key-bits', '16384'], 2, /--min-key-bits 16384: expected a whole number from 1 to 8192/],
    [['verify', '--max-signatures', '5000'], 2, /--max-signatures 5000: expected a whole number from 1 to 1000/],
    [['verify', '--dns-server', 'not a server'], 2, /--dns-server not a server: "not a server" is not an IPv4 address/],
    [['sign', '--domain', 'example.com', '--selector', 's1', '--key', 'k.pem', '--dns-server', 'not a server'], 2, /^dkimgate sign: --dns-server not a server: "not a server" is not an IPv4 address/],
    [['frobnicate'], 2, /unknown command "frobnicate"/],
    // x= must be a decimal integer of at most 12 digits: 1e20 hours once wrote x=3.6e+23
    [['sign', '--domain', 'example.com', '--selector', 's1', '--key', 'k.pem', '--lifetime', '1e20'], 2, /^dkimgate sign: --lifetime 1e20: expected hours from 0 to 87600/],
  ])('dkimgate %j exits %i with one clear line', async (args, status, message) => {
    const r = await runCli(args as string[]);
    expect(r.status).toBe(status);
    expect(r.stderr).toMatch(message as RegExp);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('refuses a message file over the size limit by its size, without reading it', async () => {
    // sparse: 3 GiB on paper, nothing on disk (reading it whole was the old way: past 2 GiB Node refuses)
    const huge = join(dir, 'huge.eml');
    const fd = openSync(huge, 'w');
    ftruncateSync(fd, 3 * 2 ** 30);
    closeSync(fd);
    const r = await runCli(['verify', huge]);
    rmSync(huge);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`dkimgate verify: ${huge}: message of ${3 * 2 ** 30} bytes is over the limit of 52428800 (the daemon's default max_message_size)\n`);
  });

  it('refuses a message on stdin once it passes the size limit', async () => {
    const r = await runCli(['sign', '--domain', 'example.com', '--selector', 's1', '--key', join(dir, 'keys', 'example.com', 's1.pem')], { input: Buffer.alloc(52428801, 'x') });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^dkimgate sign: stdin: message is over the limit of 52428800 bytes/);
  });

  it.each([['verify'], ['sign'], ['keygen'], ['keycheck'], ['doctor'], ['config', 'check'], ['serve']])('dkimgate %s --bogus names the option in one line and exits 2', async (...cmd) => {
    const r = await runCli([...cmd, '--bogus']);
    expect([r.status, r.stderr]).toEqual([2, `dkimgate ${cmd[0]}: unknown option --bogus (run dkimgate ${cmd.join(' ')} --help)\n`]);
  });

  it.each([['verify'], ['sign'], ['keygen'], ['keycheck'], ['config', 'check'], ['serve']])('dkimgate %s --help prints usage and exits 0', async (...cmd) => {
    const r = await runCli([...cmd, '--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/usage: dkimgate/i);
  });
});

describe('dkimgate output into a pipe or a full disk', () => {
  // A 3 MB message, so that the output outlasts the pipe's buffer.
  const bigMessage = Buffer.concat([Buffer.from('From: a@example.com\r\nSubject: big\r\n\r\n'), Buffer.alloc(3 << 20, 'line of text\r\n')]);

  /** Runs verify on the big message with stdout going to `stdout`; `onStart` sees the child first. */
  function verifyInto(stdout: 'pipe' | number, onStart: (child: ChildProcess) => void = () => {}): Promise<{ status: number | null; stderr: string }> {
    const child = spawn(process.execPath, [CLI, 'verify', '--dns-server', '127.0.0.1:1'], { stdio: ['pipe', stdout, 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    onStart(child);
    child.stdin!.end(bigMessage);
    return new Promise((resolve) => child.on('close', (status) => resolve({ status, stderr })));
  }

  it('stops without a message when the reader goes away (`| head`)', async () => {
    const r = await verifyInto('pipe', (child) => child.stdout!.once('data', () => child.stdout!.destroy()));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(1);
  });

  it('says in one line that the output could not be written (/dev/full)', async () => {
    const r = await verifyInto(openSync('/dev/full', 'w'));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^dkimgate: cannot write the output: ENOSPC\n$/);
  });
});
