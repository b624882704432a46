// Test helper: a scriptable next hop (smtp-server on a loopback port 0, SMTP or LMTP) that records what it accepted,
// and Postfix's smtp-sink when installed. Touches: loopback sockets, a temp dir for certificates, the smtp-sink child it starts.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { access, chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SMTPServer, type SMTPServerDataStream, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';

export type EnvelopeParamsSeen = Record<string, string | true>;

export type RecordedEnvelope = {
  mailFrom: string;
  rcptTo: string[];
  /** MAIL FROM parameters as smtp-server parsed them: keys upper case, xtext values decoded. */
  mailParams: EnvelopeParamsSeen;
  /** RCPT TO parameters, one object per recipient in rcptTo. */
  rcptParams: EnvelopeParamsSeen[];
};

export type RecordedMessage = { envelope: RecordedEnvelope; data: Buffer; sessionId: string };

/** A reply the next hop gives; smtp-server adds its own enhanced code for the code (550 → 5.1.1, 451 → 4.3.0, 452 → 4.2.2). */
export type ScriptedReply = { code: number; message: string };

export type DataMode =
  | { kind: 'accept'; message?: string }
  /** accept, but answer end-of-data only after `ms` (drains, the ambiguous window) */
  | { kind: 'delay'; ms: number; message?: string }
  | { kind: 'refuse'; code: number; message: string }
  | { kind: 'defer'; message?: string }
  /** read the whole message, never answer end-of-data */
  | { kind: 'stall' }
  /** destroy the socket once `afterBytes` (default 1) message bytes arrived, or once the final dot arrived */
  | { kind: 'drop'; when: 'mid-data'; afterBytes?: number }
  | { kind: 'drop'; when: 'after-dot' }
  /** LMTP: one result per accepted recipient, in order */
  | { kind: 'lmtp'; results: Array<'accept' | ScriptedReply> };

export type NextHopServerOptions = {
  lmtp?: boolean;
  /** The name in its greeting; default "next-hop.internal.test". */
  name?: string;
  /** Enables STARTTLS (or implicit TLS with `implicitTls`) with this key and certificate. */
  tls?: { key: Buffer | string; cert: Buffer | string };
  implicitTls?: boolean;
  /** Requires AUTH (PLAIN and LOGIN) with these credentials. */
  auth?: { user: string; pass: string };
  authMethods?: string[];
  allowInsecureAuth?: boolean;
  /** Announces SIZE with this limit. */
  size?: number;
  hide?: { dsn?: boolean; smtpUtf8?: boolean; eightBitMime?: boolean; pipelining?: boolean; enhancedStatusCodes?: boolean };
  /** smtp-server's idle timeout (it answers 421 and closes). */
  socketTimeoutMs?: number;
  onMailFrom?: (address: string, params: EnvelopeParamsSeen, session: SMTPServerSession) => ScriptedReply | null | undefined;
  onRcptTo?: (address: string, params: EnvelopeParamsSeen, session: SMTPServerSession) => ScriptedReply | null | undefined;
  /** Decided when DATA starts; default accept. */
  onData?: DataMode | ((envelope: RecordedEnvelope, session: SMTPServerSession) => DataMode);
};

export type AuthAttempt = { sessionId: string; method: string; username: string; success: boolean };

export type RunningNextHop = {
  host: string;
  port: number;
  /** Messages it accepted (LMTP: with the recipients it accepted). */
  messages: RecordedMessage[];
  /** Every message whose final dot arrived, whatever was answered (or not): for the ambiguous cases. */
  received: Array<RecordedMessage & { mode: DataMode['kind'] }>;
  /** Command lines as received (AUTH arguments redacted by smtp-server). */
  commands: Array<{ sessionId: string; line: string }>;
  auths: AuthAttempt[];
  /** TCP connections accepted so far. */
  connectionCount(): number;
  openConnections(): number;
  /** Destroys every open client socket (the next hop going away under idle connections). */
  dropConnections(): void;
  close(): Promise<void>;
};

