// Test helper: a ledger run. Many clients send numbered messages through the daemon to a next hop that fails at
// random (seeded), clients that vanish at random, and every attempt is retried like an MTA would; then the ledger
// reconciles what each client was told, what the next hop holds and what the daemon logged (reliability.md 1–2).
// Touches: loopback sockets only; every loop is bounded by the message count and maxAttempts.

import { connect, type Socket } from 'node:net';
import type { LogLine } from './daemon-harness.js';
import type { DataMode, NextHopServerOptions, RunningNextHop, ScriptedReply } from './next-hop-server.js';

/** Probabilities per attempt (0..1); what is left over is a plain accept. */
export type LedgerFaults = {
  /** next hop: 450 to RCPT */
  hopRcptDefer: number;
  /** next hop: 451 at end of data */
  hopDefer: number;
  /** next hop: 554 at end of data (final: the message is refused) */
  hopRefuse: number;
  /** next hop: closes the connection while the message arrives */
  hopDropMidData: number;
  /** next hop: closes the connection once the final dot arrived, without a reply */
  hopDropAfterDot: number;
  /** next hop: keeps the message but answers after the daemon's next_hop_timeout (the ambiguous window) */
  hopLate: number;
  /** next hop: never answers end of data */
  hopStall: number;
  /** client: closes its connection in the middle of DATA */
  clientVanishMidData: number;
  /** client: closes its connection right after its final dot, without reading the reply */
  clientVanishAfterDot: number;
};

export const NO_FAULTS: LedgerFaults = {
  hopRcptDefer: 0,
  hopDefer: 0,
  hopRefuse: 0,
  hopDropMidData: 0,
  hopDropAfterDot: 0,
  hopLate: 0,
  hopStall: 0,
  clientVanishMidData: 0,
  clientVanishAfterDot: 0,
};

/** The mix the CI ledger and the soak use: about one attempt in five meets a fault. */
export const RANDOM_FAULTS: LedgerFaults = {
  hopRcptDefer: 0.02,
  hopDefer: 0.03,
  hopRefuse: 0.01,
  hopDropMidData: 0.02,
  hopDropAfterDot: 0.02,
  hopLate: 0.01,
  hopStall: 0.003,
  clientVanishMidData: 0.02,
  clientVanishAfterDot: 0.02,
};

type HopFault = 'rcptDefer' | 'defer' | 'refuse' | 'dropMidData' | 'dropAfterDot' | 'late' | 'stall' | 'accept';
type ClientFault = 'vanishMidData' | 'vanishAfterDot' | 'none';

/** What the client learnt from one attempt. */
export type AttemptOutcome = '250' | '4xx' | '5xx' | 'vanished' | 'lost';

export type LedgerOptions = {
  port: number;
  messages: number;
  sessions: number;
  seed: number;
  faults: LedgerFaults;
  /** Attempts per message before the client gives up (as an MTA's queue lifetime). */
  maxAttempts?: number;
  /** The daemon's next_hop_timeout in ms: a 'late' next hop answers after it. */
  nextHopTimeoutMs: number;
  /** Longest wait for any one reply. */
  replyTimeoutMs?: number;
  /** Body bytes per message are drawn from this range. */
  bodyBytes?: [number, number];
  /** Called every `progressEvery` finished messages (e.g. to sample memory). */
  onProgress?: (done: number) => void;
  progressEvery?: number;
};

export type LedgerAttempt = { id: number; attempt: number; clientFault: ClientFault; outcome: AttemptOutcome; reply: string };

export type LedgerReport = {
  messages: number;
  attempts: number;
  /** Messages whose client finally got 250. */
  delivered: number;
  /** Messages finally refused with a 5xx. */
  refused: number;
  /** Messages still unsent after maxAttempts. */
  gaveUp: number;
  /** Copies the next hop holds in all. */
  copies: number;
  /** Copies beyond one per message: each must come from an attempt in the ambiguous window. */
  duplicates: number;
  /** Attempts the daemon logged as ambiguous. */
  ambiguousLogged: number;
  /** Attempts whose copy reached the next hop while the client did not see our 250 (each is logged). */
  ambiguousCopies: number;
  byOutcome: Record<AttemptOutcome, number>;
  /** Every broken invariant, one line each; empty when the run proved the ledger. */
  violations: string[];
  elapsedMs: number;
};

