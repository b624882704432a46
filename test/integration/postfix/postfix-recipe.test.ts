// The Postfix recipes of config/postfix/ with a real Postfix (Debian's package) in a private instance: the shipped
// fragments (ports changed) appended to Debian's stock master.cf, dkimgate (node dist/cli.js serve) with the
// shipped config/postfix/dkimgate.yaml, DNS from dnsmasq, dkimpy as the independent verifier, a test next hop
// behind Postfix. Touches: the processes it starts (Postfix, dkimgate, dnsmasq, each ended by PID), temp dirs,
// loopback addresses 127.0.0.1 (Postfix, dkimgate), 127.0.0.5 (the relay host) and 127.0.0.9 (an outside client).

import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createTransport } from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { crlf, rsaKey, sign } from '../../helpers/dkim-test-kit.js';
import { startDkimgate, waitFor, type LogLine, type RunningDkimgate } from '../../helpers/dkimgate-process.js';
import { startDnsServer, type RunningDnsServer } from '../../helpers/dns-server.js';
import { createSelfSignedCertificate, freePort, startNextHopServer, type RecordedMessage, type RunningNextHop } from '../../helpers/next-hop-server.js';
import { startPostfix, stockMasterCf, type PostfixInstance } from '../../helpers/postfix-instance.js';
import { runCli } from '../../helpers/run-cli.js';

const execFileAsync = promisify(execFile);
const RECIPE_DIR = fileURLToPath(new URL('../../../config/postfix/', import.meta.url));
const DKIMPY_VERIFY = fileURLToPath(new URL('../../interop/peers/dkimpy-verify.py', import.meta.url));
const AUTHSERV = 'mx.test.example';
const RELAY_HOST = '127.0.0.5';
const OUTSIDE_CLIENT = '127.0.0.9';
const SASL_USER = 'alice';
const SASL_PASSWORD = 'correct horse battery staple';

let work = '';
let dns: RunningDnsServer;
let hop: RunningNextHop;
let gate: RunningDkimgate;
let postfix: PostfixInstance;
let gateConfigPath = '';
const ports = { smtpd: 0, submission: 0, lmtpPath: 0, reinject: 0, filter: 0, signing: 0, lmtp: 0 };
const outsideKey = rsaKey(2048);
let counter = 0;

/** The shipped recipe's port numbers, mapped to the ones this run uses. */
function substitutePorts(text: string): string {
  const map: Record<string, number> = { '10026': ports.reinject, '10027': ports.filter, '10028': ports.signing, '10029': ports.lmtp };
  return text.replace(/\b(1002[6-9])\b/g, (port) => String(map[port] ?? port)).replace(/^submission(\s+)inet/m, `127.0.0.1:${ports.submission}$1inet`);
}

/** The value of `name = value` in a main.cf fragment. */
function mainCfValue(text: string, name: string): string {
  const match = new RegExp(`^${name}\\s*=\\s*(.+)$`, 'm').exec(text);
  if (!match) throw new Error(`${name} is not set in the fragment`);
  return match[1]!.trim();
}


async function writeGateConfig(): Promise<void> {
  const shipped = parseYaml(await readFile(join(RECIPE_DIR, 'dkimgate.yaml'), 'utf8')) as Record<string, unknown> & {
    listen: Array<Record<string, unknown>>;
    next_hop: Record<string, unknown>;
    sign: Record<string, unknown>;
  };
  const listenPorts = [ports.filter, ports.signing, ports.lmtp];
  expect(shipped.listen.map((l) => l.port)).toEqual([10027, 10028, 10029]);
  shipped.listen.forEach((listener, i) => (listener.port = listenPorts[i]));
  expect(shipped.next_hop.port).toBe(10026);
  shipped.next_hop.port = ports.reinject;
  shipped.authserv_id = AUTHSERV;
  shipped.relay_hosts = [`${RELAY_HOST}/32`]; // this test's mynetworks
  shipped.sign.key = `${work}/keys/%{d}/%{s}.pem`;
  shipped.dns = { servers: [dns.server], timeout: 2000 };
  shipped.metrics = null;
  gateConfigPath = join(work, 'dkimgate.yaml');
  await writeFile(gateConfigPath, stringifyYaml(shipped));
}