export async function startNextHopServer(options: NextHopServerOptions = {}): Promise<RunningNextHop> {
  const messages: RecordedMessage[] = [];
  const received: RunningNextHop['received'] = [];
  const commands: RunningNextHop['commands'] = [];
  const auths: AuthAttempt[] = [];
  const sockets = new Set<Socket>();
  let accepted = 0;

  const socketOf = (session: SMTPServerSession): Socket | undefined =>
    [...sockets].find((s) => s.remotePort === session.remotePort && s.remoteAddress === session.remoteAddress);

  const commandLogger = {
    debug(entry: { tnx?: string; cid?: string }, message?: string, line?: unknown) {
      if (entry.tnx === 'command' && message === 'C:' && typeof line === 'string') commands.push({ sessionId: entry.cid ?? '', line });
    },
    info() {},
    warn() {},
    error() {},
    trace() {},
    fatal() {},
  };

  const serverOptions: SMTPServerOptions = {
    name: options.name ?? 'next-hop.internal.test',
    lmtp: options.lmtp === true,
    logger: commandLogger as unknown as SMTPServerOptions['logger'],
    disableReverseLookup: true,
    hideENHANCEDSTATUSCODES: options.hide?.enhancedStatusCodes === true,
    hideDSN: options.hide?.dsn === true,
    hideSMTPUTF8: options.hide?.smtpUtf8 === true,
    hide8BITMIME: options.hide?.eightBitMime === true,
    hidePIPELINING: options.hide?.pipelining === true,
    size: options.size,
    socketTimeout: options.socketTimeoutMs ?? 60_000,
    closeTimeout: 100,
    maxAllowedUnauthenticatedCommands: false,
    secure: options.implicitTls === true,
    allowInsecureAuth: options.allowInsecureAuth === true,
    authOptional: options.auth === undefined,
    authMethods: options.authMethods ?? ['PLAIN', 'LOGIN'],
    disabledCommands: [...(options.tls === undefined ? ['STARTTLS'] : []), ...(options.auth === undefined ? ['AUTH'] : [])],
    ...(options.tls !== undefined ? { key: options.tls.key, cert: options.tls.cert } : {}),

    onAuth(auth, session, callback) {
      const success = options.auth !== undefined && auth.username === options.auth.user && auth.password === options.auth.pass;
      auths.push({ sessionId: session.id, method: auth.method, username: auth.username ?? '', success });
      if (success) callback(null, { user: auth.username });
      else callback(null, { message: 'Authentication credentials invalid', responseCode: 535 });
    },

    onMailFrom(address, session, callback) {
      const reply = options.onMailFrom?.(address.address, address.args || {}, session);
      callback(reply ? replyError(reply) : null);
    },

    onRcptTo(address, session, callback) {
      const reply = options.onRcptTo?.(address.address, address.args || {}, session);
      callback(reply ? replyError(reply) : null);
    },

    onData(stream: SMTPServerDataStream, session, callback) {
      const envelope = envelopeOf(session);
      const mode = typeof options.onData === 'function' ? options.onData(envelope, session) : (options.onData ?? { kind: 'accept' });
      const chunks: Buffer[] = [];
      let bytes = 0;
      stream.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        bytes += chunk.length;
        if (mode.kind === 'drop' && mode.when === 'mid-data' && bytes >= (mode.afterBytes ?? 1)) socketOf(session)?.destroy();
      });
      stream.on('end', () => {
        const record = { envelope, data: Buffer.concat(chunks, bytes), sessionId: session.id };
        received.push({ ...record, mode: mode.kind });
        switch (mode.kind) {
          case 'accept':
            messages.push(record);
            return callback(null, mode.message ?? 'OK: queued as NH1');
          case 'delay':
            messages.push(record);
            setTimeout(() => callback(null, mode.message ?? 'OK: queued as NH1'), mode.ms);
            return;
          case 'refuse':
            return callback(replyError({ code: mode.code, message: mode.message }));
          case 'defer':
            return callback(replyError({ code: 451, message: mode.message ?? 'Try again later' }));
          case 'stall':
            return; // never answer
          case 'drop':
            socketOf(session)?.destroy();
            return;
          case 'lmtp': {
            const results = envelope.rcptTo.map((_, i) => mode.results[i] ?? 'accept');
            const kept = envelope.rcptTo.flatMap((rcpt, i) => (results[i] === 'accept' ? [i] : []));
            if (kept.length > 0) {
              messages.push({
                ...record,
                envelope: { ...envelope, rcptTo: kept.map((i) => envelope.rcptTo[i]!), rcptParams: kept.map((i) => envelope.rcptParams[i]!) },
              });
            }
            return callback(null, results.map((r) => (r === 'accept' ? 'OK: delivered' : replyError(r))));
          }
        }
      });
    },
  };

  const server = new SMTPServer(serverOptions);
  server.on('error', () => {}); // resets from sockets the tests destroy on purpose
  server.server.on('connection', (socket: Socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  const port = (server.server.address() as AddressInfo).port;

  return {
    host: '127.0.0.1',
    port,
    messages,
    received,
    commands,
    auths,
    connectionCount: () => accepted,
    openConnections: () => sockets.size,
    dropConnections() {
      for (const socket of sockets) socket.destroy();
    },
    close() {
      return new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      });
    },
  };
}

