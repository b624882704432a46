// The running daemon's per-message log line and /metrics counters, path by path: each message gives exactly one
// `message` line, its fields say what the client was told, and the counters move by exactly what happened.
// Touches: loopback sockets (the daemon, a scripted next hop, the metrics listener), a temp dir of keys,
// /usr/bin/python3 (python3-prometheus-client parses every scrape).

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/config.js';
import { defaultConfig } from '../../../src/config/defaults.js';
import { Harness, listener, waitFor, type Gate, type LogLine } from '../../helpers/daemon-harness.js';
import type { NextHopServerOptions } from '../../helpers/next-hop-server.js';
import { scrape, seriesOf, valueOf } from '../../helpers/prometheus-text.js';
import { RawClient, sendMail } from '../../helpers/raw-smtp-client.js';

const harness = new Harness();
beforeAll(() => harness.setup());
afterEach(() => harness.cleanup());
afterAll(() => harness.dispose());

function message(from: string): Buffer {
  return Buffer.from(`From: <${from}>\r\nTo: <bob@example.org>\r\nSubject: accounting\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nbody\r\n`);
}

/** A daemon with /metrics on a free port; `over` changes its config. */
function startGate(over: Partial<Config> = {}, hop: NextHopServerOptions = {}): Promise<Gate> {
  return harness.startGate(harness.config({ metrics: { host: '127.0.0.1', port: 0 }, ...over }), hop);
}