const DOMAIN = 'ledger.test';

/** The envelope sender that names a message and an attempt: the next hop and the log line both carry it. */
export function ledgerSender(id: number, attempt: number): string {
  return `m${id}-a${attempt}@${DOMAIN}`;
}

function parseSender(address: string): { id: number; attempt: number } | null {
  const m = /^m(\d+)-a(\d+)@ledger\.test$/.exec(address);
  return m ? { id: Number(m[1]), attempt: Number(m[2]) } : null;
}

/** A small seeded PRNG (mulberry32): the same seed gives the same faults. */
export function createRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The fault for one attempt, a pure function of (seed, id, attempt) so the next hop and the report agree. */
function hopFaultFor(seed: number, id: number, attempt: number, f: LedgerFaults): HopFault {
  const r = createRandom(seed ^ Math.imul(id + 1, 0x9e3779b1) ^ Math.imul(attempt + 1, 0x85ebca6b))();
  const table: Array<[number, HopFault]> = [
    [f.hopRcptDefer, 'rcptDefer'],
    [f.hopDefer, 'defer'],
    [f.hopRefuse, 'refuse'],
    [f.hopDropMidData, 'dropMidData'],
    [f.hopDropAfterDot, 'dropAfterDot'],
    [f.hopLate, 'late'],
    [f.hopStall, 'stall'],
  ];
  let acc = 0;
  for (const [p, fault] of table) {
    acc += p;
    if (r < acc) return fault;
  }
  return 'accept';
}

/** The next hop's scripted behaviour for a ledger run: its faults follow the senders' ids and attempts. */
export function ledgerNextHop(opts: Pick<LedgerOptions, 'seed' | 'faults' | 'nextHopTimeoutMs'>): NextHopServerOptions {
  const faultOf = (mailFrom: string): HopFault => {
    const parsed = parseSender(mailFrom);
    return parsed ? hopFaultFor(opts.seed, parsed.id, parsed.attempt, opts.faults) : 'accept';
  };
  return {
    socketTimeoutMs: 120_000,
    onRcptTo: (_address, _params, session): ScriptedReply | null => {
      const from = session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address;
      return faultOf(from) === 'rcptDefer' ? { code: 450, message: 'mailbox busy, try later' } : null;
    },
    onData: (envelope): DataMode => {
      switch (faultOf(envelope.mailFrom)) {
        case 'defer':
          return { kind: 'defer' };
        case 'refuse':
          return { kind: 'refuse', code: 554, message: 'content refused' };
        case 'dropMidData':
          return { kind: 'drop', when: 'mid-data', afterBytes: 64 };
        case 'dropAfterDot':
          return { kind: 'drop', when: 'after-dot' };
        case 'late':
          return { kind: 'delay', ms: opts.nextHopTimeoutMs + 400 };
        case 'stall':
          return { kind: 'stall' };
        default:
          return { kind: 'accept' };
      }
    },
  };
}

// ---- the client side ------------------------------------------------------------------------------------------

