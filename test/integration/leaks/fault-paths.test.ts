// Every way a transaction can end gives back what it took: spool files (on disk and open), the body and header
// memory budgets, next-hop connections (back to the pool or closed, never left open), file descriptors.
// Why a test: a leak on one fault path shows only after days (a full spool_dir, a budget that refuses every message
// with 452, a pool that grows); hundreds of transactions through each path make it show now.
// Touches: loopback sockets (the daemon in-process, a scriptable next hop), a temporary spool_dir, /proc/self/fd.

import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spoolMemoryInUse } from '../../../src/pipeline/body-spool.js';
import { headerMemoryInUse } from '../../../src/pipeline/header-memory.js';
import { Harness, waitFor, type Gate } from '../../helpers/daemon-harness.js';
import { dotStuff, RawClient } from '../../helpers/raw-smtp-client.js';
import { openUnlinkedSpools } from '../../helpers/spool-files.js';

const PER_PATH = 40;
const CONCURRENCY = 8;
/** The pool keeps at most this many idle connections (app.ts). */
const MAX_IDLE = 32;
const SPILL = 4096;

const h = new Harness();
let spool = '';
let gate: Gate;

beforeAll(async () => {
  await h.setup();
  spool = await mkdtemp(join(tmpdir(), 'dkimgate-leaks-spool-'));
  const base = h.config();
  gate = await h.startGate(
    { ...base, limits: { ...base.limits, spillThreshold: SPILL, spoolDir: spool, maxMessageSize: 100_000, maxHeaderSize: 50_000, nextHopTimeout: 1 } },
    {
      onMailFrom: (address) => (address.startsWith('mail-refused') ? { code: 550, message: 'sender refused' } : null),
      onRcptTo: (address) => (address.startsWith('rcpt-refused') ? { code: 550, message: 'recipient refused' } : null),
      onData: (envelope) => {
        const to = envelope.rcptTo[0] ?? '';
        if (to.startsWith('refused')) return { kind: 'refuse', code: 554, message: 'message refused' };
        if (to.startsWith('drop-mid')) return { kind: 'drop', when: 'mid-data', afterBytes: 1000 };
        if (to.startsWith('drop-dot')) return { kind: 'drop', when: 'after-dot' };
        if (to.startsWith('stall')) return { kind: 'stall' };
        return { kind: 'accept' };
      },
    },
  );
});

afterAll(async () => {
  await h.dispose();
  await rm(spool, { recursive: true, force: true });
});

/** A message of about `bytes` bytes (over SPILL: spooled to a file). */
function message(bytes: number): Buffer {
  const line = `${'x'.repeat(70)}\r\n`;
  return Buffer.from(`From: <alice@example.com>\r\nTo: <bob@example.org>\r\nSubject: leak check\r\n\r\n${line.repeat(Math.ceil(bytes / line.length))}`);
}

type Ending = 'reply' | 'vanish-mid-data' | 'vanish-after-dot' | 'vanish-after-rcpt' | 'rset';

/** One transaction on a new connection; the client's last reply code, or 0 when it left without one. */
async function transaction(from: string, to: string, body: Buffer, ending: Ending): Promise<number> {
  const client = await RawClient.open(gate.port);
  try {
    await client.command('EHLO client.test');
    const mail = await client.command(`MAIL FROM:<${from}>`);
    if (mail.code !== 250) return mail.code;
    const rcpt = await client.command(`RCPT TO:<${to}>`);
    if (rcpt.code !== 250) return rcpt.code;
    if (ending === 'vanish-after-rcpt') return 0;
    if (ending === 'rset') return (await client.command('RSET')).code;
    const data = await client.command('DATA');
    if (data.code !== 354) return data.code;
    const stuffed = dotStuff(body);
    if (ending === 'vanish-mid-data') {
      client.write(stuffed.subarray(0, stuffed.length >> 1));
      await new Promise((r) => setTimeout(r, 10));
      return 0;
    }
    client.write(stuffed);
    client.write('.\r\n');
    if (ending === 'vanish-after-dot') return 0;
    return (await client.read(10_000)).code;
  } finally {
    client.close();
  }
}

async function repeat(count: number, run: () => Promise<number>): Promise<number[]> {
  const codes: number[] = [];
  let started = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (started++ < count) codes.push(await run());
    }),
  );
  return codes;
}

const fdCount = (): number => readdirSync('/proc/self/fd').length;

/** What a finished transaction must have given back, once the daemon has settled. */
async function expectNothingHeld(fdsBefore: number): Promise<void> {
  // settled: no transaction in flight (each ends with a message line or a closed session)
  await waitFor(() => spoolMemoryInUse() === 0 && headerMemoryInUse() === 0 && openUnlinkedSpools('self', spool).length === 0, 10_000);
  expect(await readdir(spool)).toEqual([]);
  // next-hop connections: only the pool's idle ones stay open
  await waitFor(() => gate.nextHop.openConnections() <= MAX_IDLE, 10_000);
  // descriptors: at most the idle next-hop connections more than before (client sockets closed, spools closed)
  await waitFor(() => fdCount() <= fdsBefore + MAX_IDLE, 10_000);
}

const PATHS: Array<{ name: string; from?: string; to: string; bytes: number; ending: Ending; codes: number[] }> = [
  { name: 'delivered (in memory)', to: 'bob@example.org', bytes: 1000, ending: 'reply', codes: [250] },
  { name: 'delivered (spooled)', to: 'bob@example.org', bytes: 20_000, ending: 'reply', codes: [250] },
  { name: 'refused by the next hop at the end of data', to: 'refused@example.org', bytes: 20_000, ending: 'reply', codes: [554] },
  { name: 'next hop lost mid-data', to: 'drop-mid@example.org', bytes: 20_000, ending: 'reply', codes: [451] },
  { name: 'next hop lost after the dot', to: 'drop-dot@example.org', bytes: 20_000, ending: 'reply', codes: [451] },
  { name: 'next hop silent after the dot', to: 'stall@example.org', bytes: 20_000, ending: 'reply', codes: [451] },
  { name: 'over max_message_size', to: 'bob@example.org', bytes: 150_000, ending: 'reply', codes: [552] },
  { name: 'client gone mid-data (spooled)', to: 'bob@example.org', bytes: 40_000, ending: 'vanish-mid-data', codes: [0] },
  { name: 'client gone after the dot', to: 'bob@example.org', bytes: 20_000, ending: 'vanish-after-dot', codes: [0] },
  { name: 'client gone after RCPT', to: 'bob@example.org', bytes: 0, ending: 'vanish-after-rcpt', codes: [0] },
  { name: 'RSET after RCPT', to: 'bob@example.org', bytes: 0, ending: 'rset', codes: [250] },
  { name: 'RCPT refused by the next hop', to: 'rcpt-refused@example.org', bytes: 0, ending: 'reply', codes: [550] },
  { name: 'MAIL refused by the next hop', from: 'mail-refused@example.com', to: 'bob@example.org', bytes: 0, ending: 'reply', codes: [550] },
];

describe('resources after each way a transaction ends', () => {
  for (const path of PATHS) {
    it(`${path.name}: nothing held after ${PER_PATH} transactions`, async () => {
      const fdsBefore = fdCount();
      const body = message(path.bytes);
      const codes = await repeat(PER_PATH, () => transaction(path.from ?? 'alice@example.com', path.to, body, path.ending));
      expect([...new Set(codes)]).toEqual(path.codes);
      await expectNothingHeld(fdsBefore);
    });
  }
});
