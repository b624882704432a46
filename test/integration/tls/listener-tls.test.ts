// The STARTTLS listener against broken and hostile TLS clients: garbage instead of a ClientHello, a handshake that
// never completes, old protocol versions and weak ciphers (openssl s_client). Touches: loopback sockets, a temp dir
// (certificate), openssl (certificate, s_client children ended by PID).

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/config.js';
import { crlf } from '../../helpers/dkim-test-kit.js';
import { Harness, listener, SIGN_DOMAIN, waitFor } from '../../helpers/daemon-harness.js';
import { writeSelfSignedCertificate } from '../../helpers/next-hop-server.js';
import { RawClient, sendMail } from '../../helpers/raw-smtp-client.js';

const harness = new Harness();
let dir = '';
const files = { key: '', cert: '' };

beforeAll(async () => {
  await harness.setup();
  dir = await mkdtemp(join(tmpdir(), 'dkimgate-tls-listener-'));
  Object.assign(files, await writeSelfSignedCertificate(dir));
});
afterEach(() => harness.cleanup());
afterAll(async () => {
  await harness.dispose();
  await rm(dir, { recursive: true, force: true });
});

const MESSAGE = crlf(`From: Alice <alice@${SIGN_DOMAIN}>\nTo: Bob <bob@example.org>\nSubject: tls\n\nHi.\n`);

function startTlsGate(limits: Partial<Config['limits']> = {}) {
  const config = harness.config({ listen: [listener({ tls: { key: files.key, cert: files.cert } })] });
  return harness.startGate({ ...config, limits: { ...config.limits, ...limits } });
}

/** A client that says STARTTLS, gets 220, and then writes `bytes` instead of a ClientHello. */
async function afterStartTls(port: number, bytes: string | Buffer): Promise<RawClient> {
  const client = await RawClient.open(port);
  harness.onCleanup(async () => client.close());
  await client.command('EHLO client.test');
  expect((await client.command('STARTTLS')).code).toBe(220);
  client.write(bytes);
  return client;
}

/**
 * openssl s_client -starttls smtp with `args`: the protocol and cipher it negotiated ("(NONE)" when the handshake
 * failed) and the TLS alert it got ("" for none).
 */
function sClient(port: number, args: string[]): Promise<{ protocol: string; cipher: string; alert: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-starttls', 'smtp', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdin.on('error', () => {}); // s_client may be gone before its QUIT (a failed handshake)
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString('latin1')));
    // s_client quits at the end of its stdin, even during the handshake: QUIT once the handshake has a result
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString('latin1');
      if (/Cipher is /.test(out) && child.stdin.writable) child.stdin.end('QUIT\n');
    });
    const timer = setTimeout(() => child.kill(), 15_000);
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      resolve({ protocol: /Protocol\s*:\s*(\S+)/.exec(out)?.[1] ?? '', cipher: /Cipher is (\S+)/.exec(out)?.[1] ?? '', alert: /alert ([a-z ]+?):/.exec(err)?.[1] ?? '' });
    });
  });
}