/** A minimal SMTP client connection for the ledger: one reply at a time, bounded waits, never throws on I/O. */
class LedgerConnection {
  private buffer = '';
  private closed = false;
  private wake: (() => void) | null = null;
  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      this.wake?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on('error', () => {});
  }

  static async open(port: number, timeoutMs: number): Promise<LedgerConnection | null> {
    const socket = connect({ host: '127.0.0.1', port });
    const ok = await new Promise<boolean>((resolve) => {
      socket.once('connect', () => resolve(true));
      socket.once('error', () => resolve(false));
    });
    if (!ok) return null;
    const c = new LedgerConnection(socket);
    const greeting = await c.read(timeoutMs);
    if (!greeting.startsWith('220')) {
      c.close();
      return null;
    }
    const ehlo = await c.command('EHLO ledger-client.test', timeoutMs);
    if (!ehlo.startsWith('250')) {
      c.close();
      return null;
    }
    return c;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** One whole reply's last line (code and text), or '' when the connection closed or the wait ran out. */
  async read(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = /^(?:\d{3}-[^\n]*\n)*(\d{3}(?: [^\r\n]*)?)\r?\n/.exec(this.buffer);
      if (m) {
        this.buffer = this.buffer.slice(m[0].length);
        return m[1]!;
      }
      const left = deadline - Date.now();
      if (this.closed || left <= 0) return '';
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          this.wake = null;
          resolve();
        };
      });
    }
  }

  command(line: string, timeoutMs: number): Promise<string> {
    this.write(`${line}\r\n`);
    return this.read(timeoutMs);
  }

  write(data: string | Buffer): void {
    if (!this.closed) this.socket.write(data);
  }

  close(): void {
    this.closed = true;
    this.socket.destroy();
  }
}

function messageFor(id: number, attempt: number, bodyBytes: number): { head: Buffer; body: Buffer } {
  const signed = id % 2 === 0; // half From a domain the daemon signs for, half verified
  const from = signed ? `sender${id}@example.com` : `sender${id}@outside.test`;
  const head = `From: Sender ${id} <${from}>\r\nTo: rcpt${id}@example.org\r\nSubject: ledger message ${id}\r\nMessage-ID: <ledger-${id}-${attempt}@ledger.test>\r\nX-Ledger: ${id}/${attempt}\r\n\r\n`;
  const line = `ledger ${id} `.padEnd(76, 'x') + '\r\n';
  const lines = Math.max(1, Math.floor(bodyBytes / line.length));
  // a line starting with "." exercises dot-stuffing both ways
  return { head: Buffer.from(head, 'latin1'), body: Buffer.from(`..dot line\r\n${line.repeat(lines)}`, 'latin1') };
}