/** Retries an async expectation until it holds; bounded. */
async function eventually(check: () => Promise<void>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** Waits for the n-th message line and returns all of them. */
async function messageLines(gate: Gate, n: number): Promise<LogLine[]> {
  await waitFor(() => gate.messageLines().length >= n, 10_000);
  return gate.messageLines();
}

describe('policy rejections', () => {
  it('are counted by the enhanced status the client got (5.7.20), in /metrics and in the log line', async () => {
    const base = defaultConfig();
    const gate = await startGate({ relayHosts: [], policy: { ...base.policy, require: [{ domain: 'example.bank', aligned: true }] } });
    const r = await sendMail(gate.port, { from: 'x@example.bank', data: message('x@example.bank') });
    expect(r.final[0]?.text).toMatch(/^550 5\.7\.20 /);
    const [line] = await messageLines(gate, 1);
    expect(line).toMatchObject({ outcome: 'rejected: no_passing', policy: 'reject', policyStatus: '5.7.20', policyDryRun: false });
    const { samples } = await scrape(gate.daemon.metricsAddress!);
    expect(seriesOf(samples, 'dkimgate_policy_rejections_total')).toEqual(['dry_run=false,status=5.7.20 1']);
  });

  it('count a dry-run would-be rejection by its status too, with dry_run="true"', async () => {
    const base = defaultConfig();
    const gate = await startGate({ relayHosts: [], policy: { ...base.policy, dryRun: true, require: [{ domain: 'example.bank', aligned: true }] } });
    const r = await sendMail(gate.port, { from: 'x@example.bank', data: message('x@example.bank') });
    expect(r.final[0]?.code).toBe(250);
    const [line] = await messageLines(gate, 1);
    expect(line).toMatchObject({ outcome: 'delivered', policy: 'reject', policyStatus: '5.7.20', policyDryRun: true });
    const { samples } = await scrape(gate.daemon.metricsAddress!);
    expect(seriesOf(samples, 'dkimgate_policy_rejections_total')).toEqual(['dry_run=true,status=5.7.20 1']);
  });
});

describe('LMTP', () => {
  it('logs and counts a message the next hop refused for every recipient as refused, not as partly delivered', async () => {
    const gate = await startGate({ listen: [listener({ protocol: 'lmtp' })] }, { onData: { kind: 'refuse', code: 554, message: 'spam' } });
    const r = await sendMail(gate.port, { lmtp: true, to: ['a@example.org', 'b@example.org'], data: message('alice@example.com') });
    expect(r.final.map((f) => f.code)).toEqual([554, 554]);
    const [line] = await messageLines(gate, 1);
    expect(line).toMatchObject({ outcome: 'refused by next hop', relay: 'refused', relayCode: 554, rcptCount: 2 });
    const { samples } = await scrape(gate.daemon.metricsAddress!);
    expect(seriesOf(samples, 'dkimgate_messages_total')).toEqual(['domain=example.com,outcome=refused by next hop 1']);
    expect(seriesOf(samples, 'dkimgate_next_hop_errors_total')).toEqual(['kind=refused 1']);
  });

  it('says delivered when every recipient was taken, one line for the transaction whatever the recipient count', async () => {
    const gate = await startGate({ listen: [listener({ protocol: 'lmtp' })] });
    const r = await sendMail(gate.port, { lmtp: true, to: ['a@example.org', 'b@example.org', 'c@example.org'], data: message('alice@example.com') });
    expect(r.final.map((f) => f.code)).toEqual([250, 250, 250]);
    const queueIds = new Set(r.final.map((f) => /queued as (\S+)/.exec(f.text)?.[1]));
    const [line] = await messageLines(gate, 1);
    expect([...queueIds]).toEqual([line!.queueId]);
    expect(line).toMatchObject({ outcome: 'delivered', relay: 'delivered', rcptTo: ['a@example.org', 'b@example.org', 'c@example.org'], rcptCount: 3 });
    // the listener as bound (the config says port 0), as the `listening` line names it
    expect(line!.listener).toBe(`lmtp://127.0.0.1:${gate.port}`);
    expect(gate.logs.find((l) => l.msg === 'listening')?.listener).toBe(line!.listener);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(gate.messageLines()).toHaveLength(1);
  });
});

describe('next-hop failures', () => {
  it('counts a next hop lost at RCPT once, and does not time a relay that never happened', async () => {
    let gate: Gate | undefined;
    gate = await startGate({}, {
      onRcptTo: (rcpt) => {
        // the next hop answers this RCPT, then goes away under the transaction
        if (rcpt.startsWith('last')) setTimeout(() => gate?.nextHop.dropConnections(), 20);
        return null;
      },
    });
    const client = await RawClient.open(gate.port);
    try {
      await client.command('EHLO client.test');
      expect((await client.command('MAIL FROM:<alice@example.com>')).code).toBe(250);
      expect((await client.command('RCPT TO:<last@example.org>')).code).toBe(250);
      await waitFor(() => gate!.nextHop.openConnections() === 0);
      expect((await client.command('RCPT TO:<more@example.org>')).text).toMatch(/^451 4\.4\.2 /);
      expect((await client.command('DATA')).code).toBe(354);
      client.write(message('alice@example.com'));
      expect((await client.command('.')).text).toMatch(/^451 4\.4\.2 /);
    } finally {
      client.close();
    }
    const [line] = await messageLines(gate, 1);
    expect(line).toMatchObject({ outcome: 'next hop lost', relay: 'lost', decision: 'none', relayMs: 0 });
    const { samples } = await scrape(gate.daemon.metricsAddress!);
    expect(seriesOf(samples, 'dkimgate_next_hop_errors_total')).toEqual(['kind=lost 1']);
    expect(valueOf(samples, 'dkimgate_relay_seconds_count')).toBe(0);
    expect(seriesOf(samples, 'dkimgate_messages_total')).toEqual(['domain=other,outcome=next hop lost 1']);
  });

  it.each([
    ['goes away right after our final dot', { kind: 'drop', when: 'after-dot' } as const, 'lost', /^lost during end-of-data/, 'ambiguous'],
    ['never answers our final dot', { kind: 'stall' } as const, 'timeout', /^timeout during end-of-data$/, 'ambiguous'],
    ['goes away in the middle of the message', { kind: 'drop', when: 'mid-data', afterBytes: 1 } as const, 'lost', /^lost during data/, 'lost'],
  ])('when the next hop %s: 451 4.4.2, the line says what failed, and it is a next-hop error', async (_name, onData, kind, relayError, relay) => {
    const gate = await startGate({ limits: { ...defaultConfig().limits, nextHopTimeout: 1 } }, { onData });
    // 8 MB: more than loopback socket buffers hold, so a next hop gone mid-message is found before our final dot left
    const body = Buffer.alloc(8 * 1024 * 1024, 'x');
    for (let i = 998; i < body.length; i += 1000) body.write('\r\n', i - 1, 'latin1');
    const r = await sendMail(gate.port, { data: Buffer.concat([message('alice@example.com'), body]) });
    expect(r.final[0]?.text).toMatch(/^451 4\.4\.2 /);
    const [line] = await messageLines(gate, 1);
    expect(line).toMatchObject({ relay, outcome: relay === 'ambiguous' ? 'ambiguous' : `next hop ${kind}` });
    expect(line!.relayError).toMatch(relayError);
    expect(line!.ambiguous).toBe(relay === 'ambiguous' ? true : undefined);
    const { samples } = await scrape(gate.daemon.metricsAddress!);
    expect(seriesOf(samples, 'dkimgate_next_hop_errors_total')).toEqual([`kind=${kind} 1`]);
    expect(valueOf(samples, 'dkimgate_relay_seconds_count')).toBe(1);
  });
});

describe('the connection gauge', () => {
  it('counts the client still connected after others were refused for max_clients, and 0 once all left', async () => {
    const gate = await startGate({ limits: { ...defaultConfig().limits, maxClients: 1 } });
    const held = await RawClient.open(gate.port);
    try {
      for (let i = 0; i < 3; i++) {
        const socket = connect({ host: '127.0.0.1', port: gate.port });
        const refused = new RawClient(socket);
        expect((await refused.read()).text).toMatch(/^421 /);
        refused.close();
        await new Promise((resolve) => socket.once('close', resolve));
      }
      await new Promise((resolve) => setTimeout(resolve, 200)); // the refused sessions' onClose ran
      expect(valueOf((await scrape(gate.daemon.metricsAddress!)).samples, 'dkimgate_connections')).toBe(1);
    } finally {
      held.close();
    }
    await eventually(async () => expect(valueOf((await scrape(gate.daemon.metricsAddress!)).samples, 'dkimgate_connections')).toBe(0));
  });
});

describe('refusals before DATA', () => {
  it('log each refused MAIL FROM and RCPT TO with the reply the client got, the session and the queue id', async () => {
    const gate = await startGate(
      { limits: { ...defaultConfig().limits, maxRecipients: 3 } },
      {
        onMailFrom: (from) => (from.startsWith('blocked') ? { code: 553, message: 'sender blocked' } : null),
        onRcptTo: (rcpt) => (rcpt.startsWith('nobody') ? { code: 550, message: 'no such user' } : rcpt.startsWith('full') ? { code: 452, message: 'mailbox full' } : null),
      },
    );
    const client = await RawClient.open(gate.port);
    const sent: string[] = [];
    const command = async (line: string) => {
      const reply = await client.command(line);
      if (reply.code >= 400) sent.push(reply.text.trimEnd());
      return reply;
    };
    try {
      await command('EHLO client.test');
      expect((await command('MAIL FROM:<blocked@example.com>')).code).toBe(553);
      expect((await command('MAIL FROM:<alice@example.com>')).code).toBe(250);
      expect((await command('RCPT TO:<nobody@example.org>')).code).toBe(550);
      expect((await command('RCPT TO:<full@example.org>')).code).toBe(452);
      expect((await command('RCPT TO:<bob@example.org>')).code).toBe(250);
      expect((await command('RCPT TO:<carol@example.org>')).text).toMatch(/^452 4\.5\.3 /);
      expect((await command('DATA')).code).toBe(354);
      client.write(message('alice@example.com'));
      expect((await command('.')).code).toBe(250);
    } finally {
      client.close();
    }
    const [line] = await messageLines(gate, 1);
    const refusals = gate.logs.filter((l) => l.msg === 'command refused');
    expect(refusals.map((l) => `${l.reply as string}`)).toEqual(sent);
    expect(refusals.map((l) => [l.command, l.address])).toEqual([
      ['MAIL FROM', 'blocked@example.com'],
      ['RCPT TO', 'nobody@example.org'],
      ['RCPT TO', 'full@example.org'],
      ['RCPT TO', 'carol@example.org'],
    ]);
    // one session; the RCPT refusals belong to the transaction whose message line follows
    expect(new Set([...refusals, line!].map((l) => l.session)).size).toBe(1);
    expect(refusals.map((l) => l.queueId)).toEqual([null, line!.queueId, line!.queueId, line!.queueId]);
    expect(refusals.every((l) => l.client === '127.0.0.1')).toBe(true);
    // the next hop's refusals (MAIL 553, RCPT 550, RCPT 452) are next-hop refusals; our own 452 4.5.3 is not
    const { samples } = await scrape(gate.daemon.metricsAddress!);
    expect(seriesOf(samples, 'dkimgate_next_hop_errors_total')).toEqual(['kind=deferred 1', 'kind=refused 2']);
  });

  it('stop at 20 lines a session, saying so once, when a client repeats a refused command in one packet', async () => {
    const gate = await startGate();
    const client = await RawClient.open(gate.port);
    try {
      await client.command('EHLO client.test');
      client.write('RCPT TO:<bob@example.org>\r\n'.repeat(500));
      for (let i = 0; i < 500; i++) expect((await client.read()).code).toBe(503);
    } finally {
      client.close();
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    const lines = gate.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('command refused'));
    expect(lines).toHaveLength(21);
    expect(lines[20]).toMatchObject({ msg: 'command refused: further refusals in this session are not logged', limit: 20 });
    // a new session is logged again
    const other = await RawClient.open(gate.port);
    try {
      await other.command('EHLO client.test');
      expect((await other.command('RCPT TO:<bob@example.org>')).code).toBe(503);
    } finally {
      other.close();
    }
    await waitFor(() => gate.logs.filter((l) => l.msg === 'command refused').length === 21);
  });

  it('log connections refused before their first command (max_clients) at 10 lines a second at most', async () => {
    const gate = await startGate({ limits: { ...defaultConfig().limits, maxClients: 1 } });
    const held = await RawClient.open(gate.port);
    const started = performance.now();
    try {
      const refused = await Promise.all(
        Array.from({ length: 200 }, async () => {
          const client = new RawClient(connect({ host: '127.0.0.1', port: gate.port }));
          try {
            return (await client.read()).code;
          } finally {
            client.close();
          }
        }),
      );
      expect(refused.every((code) => code === 421)).toBe(true);
    } finally {
      held.close();
    }
    const seconds = Math.ceil((performance.now() - started) / 1000) + 1;
    await new Promise((resolve) => setTimeout(resolve, 200));
    const lines = gate.logs.filter((l) => l.msg === 'command refused');
    expect(lines.length).toBeGreaterThanOrEqual(10);
    expect(lines.length).toBeLessThanOrEqual(10 * seconds);
    expect(lines.every((l) => l.lastCommand === null && typeof l.reply === 'string' && (l.reply as string).startsWith('421 '))).toBe(true);
    expect(gate.logs.some((l) => l.msg === 'command refused: further connections refused in this second are not logged')).toBe(true);
  });

  it('log the refusals smtp-server makes itself (SIZE, syntax, sequence, XFORWARD, AUTH) with the command, never a credential', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dkimgate-refusals-'));
    harness.onCleanup(() => rm(dir, { recursive: true, force: true }));
    const usersFile = join(dir, 'users');
    const hash = bcrypt.hashSync('right horse battery', 4);
    await writeFile(usersFile, `alice:${hash}\n`, { mode: 0o600 });
    const gate = await startGate({ usersFile, listen: [listener({ allowInsecureAuth: true })] });
    const client = await RawClient.open(gate.port);
    const sent: string[] = [];
    const command = async (line: string) => {
      const reply = await client.command(line, 10_000);
      if (reply.code >= 400) sent.push(reply.text.trimEnd());
      return reply;
    };
    const credential = Buffer.from('\0alice\0wrong horse staple').toString('base64');
    try {
      await command('EHLO client.test');
      expect((await command('MAIL FROM:<alice@example.com> SIZE=999999999')).code).toBe(552);
      expect((await command('RCPT TO:<bob@example.org>')).code).toBe(503);
      expect((await command('XFORWARD ADDR=192.0.2.1')).code).toBe(550);
      expect((await command(`AUTH PLAIN ${credential}`)).code).toBe(535);
    } finally {
      client.close();
    }
    await waitFor(() => gate.logs.filter((l) => l.msg === 'command refused').length === 4);
    const refusals = gate.logs.filter((l) => l.msg === 'command refused');
    expect(refusals.map((l) => l.reply)).toEqual(sent);
    expect(refusals.map((l) => l.lastCommand)).toEqual([
      'MAIL FROM:<alice@example.com> SIZE=999999999',
      'RCPT TO:<bob@example.org>',
      'XFORWARD ADDR=192.0.2.1',
      'AUTH PLAIN',
    ]);
    expect(refusals.every((l) => l.client === '127.0.0.1' && typeof l.session === 'string')).toBe(true);
    const logged = JSON.stringify(gate.logs);
    for (const secret of ['wrong horse staple', credential, hash]) expect(logged).not.toContain(secret);
  });
});

