import { afterEach, describe, expect, it } from 'vitest';
import type { NextHopConnection, NextHopOptions } from '../../../src/relay/next-hop-connection.js';
import { createNextHopPool, type NextHopPool } from '../../../src/relay/next-hop-pool.js';
import { startNextHopServer, type NextHopServerOptions, type RunningNextHop } from '../../helpers/next-hop-server.js';

const servers: RunningNextHop[] = [];
const pools: NextHopPool[] = [];

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.closeAll()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function setUp(serverOptions: NextHopServerOptions = {}, limits = { maxIdle: 4, idleTimeoutMs: 10_000 }) {
  const server = await startNextHopServer(serverOptions);
  servers.push(server);
  const opts: NextHopOptions = { host: server.host, port: server.port, tls: 'none', auth: null, lmtp: false, heloName: 'dkimgate.test', timeoutMs: 2000 };
  const pool = createNextHopPool(opts, limits);
  pools.push(pool);
  return { server, pool };
}

async function acquired(pool: NextHopPool): Promise<NextHopConnection> {
  const outcome = await pool.acquire();
  if (outcome.kind !== 'ok') throw new Error(`expected a connection, got ${JSON.stringify(outcome)}`);
  return outcome.connection;
}

async function deliver(connection: NextHopConnection, n: number): Promise<void> {
  expect(await connection.mailFrom('sender@example.org', {})).toMatchObject({ kind: 'reply', reply: { code: 250 } });
  expect(await connection.rcptTo('rcpt@example.net', {})).toMatchObject({ kind: 'reply', reply: { code: 250 } });
  const outcome = await connection.data([Buffer.from(`Subject: message ${n}\r\n\r\nbody ${n}\r\n`)], 1);
  expect(outcome).toMatchObject({ kind: 'replies', replies: [{ code: 250 }] });
}