/** Runs the ledger and reconciles; waits for the daemon's log lines and the next hop's messages to settle. */
export async function runLedger(opts: LedgerOptions, hop: RunningNextHop, logs: LogLine[]): Promise<LedgerReport> {
  const started = performance.now();
  const maxAttempts = opts.maxAttempts ?? 8;
  const replyTimeoutMs = opts.replyTimeoutMs ?? Math.max(10_000, opts.nextHopTimeoutMs * 4);
  const [minBody, maxBody] = opts.bodyBytes ?? [200, 20_000];
  const random = createRandom(opts.seed);
  const attempts: LedgerAttempt[] = [];
  const finalOf = new Map<number, 'delivered' | 'refused' | 'gaveUp'>();
  let next = 0;
  let done = 0;

  const clientFault = (): ClientFault => {
    const r = random();
    if (r < opts.faults.clientVanishMidData) return 'vanishMidData';
    if (r < opts.faults.clientVanishMidData + opts.faults.clientVanishAfterDot) return 'vanishAfterDot';
    return 'none';
  };

  /** One attempt on `conn` (opened when null); returns the connection to keep using, or null. */
  const attemptOnce = async (conn: LedgerConnection | null, id: number, attempt: number): Promise<{ conn: LedgerConnection | null; record: LedgerAttempt }> => {
    const fault = clientFault();
    const record: LedgerAttempt = { id, attempt, clientFault: fault, outcome: 'lost', reply: '' };
    if (conn === null || conn.isClosed) conn = await LedgerConnection.open(opts.port, replyTimeoutMs);
    if (conn === null) return { conn: null, record };
    const step = async (line: string): Promise<string | null> => {
      const reply = await conn!.command(line, replyTimeoutMs);
      record.reply = reply;
      if (reply === '') return null;
      return reply;
    };
    const settle = (reply: string): AttemptOutcome => (reply.startsWith('2') ? '250' : reply.startsWith('4') ? '4xx' : reply.startsWith('5') ? '5xx' : 'lost');
    const mail = await step(`MAIL FROM:<${ledgerSender(id, attempt)}>`);
    if (mail === null) return { conn: null, record };
    if (!mail.startsWith('250')) {
      record.outcome = settle(mail);
      return { conn: (await step('RSET')) === null ? null : conn, record };
    }
    const rcpt = await step(`RCPT TO:<rcpt${id}@example.org>`);
    if (rcpt === null) return { conn: null, record };
    if (!rcpt.startsWith('250')) {
      record.outcome = settle(rcpt);
      return { conn: (await step('RSET')) === null ? null : conn, record };
    }
    const data = await step('DATA');
    if (data === null) return { conn: null, record };
    if (!data.startsWith('354')) {
      record.outcome = settle(data);
      return { conn, record };
    }
    const { head, body } = messageFor(id, attempt, Math.floor(minBody + random() * (maxBody - minBody)));
    if (fault === 'vanishMidData') {
      conn.write(head);
      conn.write(body.subarray(0, body.length >> 1));
      conn.close();
      record.outcome = 'vanished';
      return { conn: null, record };
    }
    conn.write(Buffer.concat([head, body, Buffer.from('.\r\n')]));
    if (fault === 'vanishAfterDot') {
      conn.close();
      record.outcome = 'vanished';
      return { conn: null, record };
    }
    const final = await conn.read(replyTimeoutMs);
    record.reply = final;
    record.outcome = final === '' ? 'lost' : settle(final);
    // a 421 closes the session; so may a lost connection
    return { conn: final === '' || final.startsWith('421') ? null : conn, record };
  };

  const worker = async (): Promise<void> => {
    let conn: LedgerConnection | null = null;
    for (;;) {
      const id = next++;
      if (id >= opts.messages) break;
      let final: 'delivered' | 'refused' | 'gaveUp' = 'gaveUp';
      for (let attempt = 1; attempt <= maxAttempts; attempt++) {
        const result = await attemptOnce(conn, id, attempt);
        conn = result.conn;
        attempts.push(result.record);
        if (result.record.outcome === '250') {
          final = 'delivered';
          break;
        }
        if (result.record.outcome === '5xx') {
          final = 'refused';
          break;
        }
      }
      finalOf.set(id, final);
      done++;
      if (opts.onProgress && done % (opts.progressEvery ?? 1000) === 0) opts.onProgress(done);
    }
    if (conn !== null) {
      conn.write('QUIT\r\n');
      conn.close();
    }
  };
  await Promise.all(Array.from({ length: opts.sessions }, () => worker()));

  // Let the daemon finish what it had in flight (late next-hop answers, vanished clients), then reconcile.
  await settleQuiet(() => `${logs.length}/${hop.messages.length}`, opts.nextHopTimeoutMs + 1500);
  return reconcile(opts, attempts, finalOf, hop, logs, performance.now() - started);
}

/** Waits until `probe` stops changing for quietMs (bounded to a minute). */
async function settleQuiet(probe: () => string, quietMs: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  let last = probe();
  let since = Date.now();
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    const now = probe();
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return;
  }
}