describe('a client that breaks the TLS handshake', () => {
  it('is logged once as a warning naming the client and the reason, not as a listener error; others are served', async () => {
    const gate = await startTlsGate();
    for (const junk of ['GET / HTTP/1.0\r\n\r\n', Buffer.from('160301ffff' + '00'.repeat(64), 'hex')]) {
      const client = await afterStartTls(gate.port, junk);
      await waitFor(() => client.isClosed, 10_000);
    }
    await waitFor(() => gate.logs.filter((l) => l.msg === 'TLS handshake with a client failed').length === 2);
    // it used to log two error lines "listener error" with the OpenSSL stack for each such client
    expect(gate.logs.filter((l) => l.level === 'error')).toEqual([]);
    const warned = gate.logs.filter((l) => l.msg === 'TLS handshake with a client failed');
    expect(warned).toHaveLength(2);
    expect(warned[0]).toMatchObject({ level: 'warn', client: '127.0.0.1', reason: 'http request' });
    expect((await sendMail(gate.port, { data: MESSAGE })).final[0]?.code).toBe(250);
  });

  it('is closed after socket_timeout when it never completes the handshake, and leaves its connection slot', async () => {
    const gate = await startTlsGate({ socketTimeout: 2, maxClients: 1 });
    // the first bytes of a ClientHello record, then silence
    const client = await afterStartTls(gate.port, Buffer.from('1603010200', 'hex'));
    const started = Date.now();
    await waitFor(() => client.isClosed, 15_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
    // max_clients 1: the slot is free again
    expect((await sendMail(gate.port, { data: MESSAGE })).final[0]?.code).toBe(250);
  });
});

/** openssl s_client -tls1_2 that asks for a renegotiation once the session is up; everything it printed. */
function renegotiatingClient(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-starttls', 'smtp', '-tls1_2'], { stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin.on('error', () => {});
    let out = '';
    let asked = false;
    const onOutput = (d: Buffer): void => {
      out += d.toString('latin1');
      // "R" on a line of its own is s_client's command for a renegotiation; QUIT once it has an outcome
      if (!asked && /Cipher is /.test(out)) {
        asked = true;
        child.stdin.write('R\n');
        setTimeout(() => child.stdin.writable && child.stdin.end('QUIT\n'), 1500);
      }
    };
    child.stdout.on('data', onOutput);
    child.stderr.on('data', onOutput);
    const timer = setTimeout(() => child.kill(), 15_000);
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

describe('TLS renegotiation', () => {
  it('is refused: the client gets "no renegotiation" and the session ends (it used to get three per ten minutes)', async () => {
    const gate = await startTlsGate();
    const out = await renegotiatingClient(gate.port);
    expect(out).toMatch(/RENEGOTIATING/);
    expect(out).toMatch(/:no renegotiation:/);
    await waitFor(() => gate.logs.some((l) => l.msg === 'TLS handshake with a client failed'));
  });
});

describe('a listener without tls', () => {
  it('refuses STARTTLS (it used to start TLS with the demo key and certificate smtp-server ships) and goes on in clear', async () => {
    const gate = await harness.startGate(harness.config());
    const client = await RawClient.open(gate.port);
    harness.onCleanup(async () => client.close());
    expect((await client.command('EHLO client.test')).text).not.toMatch(/STARTTLS/);
    expect((await client.command('STARTTLS')).text).toMatch(/^5\d\d 5\.5\.\d /);
    // still plain SMTP: the next command is read as a command, not as a TLS record
    expect((await client.command(`MAIL FROM:<alice@${SIGN_DOMAIN}>`)).code).toBe(250);
  });
});

describe('protocol versions and ciphers', () => {
  it('negotiates TLS 1.3 and 1.2 with forward secrecy; refuses TLS 1.0, 1.1 and weak or non-forward-secret ciphers', async () => {
    const gate = await startTlsGate();
    expect(await sClient(gate.port, ['-tls1_3'])).toMatchObject({ protocol: 'TLSv1.3' });
    const tls12 = await sClient(gate.port, ['-tls1_2']);
    expect(tls12.protocol).toBe('TLSv1.2');
    expect(tls12.cipher).toMatch(/^ECDHE-/);
    // TLS 1.0 and 1.1 are refused as such (RFC 8996), whatever OpenSSL's security level: the client is told
    // "protocol version" (it used to get "internal error"), the log says "unsupported protocol"
    for (const version of ['-tls1', '-tls1_1']) {
      expect(await sClient(gate.port, [version, '-cipher', 'DEFAULT@SECLEVEL=0'])).toMatchObject({ cipher: '(NONE)', alert: 'protocol version' });
    }
    await waitFor(() => gate.logs.filter((l) => l.msg === 'TLS handshake with a client failed').length === 2);
    expect(gate.logs.filter((l) => l.msg === 'TLS handshake with a client failed').map((l) => l.reason)).toEqual(['unsupported protocol', 'unsupported protocol']);
    // offered even at OpenSSL's security level 0 by the client: the refusal is ours
    for (const args of [
      ['-tls1', '-cipher', 'DEFAULT@SECLEVEL=0'],
      ['-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0'],
      ['-tls1_2', '-cipher', 'RC4:3DES:NULL:aNULL:EXPORT@SECLEVEL=0'],
      ['-tls1_2', '-cipher', 'AES128-SHA:AES256-SHA@SECLEVEL=0'],
    ]) {
      expect({ args, cipher: (await sClient(gate.port, args)).cipher }).toEqual({ args, cipher: '(NONE)' });
    }
  }, 60_000);
});
