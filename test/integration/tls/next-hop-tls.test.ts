// Towards the next hop with next_hop.tls: starttls: a next hop that cannot or will not do TLS, or whose certificate
// does not hold (another name, expired, self-signed), never gets the message or our credentials in clear; the client
// is told 451 (it keeps the message) and the log says why. Touches: loopback sockets, a temp dir (certificates made
// with openssl req/ca), a scripted plain-TCP next hop.

import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/config.js';
import { crlf } from '../../helpers/dkim-test-kit.js';
import { Harness, SIGN_DOMAIN, waitFor, type Gate } from '../../helpers/daemon-harness.js';
import type { NextHopServerOptions } from '../../helpers/next-hop-server.js';
import { sendMail } from '../../helpers/raw-smtp-client.js';

const execFileAsync = promisify(execFile);
const harness = new Harness();
let dir = '';

beforeAll(async () => {
  await harness.setup();
  dir = await mkdtemp(join(tmpdir(), 'dkimgate-tls-hop-'));
});
afterEach(() => harness.cleanup());
afterAll(async () => {
  await harness.dispose();
  await rm(dir, { recursive: true, force: true });
});

const MESSAGE = crlf(`From: Alice <alice@${SIGN_DOMAIN}>\nTo: Bob <bob@example.org>\nSubject: hop\n\nHi.\n`);
const HOP_AUTH = { user: 'gate', pass: 'hop-secret-7' };

/** A self-signed certificate for `subjectAltName`, valid between the two dates (openssl ca, which can back-date). */
async function certificate(name: string, subjectAltName: string, notBefore = '20200101000000Z', notAfter = '20991231000000Z') {
  const at = join(dir, `${name}-${notAfter}`);
  await mkdir(at, { recursive: true });
  await writeFile(join(at, 'index.txt'), '');
  await writeFile(join(at, 'serial'), '01\n');
  const caConfig = ['[ca]', 'default_ca = d', '[d]', 'database = index.txt', 'new_certs_dir = .', 'serial = serial', 'default_md = sha256', 'policy = p', 'copy_extensions = copy', 'unique_subject = no', '[p]', 'commonName = supplied', ''];
  await writeFile(join(at, 'ca.cnf'), caConfig.join('\n'));
  await execFileAsync('openssl', ['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-keyout', 'key.pem', '-out', 'req.csr', '-subj', `/CN=${name}`, '-addext', `subjectAltName=${subjectAltName}`], { cwd: at });
  await execFileAsync('openssl', ['ca', '-batch', '-config', 'ca.cnf', '-selfsign', '-keyfile', 'key.pem', '-in', 'req.csr', '-out', 'cert.pem', '-startdate', notBefore, '-enddate', notAfter, '-notext'], { cwd: at });
  return { key: await readFile(join(at, 'key.pem')), cert: await readFile(join(at, 'cert.pem')), certPath: join(at, 'cert.pem') };
}