function envelopeOf(session: SMTPServerSession): RecordedEnvelope {
  const env = session.envelope;
  return {
    mailFrom: env.mailFrom === false ? '' : env.mailFrom.address,
    rcptTo: env.rcptTo.map((r) => r.address),
    mailParams: env.mailFrom === false ? {} : { ...(env.mailFrom.args || {}) },
    rcptParams: env.rcptTo.map((r) => ({ ...(r.args || {}) })),
  };
}

function replyError(reply: ScriptedReply): Error & { responseCode: number } {
  return Object.assign(new Error(reply.message), { responseCode: reply.code });
}

// ---- certificates ------------------------------------------------------------------------------------

const execFileAsync = promisify(execFile);

/**
 * A throwaway self-signed certificate, by default for localhost and 127.0.0.1 (node:crypto cannot make certificates;
 * openssl can). `subjectAltName` in openssl's syntax, e.g. "IP:127.0.0.1" for a certificate naming only that address.
 */
export async function createSelfSignedCertificate(commonName = 'localhost', subjectAltName = `DNS:${commonName},IP:127.0.0.1`): Promise<{ key: Buffer; cert: Buffer }> {
  const dir = await mkdtemp(join(tmpdir(), 'dkimgate-cert-'));
  try {
    const keyPath = join(dir, 'key.pem');
    const certPath = join(dir, 'cert.pem');
    await execFileAsync('openssl', [
      'req', '-x509', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
      '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', `/CN=${commonName}`,
      '-addext', `subjectAltName=${subjectAltName}`,
    ]);
    return { key: await readFile(keyPath), cert: await readFile(certPath) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A self-signed certificate for localhost written into `dir` as key.pem (mode 0600) and cert.pem: a listener's tls files. */
export async function writeSelfSignedCertificate(dir: string): Promise<{ key: string; cert: string }> {
  const pair = await createSelfSignedCertificate('localhost');
  const files = { key: join(dir, 'key.pem'), cert: join(dir, 'cert.pem') };
  await writeFile(files.key, pair.key, { mode: 0o600 });
  await writeFile(files.cert, pair.cert);
  return files;
}

// ---- Postfix smtp-sink ---------------------------------------------------------------------------------

export const SMTP_SINK_PATH = '/usr/sbin/smtp-sink';

export type SmtpSinkOptions = {
  lmtp?: boolean;
  path?: string;
  hostname?: string;
  /** Dump each message to its own file in this directory (smtp-sink -d; made writable for the "nobody" it runs as). */
  dumpDir?: string;
};

export type RunningSmtpSink = { host: string; port: number; pid: number; stop(): Promise<void> };

const SINK_START_ATTEMPTS = 5;
const SINK_READY_DEADLINE_MS = 5000;

/** Starts Postfix's smtp-sink on a free loopback port; throws naming the Debian package when it is not installed. */
export async function startSmtpSink(options: SmtpSinkOptions = {}): Promise<RunningSmtpSink> {
  const path = options.path ?? SMTP_SINK_PATH;
  try {
    await access(path, constants.X_OK);
  } catch {
    throw new Error(`${path} is missing: these tests need Postfix's smtp-sink. Install the Debian package "postfix" (apt-get install postfix).`);
  }
  if (options.dumpDir !== undefined) await chmod(options.dumpDir, 0o777);
  let lastError: Error | null = null;
  for (let attempt = 0; attempt < SINK_START_ATTEMPTS; attempt++) {
    const port = await freePort();
    const args = [
      ...(options.lmtp === true ? ['-L'] : []),
      ...(options.hostname !== undefined ? ['-h', options.hostname] : []),
      ...(options.dumpDir !== undefined ? ['-d', `${options.dumpDir}/msg.`] : []),
      // smtp-sink refuses to run as root without a user to switch to
      ...(process.getuid?.() === 0 ? ['-u', 'nobody'] : []),
      `127.0.0.1:${port}`,
      '128',
    ];
    const child = spawn(path, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      if (stderr.length < 4000) stderr += chunk.toString('utf8');
    });
    try {
      await waitForGreeting(port, child);
      return { host: '127.0.0.1', port, pid: child.pid!, stop: () => stopChild(child) };
    } catch (err) {
      await stopChild(child);
      lastError = new Error(`smtp-sink did not start: ${(err as Error).message} ${stderr.trim()}`);
      if (!/in use/i.test(stderr)) break;
    }
  }
  throw lastError ?? new Error('smtp-sink did not start');
}

async function waitForGreeting(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + SINK_READY_DEADLINE_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`exited with status ${child.exitCode}`);
    const greeted = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      const timer = setTimeout(() => finish(false), 500);
      const finish = (ok: boolean): void => {
        clearTimeout(timer);
        socket.destroy();
        resolve(ok);
      };
      socket.once('data', (chunk: Buffer) => finish(chunk.toString('latin1').startsWith('220')));
      socket.once('error', () => finish(false));
    });
    if (greeted) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no greeting within ${SINK_READY_DEADLINE_MS} ms`);
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** A TCP port that was free on 127.0.0.1 a moment ago (for a peer whose port must be written into its command line or config). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** A message smtp-sink dumped: its MAIL and RCPT arguments, and the message as received, with CRLF line endings. */
export type SinkDump = { mailArgs: string; rcptArgs: string[]; message: Buffer };

/** Reads the dumps of startSmtpSink({ dumpDir }): smtp-sink's own header lines end with its three-line Received. */
export async function readSinkDumps(dumpDir: string): Promise<SinkDump[]> {
  const out: SinkDump[] = [];
  for (const name of (await readdir(dumpDir)).sort()) {
    const lines = (await readFile(join(dumpDir, name), 'latin1')).split('\n');
    const received = lines.findIndex((l) => l.startsWith('Received: from '));
    if (received === -1) throw new Error(`smtp-sink dump ${name} has no Received line`);
    const own = lines.slice(0, received);
    // the dump ends with an empty line of its own
    const body = lines.slice(received + 3, lines.length - 2);
    out.push({
      mailArgs: own.find((l) => l.startsWith('X-Mail-Args: '))?.slice(13) ?? '',
      rcptArgs: own.filter((l) => l.startsWith('X-Rcpt-Args: ')).map((l) => l.slice(13)),
      message: Buffer.from(body.map((l) => `${l}\r\n`).join(''), 'latin1'),
    });
  }
  return out;
}