async function postfixConfig(): Promise<{ mainCf: string; masterCf: string; files: Record<string, string> }> {
  const fragment = async (name: string): Promise<string> => substitutePorts(await readFile(join(RECIPE_DIR, name), 'utf8'));
  const lmtpFilter = mainCfValue(await fragment('main-lmtp.cf'), 'content_filter');
  const cert = await createSelfSignedCertificate('mx.test.example');
  await writeFile(join(work, 'tls-key.pem'), cert.key, { mode: 0o600 });
  await writeFile(join(work, 'tls-cert.pem'), cert.cert);
  const mainCf = [
    '# this test: its host name, relay host, inbound domain, next hop, TLS and SASL (Cyrus sasldb)',
    `myhostname = ${AUTHSERV}`,
    'mydestination =',
    `mynetworks = ${RELAY_HOST}/32`,
    'relay_domains = example.org',
    `relayhost = [127.0.0.1]:${hop.port}`,
    `smtpd_tls_cert_file = ${work}/tls-cert.pem`,
    `smtpd_tls_key_file = ${work}/tls-key.pem`,
    'smtpd_sasl_type = cyrus', // Debian's Postfix reads CONFIG_DIR/sasl/smtpd.conf
    `smtpd_sasl_local_domain = ${AUTHSERV}`,
    '',
    '# config/postfix/main.cf',
    await fragment('main.cf'),
  ].join('\n');
  const masterCf = [
    await stockMasterCf((text) => text.replace(/^smtp(\s+)inet/m, `127.0.0.1:${ports.smtpd}$1inet`)),
    '# ---- config/postfix/master.cf',
    await fragment('master.cf'),
    '# ---- config/postfix/master-submission.cf',
    await fragment('master-submission.cf'),
    '# ---- config/postfix/master-lmtp.cf',
    await fragment('master-lmtp.cf'),
    '# ---- this test: a third smtpd whose mail takes recipe (c), the content_filter of config/postfix/main-lmtp.cf',
    `127.0.0.1:${ports.lmtpPath} inet n - n - - smtpd`,
    `  -o content_filter=${lmtpFilter}`,
    '',
  ].join('\n');
  return { mainCf, masterCf, files: { 'sasl/smtpd.conf': await createSaslUser() } };
}

/** Creates the SASL user in a Cyrus sasldb; returns the smtpd.conf that points Postfix's smtpd at it. */
async function createSaslUser(): Promise<string> {
  const saslDir = join(work, 'sasl');
  await mkdir(saslDir, { mode: 0o755 });
  const child = execFileAsync('/usr/sbin/saslpasswd2', ['-p', '-c', '-f', `${saslDir}/sasldb2`, '-u', AUTHSERV, SASL_USER]);
  child.child.stdin!.end(SASL_PASSWORD);
  await child.catch((err: Error) => {
    throw new Error(`saslpasswd2 failed (Debian package sasl2-bin): ${err.message}`);
  });
  await chmod(`${saslDir}/sasldb2`, 0o644); // smtpd reads it as the postfix user
  return ['pwcheck_method: auxprop', 'auxprop_plugin: sasldb', 'mech_list: PLAIN LOGIN', `sasldb_path: ${saslDir}/sasldb2`, ''].join('\n');
}

/** A message with a unique Subject; `headers` go on top. */
function message(from: string, headers: string[] = [], opts: { date?: boolean } = {}): { subject: string; raw: Buffer } {
  const subject = `recipe test ${++counter} ${Date.now()}`;
  const lines = [
    ...headers,
    `From: ${from}`,
    'To: Bob <bob@remote.test>',
    `Subject: ${subject}`,
    ...(opts.date === false ? [] : ['Date: Tue, 14 Nov 2023 22:13:20 +0000', `Message-ID: <${counter}.${Date.now()}@example.com>`]),
    '',
    'Hello Bob,',
    '',
    '.a line that starts with a dot, and one with trailing spaces   ',
    '',
  ];
  return { subject, raw: crlf(lines.join('\n')) };
}

async function send(
  port: number,
  raw: Buffer,
  opts: { from: string; to?: string[]; localAddress: string; auth?: boolean },
): Promise<void> {
  const transport = createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    localAddress: opts.localAddress,
    ignoreTLS: opts.auth !== true,
    requireTLS: opts.auth === true,
    tls: { rejectUnauthorized: false },
    ...(opts.auth === true ? { auth: { user: SASL_USER, pass: SASL_PASSWORD } } : {}),
  });
  try {
    await transport.sendMail({ envelope: { from: opts.from, to: opts.to ?? ['bob@remote.test'] }, raw });
  } finally {
    transport.close();
  }
}