function reconcile(
  opts: LedgerOptions,
  attempts: LedgerAttempt[],
  finalOf: Map<number, 'delivered' | 'refused' | 'gaveUp'>,
  hop: RunningNextHop,
  logs: LogLine[],
  elapsedMs: number,
): LedgerReport {
  const violations: string[] = [];
  const key = (id: number, attempt: number) => `${id}/${attempt}`;
  const copies = new Map<string, number>();
  for (const m of hop.messages) {
    const parsed = parseSender(m.envelope.mailFrom);
    if (!parsed) {
      violations.push(`next hop holds a message from an unknown sender ${JSON.stringify(m.envelope.mailFrom)}`);
      continue;
    }
    const k = key(parsed.id, parsed.attempt);
    copies.set(k, (copies.get(k) ?? 0) + 1);
    // the bytes are the ledger's: its own id in X-Ledger, one message, never a second one spliced in
    const text = m.data.toString('latin1');
    if (!text.includes(`X-Ledger: ${parsed.id}/${parsed.attempt}\r\n`) || (text.match(/^X-Ledger:/gm) ?? []).length !== 1) {
      violations.push(`message ${k}: the next hop holds bytes that are not that message`);
    }
  }
  const lines = new Map<string, LogLine[]>();
  let ambiguousLogged = 0;
  for (const line of logs) {
    if (line.msg !== 'message') continue;
    const parsed = parseSender(String(line.mailFrom));
    if (!parsed) continue;
    const k = key(parsed.id, parsed.attempt);
    const list = lines.get(k) ?? [];
    list.push(line);
    lines.set(k, list);
    if (line.relay === 'ambiguous') ambiguousLogged++;
  }

  const byOutcome: Record<AttemptOutcome, number> = { '250': 0, '4xx': 0, '5xx': 0, vanished: 0, lost: 0 };
  let ambiguousCopies = 0;
  for (const a of attempts) {
    byOutcome[a.outcome]++;
    const k = key(a.id, a.attempt);
    const n = copies.get(k) ?? 0;
    const logged = lines.get(k) ?? [];
    if (logged.length > 1) violations.push(`attempt ${k}: ${logged.length} log lines for one message`);
    if (n > 1) violations.push(`attempt ${k}: the next hop holds ${n} copies of one transaction`);
    if (a.outcome === '250' && n !== 1) violations.push(`attempt ${k}: the client got 250 but the next hop holds ${n} copies (lost)`);
    if (a.clientFault === 'vanishMidData' && n > 0) violations.push(`attempt ${k}: the client vanished mid-DATA, yet the next hop holds a copy`);
    else if (a.outcome !== '250' && n > 0) {
      // Allowed only in the ambiguous window (invariant 2), and only when the daemon logged it with both queue ids:
      // the next hop said 250 but the client did not see ours (it vanished, or our end-of-data wait ran out).
      const line = logged[0];
      const windowLogged = line !== undefined && (line.relay === 'ambiguous' || (a.outcome === 'vanished' && line.relay === 'delivered'));
      if (!windowLogged) violations.push(`attempt ${k}: client saw ${a.outcome} (${a.reply}) but the next hop holds it, and the log line says ${String(line?.relay)}`);
      else ambiguousCopies++;
    }
  }
  const sent = new Set(attempts.map((a) => key(a.id, a.attempt)));
  const heldById = new Map<number, number>();
  for (const [k, n] of copies) {
    if (!sent.has(k)) violations.push(`next hop holds ${n} copies of ${k}, which no client sent`);
    const id = Number(k.slice(0, k.indexOf('/')));
    heldById.set(id, (heldById.get(id) ?? 0) + n);
  }

  let delivered = 0;
  let refused = 0;
  let gaveUp = 0;
  let total = 0;
  let duplicates = 0;
  for (let id = 0; id < opts.messages; id++) {
    const final = finalOf.get(id);
    if (final === undefined) {
      violations.push(`message ${id}: never finished`);
      continue;
    }
    const held = heldById.get(id) ?? 0;
    total += held;
    if (final === 'delivered') {
      delivered++;
      if (held === 0) violations.push(`message ${id}: delivered to the client's knowledge, but the next hop holds no copy`);
      duplicates += Math.max(0, held - 1);
    } else {
      if (final === 'refused') refused++;
      else gaveUp++;
      duplicates += Math.max(0, held - 1);
    }
  }
  return {
    messages: opts.messages,
    attempts: attempts.length,
    delivered,
    refused,
    gaveUp,
    copies: total,
    duplicates,
    ambiguousLogged,
    ambiguousCopies,
    byOutcome,
    violations,
    elapsedMs,
  };
}