describe('every path at once', () => {
  it('gives one line per transaction that reached DATA, and counters that add up to the lines exactly', async () => {
    const base = defaultConfig();
    const gate = await startGate(
      {
        listen: [listener(), listener({ protocol: 'lmtp' })],
        limits: { ...base.limits, maxMessageSize: 100_000 },
        policy: { ...base.policy, require: [{ domain: 'example.bank', aligned: true }] },
      },
      {
        onData: (envelope) => {
          const local = envelope.mailFrom.split('@')[0];
          if (local === 'defer') return { kind: 'defer' };
          if (local === 'refuse') return { kind: 'refuse', code: 554, message: 'no' };
          if (local === 'drop') return { kind: 'drop', when: 'after-dot' };
          if (local === 'slow') return { kind: 'delay', ms: 600 };
          return { kind: 'accept', message: `OK: queued as HOP${envelope.rcptTo.length}` };
        },
      },
    );
    const lmtpPort = gate.daemon.addresses[1]!.port;
    const replies: number[] = [];
    const send = async (from: string, data = message(from), port = gate.port, lmtp = false) => {
      const r = await sendMail(port, { from, data, lmtp, to: ['a@example.org', 'b@example.org'] });
      replies.push(...r.final.map((f) => f.code));
    };
    await send('alice@example.com'); // signed, delivered
    await send('x@other.test'); // verified, delivered
    await send('x@example.bank'); // 550 5.7.20
    await send('defer@example.com'); // next hop 451
    await send('refuse@example.com'); // next hop 554
    await send('drop@example.com'); // 451 4.4.2, ambiguous
    await send('alice@example.com', Buffer.concat([message('alice@example.com'), Buffer.alloc(200_000, 'a')])); // 552
    await send('alice@example.com', Buffer.from('From: <alice@example.com>\r\nSubject: a\rb\r\n\r\nx\r\n', 'latin1')); // bare CR
    await send('alice@example.com', message('alice@example.com'), lmtpPort, true); // LMTP, two 250s
    // two transactions and an abandoned one (RSET) on one session
    const client = await RawClient.open(gate.port);
    try {
      await client.command('EHLO client.test');
      await client.command('MAIL FROM:<alice@example.com>');
      await client.command('RCPT TO:<a@example.org>');
      expect((await client.command('RSET')).code).toBe(250);
      for (let i = 0; i < 2; i++) {
        await client.command('MAIL FROM:<alice@example.com>');
        await client.command('RCPT TO:<a@example.org>');
        await client.command('DATA');
        client.write(message('alice@example.com'));
        replies.push((await client.command('.')).code);
      }
      // gone mid-message, and gone before our 250
      for (const from of ['alice@example.com', 'slow@example.com']) {
        const c = await RawClient.open(gate.port);
        await c.command('EHLO client.test');
        await c.command(`MAIL FROM:<${from}>`);
        await c.command('RCPT TO:<a@example.org>');
        await c.command('DATA');
        c.write(from.startsWith('slow') ? Buffer.concat([message(from), Buffer.from('.\r\n')]) : Buffer.from('From: <alice@example.com>\r\n'));
        await (from.startsWith('slow') ? waitFor(() => gate.nextHop.received.length === 9) : new Promise((resolve) => setTimeout(resolve, 100)));
        c.close();
      }
    } finally {
      client.close();
    }
    const lines = await messageLines(gate, 13);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(gate.messageLines()).toHaveLength(13);
    expect(new Set(lines.map((l) => l.queueId)).size).toBe(13);
    expect(replies).toEqual([250, 250, 550, 451, 554, 451, 552, 550, 250, 250, 250, 250]);
    expect(lines.filter((l) => l.ambiguous === true).map((l) => l.mailFrom)).toEqual(['drop@example.com', 'slow@example.com']);

    const count = <T>(values: T[]) => {
      const out = new Map<string, number>();
      for (const v of values) out.set(String(v), (out.get(String(v)) ?? 0) + 1);
      return [...out].map(([k, n]) => `${k} ${n}`).sort();
    };
    const { samples } = await scrape(gate.daemon.metricsAddress!);
    const byLabel = (name: string, label: string) => {
      const sums = new Map<string, number>();
      for (const s of samples.filter((x) => x.name === name)) sums.set(s.labels[label]!, (sums.get(s.labels[label]!) ?? 0) + s.value);
      return [...sums].filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).sort();
    };
    expect(byLabel('dkimgate_messages_total', 'outcome')).toEqual(count(lines.map((l) => l.outcome)));
    type Dkim = { result: string; reason: string | null };
    type Signed = { selector: string };
    expect(byLabel('dkimgate_verify_results_total', 'result')).toEqual(count(lines.flatMap((l) => ((l.dkim ?? []) as Dkim[]).map((d) => d.result))));
    expect(byLabel('dkimgate_sign_total', 'selector')).toEqual(count(lines.flatMap((l) => ((l.signed ?? []) as Signed[]).map((d) => d.selector))));
    expect(valueOf(samples, 'dkimgate_sign_seconds_count')).toBe(lines.filter((l) => l.signMs !== undefined).length);
    expect(valueOf(samples, 'dkimgate_verify_seconds_count')).toBe(lines.filter((l) => l.verifyMs !== undefined).length);
    expect(valueOf(samples, 'dkimgate_relay_seconds_count')).toBe(lines.filter((l) => l.relay !== 'not_relayed').length);
    expect(seriesOf(samples, 'dkimgate_next_hop_errors_total')).toEqual(['kind=deferred 1', 'kind=lost 1', 'kind=refused 1']);
    expect(seriesOf(samples, 'dkimgate_policy_rejections_total')).toEqual(['dry_run=false,status=5.7.20 1']);
    await eventually(async () => {
      const now = (await scrape(gate.daemon.metricsAddress!)).samples;
      expect([valueOf(now, 'dkimgate_transactions_in_flight'), valueOf(now, 'dkimgate_connections')]).toEqual([0, 0]);
    });
  });
});