/** A next hop on plain TCP answering each command line with `answer` (null: say nothing); every line it read is kept. */
async function scriptedHop(answer: (line: string, socket: Socket) => string | null): Promise<{ port: number; lines: string[] }> {
  const lines: string[] = [];
  const server = createServer((socket) => {
    socket.on('error', () => {});
    socket.write('220 scripted.test ESMTP\r\n');
    let buffer = '';
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      for (let end = buffer.indexOf('\r\n'); end !== -1; end = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        lines.push(line);
        const reply = answer(line, socket);
        if (reply !== null) socket.write(reply);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  harness.onCleanup(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const sockets = new Set<Socket>();
  server.on('connection', (s) => sockets.add(s));
  harness.onCleanup(async () => sockets.forEach((s) => s.destroy()));
  return { port: (server.address() as AddressInfo).port, lines };
}

function hopConfig(nextHop: Partial<Config['nextHop']>, limits: Partial<Config['limits']> = {}): Config {
  const config = harness.config();
  return { ...config, limits: { ...config.limits, ...limits }, nextHop: { ...config.nextHop, tls: 'starttls', ...nextHop } };
}

/** The warning the daemon logged about the next hop (one is expected). */
async function nextHopWarning(gate: Gate): Promise<Record<string, unknown>> {
  return waitFor(() => gate.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('next hop ')));
}

describe('next_hop.tls: starttls', () => {
  it('a next hop that does not know STARTTLS gets neither the message nor AUTH: 451 4.4.1, logged with its refusal', async () => {
    const hop: NextHopServerOptions = {}; // no tls: STARTTLS is not offered, and refused when asked
    const gate = await harness.startGate(hopConfig({ auth: HOP_AUTH }), hop);
    const r = await sendMail(gate.port, { data: MESSAGE });
    expect(r.mail.text).toMatch(/^451 4\.4\.1 /);
    expect(gate.nextHop.messages).toHaveLength(0);
    expect(gate.nextHop.auths).toHaveLength(0);
    expect(await nextHopWarning(gate)).toMatchObject({ msg: 'next hop refused the session', during: 'starttls', nextHop: { code: 500 } });
  });

  it('a next hop that answers STARTTLS with 454 (and offers AUTH in clear) gets no AUTH, no MAIL: 451 4.4.1', async () => {
    const hop = await scriptedHop((line) => {
      if (/^EHLO /i.test(line)) return '250-scripted.test\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n';
      if (/^STARTTLS/i.test(line)) return '454 4.7.0 TLS not available due to temporary reason\r\n';
      if (/^QUIT/i.test(line)) return '221 2.0.0 bye\r\n';
      return '250 2.0.0 ok\r\n';
    });
    const gate = await harness.startGate(hopConfig({ auth: HOP_AUTH }), {}, { host: '127.0.0.1', port: hop.port });
    const r = await sendMail(gate.port, { data: MESSAGE });
    expect(r.mail.text).toMatch(/^451 4\.4\.1 /);
    expect(hop.lines.filter((l) => !/^(EHLO|STARTTLS|QUIT)\b/i.test(l))).toEqual([]);
    expect(JSON.stringify(hop.lines)).not.toContain(Buffer.from(`\0${HOP_AUTH.user}\0${HOP_AUTH.pass}`).toString('base64'));
    expect(await nextHopWarning(gate)).toMatchObject({ during: 'starttls', nextHop: { code: 454, enhanced: '4.7.0' } });
  });

  it('a next hop that sends more after its 220 to STARTTLS (injection) is dropped before TLS: 451 4.4.2', async () => {
    const hop = await scriptedHop((line) => {
      if (/^EHLO /i.test(line)) return '250-scripted.test\r\n250 STARTTLS\r\n';
      if (/^STARTTLS/i.test(line)) return '220 2.0.0 go ahead\r\n250 2.0.0 injected\r\n';
      return null;
    });
    const gate = await harness.startGate(hopConfig({}), {}, { host: '127.0.0.1', port: hop.port });
    const r = await sendMail(gate.port, { data: MESSAGE });
    expect(r.mail.text).toMatch(/^451 4\.4\.2 /);
    // read as the unsolicited reply it is, or caught at the upgrade: either way the connection ends in clear
    const warning = await nextHopWarning(gate);
    expect(warning).toMatchObject({ msg: 'next hop lost' });
    expect((warning.nextHop as { detail: string }).detail).toMatch(/^(unsolicited reply 250|next hop sent data after its STARTTLS reply)$/);
    expect(hop.lines.filter((l) => !/^(EHLO|STARTTLS)\b/i.test(l))).toEqual([]);
  });

  it('a next hop that never completes the handshake times out after next_hop_timeout: 451 4.4.2', async () => {
    const hop = await scriptedHop((line) => {
      if (/^EHLO /i.test(line)) return '250-scripted.test\r\n250 STARTTLS\r\n';
      if (/^STARTTLS/i.test(line)) return '220 2.0.0 go ahead\r\n';
      return null; // and then nothing: no ServerHello
    });
    const gate = await harness.startGate(hopConfig({}, { nextHopTimeout: 2 }), {}, { host: '127.0.0.1', port: hop.port });
    const r = await sendMail(gate.port, { data: MESSAGE, timeoutMs: 15_000 });
    expect(r.mail.text).toMatch(/^451 4\.4\.2 /);
    expect(await nextHopWarning(gate)).toMatchObject({ msg: 'next hop timeout', during: 'tls-handshake' });
  });

  it.each([
    ['a certificate for another name', () => certificate('other.example', 'DNS:other.example'), /ERR_TLS_CERT_ALTNAME_INVALID/, true],
    ['an expired certificate', () => certificate('localhost', 'DNS:localhost,IP:127.0.0.1', '20200101000000Z', '20200102000000Z'), /CERT_HAS_EXPIRED/, true],
    ['a self-signed certificate not in ca_file', () => certificate('localhost', 'DNS:localhost,IP:127.0.0.1'), /SELF_SIGNED/, false],
  ])('%s fails the delivery with 451 4.4.2 and a log line naming the check; AUTH is never sent', async (_name, make, why, trusted) => {
    const pair = await make();
    const gate = await harness.startGate(hopConfig({ auth: HOP_AUTH, caFile: trusted ? pair.certPath : null }), { tls: pair, auth: HOP_AUTH });
    const r = await sendMail(gate.port, { data: MESSAGE });
    expect(r.mail.text).toMatch(/^451 4\.4\.2 /);
    expect(gate.nextHop.messages).toHaveLength(0);
    expect(gate.nextHop.auths).toHaveLength(0);
    const warning = await nextHopWarning(gate);
    expect(warning).toMatchObject({ during: 'tls-handshake' });
    expect((warning.nextHop as { detail: string }).detail).toMatch(why);
    expect(JSON.stringify(gate.logs)).not.toContain(HOP_AUTH.pass);
  });

  it('a next hop that refuses our credentials: 451 4.4.1 (the client keeps the message), logged during auth', async () => {
    const pair = await certificate('localhost', 'DNS:localhost,IP:127.0.0.1');
    const gate = await harness.startGate(hopConfig({ auth: { user: 'gate', pass: 'not-the-password' }, caFile: pair.certPath }), { tls: pair, auth: HOP_AUTH });
    const r = await sendMail(gate.port, { data: MESSAGE });
    expect(r.mail.text).toMatch(/^451 4\.4\.1 /);
    expect(gate.nextHop.messages).toHaveLength(0);
    expect(gate.nextHop.auths).toEqual([expect.objectContaining({ username: 'gate', success: false })]);
    expect(await nextHopWarning(gate)).toMatchObject({ msg: 'next hop refused the session', during: 'auth', nextHop: { code: 535 } });
    expect(JSON.stringify(gate.logs)).not.toContain('not-the-password');
  });
});