async function eventually(check: () => void): Promise<void> {
  const deadline = Date.now() + 2000;
  for (;;) {
    try {
      check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

describe('createNextHopPool', () => {
  it('leaseIdle hands out an idle connection without a command and never opens one; discard drops it', async () => {
    const { server, pool } = await setUp();
    expect(pool.leaseIdle()).toBeNull();
    expect(server.connectionCount()).toBe(0);
    const first = await acquired(pool);
    await pool.release(first, 'clean');
    const leased = pool.leaseIdle();
    expect(leased).toBe(first);
    expect(pool.stats()).toMatchObject({ idle: 0, inUse: 1, reused: 1 });
    // MAIL and RCPT in one write, both answered
    const both = await leased!.mailAndRcpt('sender@example.org', {}, 'rcpt@example.net', {});
    expect(both).toMatchObject({ mail: { kind: 'reply', reply: { code: 250 } }, rcpt: { kind: 'reply', reply: { code: 250 } } });
    expect((await leased!.data([Buffer.from('Subject: pipelined\r\n\r\nbody\r\n')], 1)).kind).toBe('replies');
    pool.discard(leased!);
    expect(leased!.reusable).toBe(false);
    expect(pool.stats()).toMatchObject({ idle: 0, inUse: 0, dropped: 1 });
    expect(server.messages).toHaveLength(1);
  });

  it('sends 20 sequential messages over one connection', async () => {
    const { server, pool } = await setUp();
    for (let n = 0; n < 20; n++) {
      const connection = await acquired(pool);
      await deliver(connection, n);
      await pool.release(connection, 'clean');
    }
    expect(server.connectionCount()).toBe(1);
    expect(server.messages).toHaveLength(20);
    expect(server.messages.map((m) => m.data.toString())).toEqual(Array.from({ length: 20 }, (_, n) => `Subject: message ${n}\r\n\r\nbody ${n}\r\n`));
    expect(pool.stats()).toEqual({ idle: 1, inUse: 0, created: 1, reused: 19, dropped: 0, expired: 0 });
    // a transaction that ended cleanly leaves nothing open: no RSET round trip before the next one
    expect(server.commands.filter((c) => c.line === 'RSET')).toHaveLength(0);
  });

  it('begins each transaction on the idle connection with MAIL FROM alone', async () => {
    const { server, pool } = await setUp();
    for (let n = 0; n < 3; n++) {
      const begun = await pool.begin((c) => c.mailFrom('sender@example.org', {}));
      if (begun.kind !== 'ok') throw new Error(JSON.stringify(begun));
      expect(begun.reply).toMatchObject({ kind: 'reply', reply: { code: 250 } });
      expect(await begun.connection.rcptTo('rcpt@example.net', {})).toMatchObject({ kind: 'reply', reply: { code: 250 } });
      expect(await begun.connection.data([Buffer.from(`Subject: ${n}\r\n\r\nbody\r\n`)], 1)).toMatchObject({ kind: 'replies' });
      await pool.release(begun.connection, 'clean');
    }
    expect(server.connectionCount()).toBe(1);
    expect(server.commands.map((c) => c.line.split(':')[0])).toEqual(['EHLO dkimgate.test', ...Array(3).fill(['MAIL FROM', 'RCPT TO', 'DATA']).flat()]);
  });

  it('drops an idle connection the next hop closed and hands out a new one', async () => {
    const { server, pool } = await setUp();
    const first = await acquired(pool);
    await deliver(first, 1);
    await pool.release(first, 'clean');
    server.dropConnections();
    await eventually(() => expect(pool.stats().idle).toBe(0));
    expect(pool.stats().dropped).toBe(1);
    const second = await acquired(pool);
    expect(second).not.toBe(first);
    await deliver(second, 2);
    expect(server.connectionCount()).toBe(2);
  });

  it('moves MAIL FROM to a new connection when the idle one died just before begin', async () => {
    const { server, pool } = await setUp();
    const first = await acquired(pool);
    await pool.release(first, 'clean');
    server.dropConnections();
    // no wait: the close may not have been seen yet, then MAIL FROM finds the connection gone
    const begun = await pool.begin((c) => c.mailFrom('sender@example.org', {}));
    if (begun.kind !== 'ok') throw new Error(JSON.stringify(begun));
    expect(begun.reply).toMatchObject({ kind: 'reply', reply: { code: 250 } });
    expect(begun.connection).not.toBe(first);
    expect(await begun.connection.rcptTo('rcpt@example.net', {})).toMatchObject({ kind: 'reply', reply: { code: 250 } });
    expect(await begun.connection.data([Buffer.from('Subject: 1\r\n\r\nbody\r\n')], 1)).toMatchObject({ kind: 'replies', replies: [{ code: 250 }] });
    expect(server.messages).toHaveLength(1);
    expect(server.connectionCount()).toBe(2);
    expect(pool.stats()).toMatchObject({ created: 2, dropped: 1 });
  });

  it('moves MAIL FROM to a new connection when the idle one answers it with 421', async () => {
    let mails = 0;
    // the first connection's first MAIL is answered 421 (the next hop closing an idle channel); later ones 250
    const { server, pool } = await setUp({ onMailFrom: () => (++mails === 2 ? { code: 421, message: 'idle too long' } : null) });
    const c0 = await acquired(pool);
    await deliver(c0, 1);
    await pool.release(c0, 'clean');
    const begun = await pool.begin((c) => c.mailFrom('sender@example.org', {}));
    if (begun.kind !== 'ok') throw new Error(JSON.stringify(begun));
    expect(begun.reply).toMatchObject({ kind: 'reply', reply: { code: 250 } });
    expect(begun.connection).not.toBe(c0);
    expect(pool.stats()).toMatchObject({ created: 2, dropped: 1 });
    expect(server.connectionCount()).toBe(2);
  });

  it('passes a refusal of MAIL FROM on a reused connection through, on that connection', async () => {
    const { server, pool } = await setUp({ onMailFrom: (address) => (address.startsWith('bad') ? { code: 550, message: 'sender refused' } : null) });
    const c0 = await acquired(pool);
    await pool.release(c0, 'clean');
    const begun = await pool.begin((c) => c.mailFrom('bad@example.org', {}));
    if (begun.kind !== 'ok') throw new Error(JSON.stringify(begun));
    expect(begun.reply).toMatchObject({ kind: 'reply', reply: { code: 550 } });
    expect(begun.connection).toBe(c0);
    expect(server.connectionCount()).toBe(1);
  });

  it('drops an idle connection that the next hop timed out with 421', async () => {
    const { server, pool } = await setUp({ socketTimeoutMs: 150 });
    const first = await acquired(pool);
    await pool.release(first, 'clean');
    await eventually(() => expect(pool.stats()).toMatchObject({ idle: 0, dropped: 1 }));
    expect(first.reusable).toBe(false);
    await deliver(await acquired(pool), 1);
    expect(server.connectionCount()).toBe(2);
  });

  it('resets a dirty connection before keeping it', async () => {
    const { server, pool } = await setUp();
    const first = await acquired(pool);
    expect(await first.mailFrom('sender@example.org', {})).toMatchObject({ kind: 'reply', reply: { code: 250 } });
    await pool.release(first, 'dirty');
    expect(pool.stats().idle).toBe(1);
    const again = await acquired(pool);
    expect(again).toBe(first);
    await deliver(again, 1); // no "nested MAIL command"
    expect(server.connectionCount()).toBe(1);
  });

  it('closes a connection that is no longer reusable instead of keeping it', async () => {
    const { pool } = await setUp({ onMailFrom: () => ({ code: 421, message: 'going down' }) });
    const connection = await acquired(pool);
    expect(await connection.mailFrom('sender@example.org', {})).toMatchObject({ kind: 'reply', reply: { code: 421 } });
    await pool.release(connection, 'dirty');
    expect(pool.stats()).toMatchObject({ idle: 0, inUse: 0 });
    expect(connection.closed).toBe(true);
  });

  it('expires idle connections with QUIT', async () => {
    const { server, pool } = await setUp({}, { maxIdle: 4, idleTimeoutMs: 100 });
    const connection = await acquired(pool);
    await pool.release(connection, 'clean');
    await eventually(() => expect(server.commands.map((c) => c.line)).toContain('QUIT'));
    expect(pool.stats()).toMatchObject({ idle: 0, expired: 1 });
    await eventually(() => expect(server.openConnections()).toBe(0));
  });

  it('keeps at most maxIdle connections', async () => {
    const { server, pool } = await setUp({}, { maxIdle: 1, idleTimeoutMs: 10_000 });
    const [a, b] = await Promise.all([acquired(pool), acquired(pool)]);
    expect(a).not.toBe(b);
    expect(pool.stats().inUse).toBe(2);
    await pool.release(a, 'clean');
    await pool.release(b, 'clean');
    expect(pool.stats()).toMatchObject({ idle: 1, inUse: 0, created: 2 });
    await eventually(() => expect(server.openConnections()).toBe(1));
  });

  it('quits idle connections on closeAll and closes those released afterwards', async () => {
    const { server, pool } = await setUp();
    const [a, b] = await Promise.all([acquired(pool), acquired(pool)]);
    await pool.release(a, 'clean');
    await pool.closeAll();
    expect(server.commands.filter((c) => c.line === 'QUIT')).toHaveLength(1);
    await pool.release(b, 'clean');
    expect(b.closed).toBe(true);
    expect(pool.stats()).toMatchObject({ idle: 0, inUse: 0 });
    await eventually(() => expect(server.openConnections()).toBe(0));
  });

  it('abortInUse ends the connections in use at once (their data() reports lost) and leaves idle ones be', async () => {
    const { server, pool } = await setUp({ onData: { kind: 'delay', ms: 20_000 } });
    const [busy, spare] = await Promise.all([acquired(pool), acquired(pool)]);
    await pool.release(spare, 'clean');
    expect(await busy.mailFrom('sender@example.org', {})).toMatchObject({ kind: 'reply', reply: { code: 250 } });
    expect(await busy.rcptTo('rcpt@example.net', {})).toMatchObject({ kind: 'reply', reply: { code: 250 } });
    const relaying = busy.data([Buffer.from('Subject: stuck\r\n\r\nbody\r\n')], 1);
    await eventually(() => expect(server.received).toHaveLength(1));
    const started = Date.now();
    expect(pool.abortInUse()).toBe(1);
    // past the final dot: the next hop may hold it, which the caller logs as ambiguous
    expect(await relaying).toMatchObject({ kind: 'lost', afterEndOfData: true });
    expect(Date.now() - started).toBeLessThan(1000);
    await pool.release(busy, 'dirty');
    expect(pool.stats()).toMatchObject({ idle: 1, inUse: 0 });
    expect(spare.closed).toBe(false);
  });

  it('passes on a next hop that cannot be reached', async () => {
    const { server, pool } = await setUp();
    await server.close();
    servers.splice(0);
    expect(await pool.acquire()).toMatchObject({ kind: 'unreachable' });
  });

  it('ignores a connection released twice', async () => {
    const { pool } = await setUp();
    const connection = await acquired(pool);
    await pool.release(connection, 'clean');
    await pool.release(connection, 'clean');
    expect(pool.stats()).toMatchObject({ idle: 1, inUse: 0 });
    expect(connection.closed).toBe(false);
  });
});