function headerOf(data: Buffer): string {
  const text = data.toString('latin1');
  return text.slice(0, text.indexOf('\r\n\r\n') + 2);
}

/** Unfolded header fields named `name`. */
function fields(data: Buffer, name: string): string[] {
  return headerOf(data)
    .replace(/\r\n[ \t]/g, ' ')
    .split('\r\n')
    .filter((line) => line.toLowerCase().startsWith(`${name.toLowerCase()}:`));
}

async function delivered(subject: string): Promise<RecordedMessage> {
  return waitFor(
    `"${subject}" at the next hop behind Postfix`,
    () => hop.messages.find((m) => headerOf(m.data).includes(`Subject: ${subject}`)),
    20_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n--- Postfix log ---\n${postfix.log().slice(-4000)}\n--- dkimgate ---\n${JSON.stringify(gate.lines.slice(-5))}`);
  });
}

/** dkimgate's log line for the first message it handled after log line `mark`. */
function gateRecord(mark: number): Promise<LogLine> {
  return waitFor("dkimgate's message log line", () => gate.lines.slice(mark).find((l) => l.msg === 'message'), 5000);
}

async function dkimpyVerdicts(data: Buffer): Promise<Array<{ result: string; domain: string | null; detail: string | null }>> {
  const file = join(work, `verify-${++counter}.eml`);
  await writeFile(file, data);
  const { stdout } = await execFileAsync('/usr/bin/python3', [DKIMPY_VERIFY, '--dns', dns.server, file]);
  return stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { result: string; domain: string | null; detail: string | null });
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'dkimgate-postfix-recipe-'));
  await chmod(work, 0o755); // Postfix's daemons read the TLS and SASL files as the postfix user
  const keygen = await runCli(['keygen', '--domain', 'example.com', '--selector', 's2026', '--keys-dir', join(work, 'keys')]);
  expect(keygen.status, keygen.stderr).toBe(0);
  const published = [...keygen.stdout.matchAll(/"([^"]*)"/g)].map((m) => m[1]).join('');
  dns = await startDnsServer({
    txt: { 's2026._domainkey.example.com': published, 'ext1._domainkey.outside.example': outsideKey.record },
  });
  hop = await startNextHopServer();
  for (const name of Object.keys(ports) as Array<keyof typeof ports>) ports[name] = await freePort();
  await writeGateConfig();
  gate = await startDkimgate({ config: gateConfigPath, listeners: 3 });
  postfix = await startPostfix(await postfixConfig());
  // Recipe (b)'s last step, the command master-submission.cf gives for local submissions (pickup).
  const pickup = /postconf -P '([^']+)'/.exec(await readFile(join(RECIPE_DIR, 'master-submission.cf'), 'utf8'));
  expect(pickup).not.toBeNull();
  await postfix.command('/usr/sbin/postconf', ['-c', postfix.configDir, '-P', substitutePorts(pickup![1]!)]);
  await postfix.reload();
}, 60_000);

afterAll(async () => {
  await postfix?.stop();
  await gate?.stop();
  await hop?.close();
  await dns?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('Postfix recipe (a): content_filter with XFORWARD and a re-injection smtpd', () => {
  it('uses only parameters Postfix knows: postconf warns about none in main.cf or master.cf', async () => {
    for (const flag of ['-n', '-M', '-P']) {
      const { stderr } = await execFileAsync('/usr/sbin/postconf', ['-c', postfix.configDir, flag], { encoding: 'utf8' });
      expect(stderr, `postconf ${flag}`).toBe('');
    }
  });

  it('signs mail that a relay host sends through Postfix, and dkimpy verifies the signature after both Postfix passes', async () => {
    const mark = gate.lines.length;
    const { subject, raw } = message('Alice <alice@example.com>');
    await send(ports.smtpd, raw, { from: 'alice@example.com', localAddress: RELAY_HOST });
    const out = await delivered(subject);
    expect(fields(out.data, 'DKIM-Signature')).toHaveLength(1);
    expect(fields(out.data, 'Received').length).toBeGreaterThanOrEqual(2); // first pass and re-injection
    expect(await dkimpyVerdicts(out.data)).toEqual([expect.objectContaining({ result: 'pass', domain: 'example.com' })]);
    expect(out.envelope).toMatchObject({ mailFrom: 'alice@example.com', rcptTo: ['bob@remote.test'] });
    // dkimgate judged the relay host by Postfix's XFORWARD, on the filter listener.
    expect(await gateRecord(mark)).toMatchObject({ listener: `smtp://127.0.0.1:${ports.filter}`, client: RELAY_HOST, clientVia: 'xforward', decision: 'sign' });
  });

  it('signs a message without Date and Message-ID so that it still verifies (the re-injection adds no header)', async () => {
    const { subject, raw } = message('Alice <alice@example.com>', [], { date: false });
    await send(ports.smtpd, raw, { from: 'alice@example.com', localAddress: RELAY_HOST });
    const out = await delivered(subject);
    expect(fields(out.data, 'Date')).toEqual([]);
    expect(await dkimpyVerdicts(out.data)).toEqual([expect.objectContaining({ result: 'pass', domain: 'example.com' })]);
  });

  it('gives mail from an outside client our Authentication-Results and no signature, and removes a forged one', async () => {
    const { subject, raw } = message('Alice <alice@example.com>', [
      `Authentication-Results: ${AUTHSERV}; dkim=pass header.d=example.com header.s=s2026`,
      'Authentication-Results: other.example; spf=pass smtp.mailfrom=example.com',
    ]);
    await send(ports.smtpd, raw, { from: 'alice@example.com', to: ['bob@example.org'], localAddress: OUTSIDE_CLIENT });
    const out = await delivered(subject);
    expect(fields(out.data, 'DKIM-Signature')).toEqual([]);
    const results = fields(out.data, 'Authentication-Results');
    expect(results).toHaveLength(2);
    expect(results[0]).toMatch(new RegExp(`^Authentication-Results: ${AUTHSERV.replace(/\./g, '\\.')};\\s*dkim=none`));
    expect(results[1]).toBe('Authentication-Results: other.example; spf=pass smtp.mailfrom=example.com');
  });

  it('verifies a signature made outside through Postfix: dkim=pass in our Authentication-Results', async () => {
    const { subject, raw } = message('News <news@outside.example>');
    const signed = await sign(raw, outsideKey, { signingDomain: 'outside.example', selector: 'ext1' }, Math.floor(Date.now() / 1000));
    await send(ports.smtpd, signed, { from: 'news@outside.example', to: ['bob@example.org'], localAddress: OUTSIDE_CLIENT });
    const out = await delivered(subject);
    const [ours] = fields(out.data, 'Authentication-Results');
    expect(ours).toMatch(new RegExp(`^Authentication-Results: ${AUTHSERV.replace(/\./g, '\\.')};\\s*dkim=pass`));
    expect(ours).toContain('header.d=outside.example');
  });

  it("keeps the mail in Postfix's queue while dkimgate's next hop is down, and delivers it signed after a flush", async () => {
    const masterCf = await readFile(join(postfix.configDir, 'master.cf'), 'utf8');
    // Take the re-injection service away, and restart dkimgate so that no pooled connection to it survives.
    await postfix.command('/usr/sbin/postconf', ['-c', postfix.configDir, '-M#', `127.0.0.1:${ports.reinject}/inet`]);
    await postfix.reload();
    await gate.stop();
    gate = await startDkimgate({ config: gateConfigPath, listeners: 3 });

    const { subject, raw } = message('Alice <alice@example.com>');
    await send(ports.smtpd, raw, { from: 'alice@example.com', localAddress: RELAY_HOST });
    const deferred = await waitFor('the message deferred in Postfix', async () =>
      (await postfix.queue()).find((m) => m.queue_name === 'deferred' && m.recipients.some((r) => r.delay_reason?.includes('451 4.4.1'))),
    );
    expect(deferred.sender).toBe('alice@example.com');
    expect(deferred.recipients.map((r) => r.address)).toEqual(['bob@remote.test']);
    expect(hop.messages.some((m) => headerOf(m.data).includes(subject))).toBe(false);

    await writeFile(join(postfix.configDir, 'master.cf'), masterCf);
    await postfix.reload();
    await postfix.flush();
    const out = await delivered(subject);
    expect(await dkimpyVerdicts(out.data)).toEqual([expect.objectContaining({ result: 'pass', domain: 'example.com' })]);
    await waitFor('an empty Postfix queue', async () => (await postfix.queue()).length === 0);
  });
  it("keeps the mail in Postfix's queue while dkimgate itself is down, and delivers it signed once dkimgate is back", async () => {
    await gate.stop();
    const { subject, raw } = message('Alice <alice@example.com>');
    await send(ports.smtpd, raw, { from: 'alice@example.com', localAddress: RELAY_HOST });
    const deferred = await waitFor('the message deferred in Postfix', async () =>
      (await postfix.queue()).find((m) => m.queue_name === 'deferred' && m.recipients.some((r) => /connect to 127\.0\.0\.1\[127\.0\.0\.1\]:\d+: Connection refused/.test(r.delay_reason ?? ''))),
    );
    expect(deferred.recipients.map((r) => r.address)).toEqual(['bob@remote.test']);
    gate = await startDkimgate({ config: gateConfigPath, listeners: 3 });
    await postfix.flush();
    const out = await delivered(subject);
    expect(await dkimpyVerdicts(out.data)).toEqual([expect.objectContaining({ result: 'pass', domain: 'example.com' })]);
    await waitFor('an empty Postfix queue', async () => (await postfix.queue()).length === 0);
  });
});

