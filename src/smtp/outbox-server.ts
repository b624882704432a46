// The embedded next hop of the built-in configuration: an SMTP server on loopback that stores each message
// it accepts, byte for byte as received, in DIR/<id>.eml, and answers 250 only once the file is synced.
// Input: SMTP from our own relay client (it listens where next_hop points); touches: its socket, files in DIR.

import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import { printable, type Logger } from '../observability/logger.js';
import { REPLIES, replyError } from './reply-codes.js';
import { installSmtpServerAdapter } from './smtp-server-adapter.js';

export interface OutboxServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Created when missing. */
  dir: string;
  /** Larger messages get 552 5.3.4 (advertised as SIZE). */
  maxMessageBytes: number;
  logger: Logger;
}

export interface OutboxServer {
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

/** Starts the server; rejects with the listen error (e.g. EADDRINUSE) when the address cannot be bound. */
export async function startOutboxServer(opts: OutboxServerOptions): Promise<OutboxServer> {
  installSmtpServerAdapter();
  await mkdir(opts.dir, { recursive: true });
  const server = new SMTPServer({
    name: 'outbox.dkimgate.invalid',
    banner: 'dkimgate demo next hop (stores mail in files)',
    size: opts.maxMessageBytes,
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    hideENHANCEDSTATUSCODES: false,
    disableReverseLookup: true,
    // At shutdown our relay pool has already said QUIT; whatever is left is not waited for long.
    closeTimeout: 1000,
    logger: false,
    onData(stream, session, callback) {
      void store(stream, session, opts).then(
        (id) => callback(null, `2.0.0 Ok: queued as ${id}`),
        (error: unknown) => callback(error as Error),
      );
    },
  });
  server.on('error', (err) => opts.logger.error({ err }, 'demo next hop error'));
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  server.server.on('connection', (socket: import('node:net').Socket) => socket.setNoDelay(true));
  const bound = server.server.address() as AddressInfo;
  return {
    address: { host: opts.host, port: bound.port },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Writes the message to a hidden temporary file, syncs it, renames it to <id>.eml; resolves to the id. */
async function store(stream: SMTPServerDataStream, session: SMTPServerSession, opts: OutboxServerOptions): Promise<string> {
  const id = newOutboxId();
  const temporary = join(opts.dir, `.${id}.tmp`);
  const path = join(opts.dir, `${id}.eml`);
  let handle: FileHandle | undefined;
  try {
    handle = await open(temporary, 'wx', 0o600);
    await writeStream(stream, handle);
    if (stream.sizeExceeded) throw replyError(REPLIES.tooBig);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temporary, path);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await rm(temporary, { force: true });
    if ((error as { responseCode?: number }).responseCode !== undefined) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    opts.logger.error({ path, problem: code ?? String(error) }, 'demo next hop cannot store a message');
    throw replyError(code === 'ENOSPC' || code === 'EDQUOT' ? REPLIES.outOfDisk : REPLIES.internalError);
  }
  const envelope = session.envelope;
  opts.logger.info(
    {
      outbox: path,
      mailFrom: envelope.mailFrom === false ? '' : printable(envelope.mailFrom.address, 256),
      rcptTo: envelope.rcptTo.slice(0, 100).map((r) => printable(r.address, 256)),
    },
    'demo next hop stored a message',
  );
  return id;
}

/**
 * Copies the DATA stream into the file, one write at a time. The stream is read to its end even after a
 * failed write, so that the session reaches the end of DATA and the client gets our reply.
 */
function writeStream(stream: SMTPServerDataStream, handle: FileHandle): Promise<void> {
  return new Promise((resolve, reject) => {
    let failure: unknown = null;
    stream.on('data', (chunk: Buffer) => {
      if (failure !== null) return;
      stream.pause();
      handle.write(chunk).then(
        () => stream.resume(),
        (error: unknown) => {
          failure = error;
          stream.resume();
        },
      );
    });
    stream.once('end', () => (failure === null ? resolve() : reject(failure)));
    stream.once('error', reject);
  });
}

/** "20261202T181700-1a2b3c": sorts by arrival time, unique per message. */
function newOutboxId(): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '');
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}