describe('Postfix recipe (b): authenticated submission reaches the signing listener', () => {
  it('signs mail from a user who logged in on the submission port, from any address', async () => {
    const mark = gate.lines.length;
    const { subject, raw } = message('Alice <alice@example.com>');
    await send(ports.submission, raw, { from: 'alice@example.com', localAddress: OUTSIDE_CLIENT, auth: true });
    const out = await delivered(subject);
    expect(await dkimpyVerdicts(out.data)).toEqual([expect.objectContaining({ result: 'pass', domain: 'example.com' })]);
    expect(await gateRecord(mark)).toMatchObject({ listener: `smtp://127.0.0.1:${ports.signing}`, client: '127.0.0.1', clientVia: 'connection', decision: 'sign' });
  });

  it('refuses to relay for a client that did not log in on the submission port', async () => {
    const { raw } = message('Alice <alice@example.com>');
    const transport = createTransport({ host: '127.0.0.1', port: ports.submission, localAddress: OUTSIDE_CLIENT, requireTLS: true, tls: { rejectUnauthorized: false } });
    try {
      await expect(transport.sendMail({ envelope: { from: 'alice@example.com', to: ['bob@remote.test'] }, raw })).rejects.toMatchObject({ responseCode: 554 });
    } finally {
      transport.close();
    }
  });

  it("signs mail submitted with Postfix's sendmail on the host (pickup with the signing content_filter)", async () => {
    const { subject, raw } = message('Alice <alice@example.com>');
    await postfix.command('/usr/sbin/sendmail', ['-C', postfix.configDir, '-f', 'alice@example.com', 'bob@remote.test'], raw.toString('latin1').replace(/\r\n/g, '\n'));
    const out = await delivered(subject);
    expect(await dkimpyVerdicts(out.data)).toEqual([expect.objectContaining({ result: 'pass', domain: 'example.com' })]);
  });
});

describe('Postfix recipe (c): LMTP to dkimgate', () => {
  it('delivers signed mail for two recipients, one LMTP result each', async () => {
    const { subject, raw } = message('Alice <alice@example.com>');
    await send(ports.lmtpPath, raw, { from: 'alice@example.com', to: ['bob@remote.test', 'carol@remote.test'], localAddress: RELAY_HOST });
    const out = await delivered(subject);
    expect([...out.envelope.rcptTo].sort()).toEqual(['bob@remote.test', 'carol@remote.test']);
    expect(await dkimpyVerdicts(out.data)).toEqual([expect.objectContaining({ result: 'pass', domain: 'example.com' })]);
    const lmtpResults = postfix
      .log()
      .split('\n')
      .filter((line) => line.includes('postfix/dkimgate-lmtp') && line.includes('status=sent'));
    expect(lmtpResults.filter((l) => l.includes('to=<bob@remote.test>'))).toHaveLength(1);
    expect(lmtpResults.filter((l) => l.includes('to=<carol@remote.test>'))).toHaveLength(1);
  });
});
