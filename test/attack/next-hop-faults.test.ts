// Faults at the next hop that test/integration/daemon/daemon.test.ts does not already cover (it covers: unreachable,
// refused MAIL and RCPT, 451 at end of data, stalling after DATA, dropping mid-DATA): a refused or silent greeting,
// a reset while recipients are given, a reset right after the final dot (the ambiguous window), deferred recipients,
// every recipient refused, a 5xx at end of data. For each: the client's reply, what the next hop holds, the log line.
// Touches: loopback sockets, a temp dir of keys.

import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/config.js';
import { defaultConfig } from '../../src/config/defaults.js';
import { BASIC_MESSAGE } from '../helpers/dkim-test-kit.js';
import { Harness, messageLine, waitFor, type Gate } from '../helpers/daemon-harness.js';
import type { NextHopServerOptions } from '../helpers/next-hop-server.js';
import { RawClient, sendMail, sendMailOn } from '../helpers/raw-smtp-client.js';

const harness = new Harness();
beforeAll(() => harness.setup());
afterEach(() => harness.cleanup());
afterAll(() => harness.dispose());

function startGate(hop: NextHopServerOptions = {}, limits: Partial<Config['limits']> = {}, at?: { host: string; port: number }): Promise<Gate> {
  return harness.startGate(harness.config({ limits: { ...defaultConfig().limits, nextHopTimeout: 1, ...limits } }), hop, at);
}

/** What a scripted next hop does with a line: answer it, hang up, say nothing, or act on its socket. */
type Step = string | 'reset' | 'silence' | ((socket: Socket) => void);

/** A next hop speaking raw SMTP from a script: `greeting` (or 'silence'), then `answer(line)` per command line. */
async function scriptedHop(greeting: Step, answer: (line: string) => Step): Promise<{ port: number; lines: string[]; server: Server }> {
  const lines: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const act = (step: Step) => {
      if (typeof step === 'function') step(socket);
      else if (step === 'reset') socket.resetAndDestroy();
      else if (step !== 'silence') socket.write(`${step}\r\n`);
    };
    act(greeting);
    let buffer = '';
    socket.on('data', (d: Buffer) => {
      buffer += d.toString('latin1');
      for (let at = buffer.indexOf('\r\n'); at !== -1 && !socket.destroyed && !socket.isPaused(); at = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, at);
        buffer = buffer.slice(at + 2);
        lines.push(line);
        act(answer(line));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  harness.onCleanup(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as AddressInfo).port, lines, server };
}

const standard = (overrides: Record<string, Step> = {}) => (line: string): Step => {
  const verb = line.slice(0, 4).toUpperCase();
  if (overrides[verb]) return overrides[verb]!;
  if (verb === 'EHLO') return '250-next-hop.internal.test\r\n250 PIPELINING';
  if (verb === 'DATA') return '354 go ahead';
  if (verb === 'QUIT') return '221 bye';
  return '250 ok';
};

/**
 * `standard()` up to DATA; then `atData` answers the DATA command, `inBody` each line of the message (default
 * silence) and `atDot` its final dot. `held` counts the final dots answered 250.
 */
function dataScript(steps: { atData?: Step; inBody?: (line: string) => Step; atDot?: Step }) {
  let inData = false;
  const script = {
    held: 0,
    dots: 0,
    answer: (line: string): Step => {
      if (inData) {
        if (line !== '.') return steps.inBody?.(line) ?? 'silence';
        inData = false;
        script.dots++;
        const dot = steps.atDot ?? '250 2.0.0 queued';
        if (typeof dot === 'string' && dot.startsWith('250')) script.held++;
        return dot;
      }
      if (/^DATA$/i.test(line)) {
        const at = steps.atData ?? '354 go ahead';
        inData = typeof at !== 'string' || at.startsWith('354');
        return at;
      }
      return standard()(line);
    },
  };
  return script;
}

/** A message of about `mb` MB: more than loopback socket buffers hold while the next hop reads nothing. */
function bigMessage(mb: number): Buffer {
  const line = 'x'.repeat(76) + '\r\n';
  return Buffer.concat([BASIC_MESSAGE, Buffer.from(line.repeat(Math.ceil((mb * 1024 * 1024) / line.length)), 'latin1')]);
}

describe('the next hop refuses or ignores the session', () => {
  // The whole reply is our own text: nothing of the next hop's greeting (its name, its words) reaches the client.
  it.each([
    ['554 refusal', '554 5.3.2 next-hop.internal.test not accepting mail', '451 4.4.1 next hop refused the session, try again later'],
    ['421 busy', '421 4.3.2 next-hop.internal.test busy', '451 4.4.1 next hop refused the session, try again later'],
    ['silent greeting', 'silence', '451 4.4.2 next hop timed out, try again later'],
    ['reset at connect', 'reset', '451 4.4.1 next hop unreachable, try again later'],
  ] as const)('%s: the client gets a temporary 451 at MAIL FROM and keeps the message; nothing of the greeting is passed on', async (_name, greeting, expected) => {
    const hop = await scriptedHop(greeting, standard());
    const gate = await startGate({}, {}, { host: '127.0.0.1', port: hop.port });
    const r = await sendMail(gate.port, { data: BASIC_MESSAGE, timeoutMs: 5000 });
    expect(r.mail.text.trim()).toBe(expected);
    expect(hop.lines.some((l) => /^MAIL/i.test(l))).toBe(false);
    expect(gate.logs.some((l) => /^next hop /.test(String(l.msg)))).toBe(true);
  });
});

describe('internal host names in the texts passed on', () => {
  it.each([
    ['named only in its EHLO reply', '220 ESMTP ready', '250-mx-internal.corp.lan\r\n250 PIPELINING', 'mx-internal.corp.lan'],
    ['named in its greeting, in another letter case', '220 MX-Internal.corp.lan ESMTP', '250-relay\r\n250 PIPELINING', 'MX-INTERNAL.corp.lan'],
    ['the configured host in another letter case', '220 ESMTP ready', '250-relay\r\n250 PIPELINING', 'LOCALHOST'],
    ['the address the configured name led to', '220 ESMTP ready', '250-relay\r\n250 PIPELINING', '127.0.0.1'],
  ])('%s: replaced by "next-hop"; the rest of its text stays', async (_name, greeting, ehlo, inText) => {
    const hop = await scriptedHop(greeting, standard({ EHLO: ehlo, RCPT: `550 5.1.1 <x@y>: mailbox unavailable at ${inText} (10.1.2.3)` }));
    const gate = await startGate({}, {}, { host: 'localhost', port: hop.port });
    const r = await sendMail(gate.port, { data: BASIC_MESSAGE });
    expect(r.rcpts[0]?.text.trim()).toBe('550 5.1.1 next hop: <x@y>: mailbox unavailable at next-hop (10.1.2.3)');
  });
});

describe('a 421 from the next hop inside the transaction', () => {
  it.each([
    ['MAIL FROM', 'MAIL'],
    ['RCPT TO', 'RCPT'],
    ['DATA', 'DATA'],
    ['the final dot', '.'],
  ])('at %s: the client gets 451 for the transaction, keeps its session, and sends the message on it', async (_name, at) => {
    // the next hop answers 421 once (it is going away), then works; a message is counted at its 250
    let closing = 1;
    let inData = false;
    let held = 0;
    const hop = await scriptedHop('220 next-hop.internal.test ESMTP', (line) => {
      if (inData && line !== '.') return 'silence';
      const verb = inData ? '.' : line.slice(0, 4).toUpperCase();
      if (verb === at && closing-- > 0) {
        inData = false;
        return '421 4.3.2 next-hop.internal.test going down';
      }
      if (verb === 'DATA') inData = true;
      if (verb === '.') {
        inData = false;
        held++;
        return '250 2.0.0 queued';
      }
      return standard()(line);
    });
    const gate = await startGate({}, {}, { host: '127.0.0.1', port: hop.port });
    const client = await RawClient.open(gate.port);
    try {
      const first = await sendMailOn(client, { data: BASIC_MESSAGE });
      const refusal = [first.mail, ...first.rcpts, ...(first.data ? [first.data] : []), ...first.final].find((r) => r.code >= 400)!;
      expect(refusal.text).toMatch(/^451 4\.3\.2 next hop: /);
      expect(refusal.text).not.toContain('internal.test');
      expect((await client.command('NOOP')).code).toBe(250);
      const second = await sendMailOn(client, { data: BASIC_MESSAGE });
      expect(second.final[0]?.code).toBe(250);
      expect(held).toBe(1);
    } finally {
      client.close();
    }
  });
});

describe('faults inside the transaction', () => {
  it('a reset while recipients are given: 451 4.4.2 to that RCPT, nothing relayed, and the next session works', async () => {
    let resets = 1;
    const hop = await scriptedHop('220 next-hop.internal.test ESMTP', (line) => (/^RCPT/i.test(line) && resets-- > 0 ? 'reset' : standard()(line)));
    const gate = await startGate({}, {}, { host: '127.0.0.1', port: hop.port });
    const r = await sendMail(gate.port, { data: BASIC_MESSAGE });
    expect(r.rcpts[0]?.text).toMatch(/^451 4\.4\.2 /);
    expect(r.data).toBeNull();
    const again = await sendMail(gate.port, { data: BASIC_MESSAGE });
    expect(again.final[0]?.code).toBe(250);
  });

  it('a reset at the second RCPT: 451 4.4.2 to it and to the rest, and to the DATA the client still sends; logged lost', async () => {
    let rcpts = 0;
    const hop = await scriptedHop('220 next-hop.internal.test ESMTP', (line) => (/^RCPT/i.test(line) && ++rcpts === 2 ? 'reset' : standard()(line)));
    const gate = await startGate({}, {}, { host: '127.0.0.1', port: hop.port });
    const r = await sendMail(gate.port, { to: ['b1@example.org', 'b2@example.org', 'b3@example.org'], data: BASIC_MESSAGE });
    expect(r.rcpts.map((x) => x.text.slice(0, 9))).toEqual(['250 2.1.5', '451 4.4.2', '451 4.4.2']);
    expect(r.data?.code).toBe(354);
    expect(r.final[0]?.text).toMatch(/^451 4\.4\.2 next hop connection lost/);
    expect(await messageLine(gate)).toMatchObject({ relay: 'lost', outcome: 'next hop lost', rcptTo: ['b1@example.org'], decisionReason: 'not reached: the next hop was lost at RCPT' });
    expect(hop.lines.some((l) => /^DATA/i.test(l))).toBe(false);
    const again = await sendMail(gate.port, { data: BASIC_MESSAGE });
    expect(again.final[0]?.code).toBe(250);
  });

  it('deferred recipients (452) pass through with their code; the others are delivered', async () => {
    const gate = await startGate({ onRcptTo: (address) => (address.startsWith('full@') ? { code: 452, message: 'mailbox full' } : null) });
    const r = await sendMail(gate.port, { to: ['full@example.org', 'bob@example.org'], data: BASIC_MESSAGE });
    expect(r.rcpts[0]?.text).toMatch(/^452 4\./);
    expect(r.final[0]?.code).toBe(250);
    expect(gate.nextHop.messages.map((m) => m.envelope.rcptTo)).toEqual([['bob@example.org']]);
  });

  it('every recipient refused: no DATA is sent anywhere and the next hop holds nothing', async () => {
    const gate = await startGate({ onRcptTo: () => ({ code: 550, message: 'no such user' }) });
    const r = await sendMail(gate.port, { to: ['a@example.org', 'b@example.org'], data: BASIC_MESSAGE });
    expect(r.rcpts.map((x) => x.code)).toEqual([550, 550]);
    expect(r.data).toBeNull();
    expect(gate.nextHop.commands.some((c) => /^DATA/i.test(c.line))).toBe(false);
    expect(gate.nextHop.received).toHaveLength(0);
  });

  it('a 554 at end of data passes through as 554 and the next hop holds nothing', async () => {
    const gate = await startGate({ onData: { kind: 'refuse', code: 554, message: 'content rejected' } });
    const r = await sendMail(gate.port, { data: BASIC_MESSAGE });
    expect(r.final[0]?.text).toMatch(/^554 5\./);
    expect(gate.nextHop.messages).toHaveLength(0);
    const line = await messageLine(gate);
    expect(line).toMatchObject({ relay: 'refused', relayCode: 554, outcome: 'refused by next hop' });
  });

  it('a reset right after the final dot: 451 4.4.2 (the client will retry), logged ambiguous — the one allowed duplicate', async () => {
    const gate = await startGate({ onData: { kind: 'drop', when: 'after-dot' } });
    const r = await sendMail(gate.port, { data: BASIC_MESSAGE });
    expect(r.final[0]?.text).toMatch(/^451 4\.4\.2 /);
    // It received the whole message but never said 250: it may or may not hold it.
    expect(gate.nextHop.received).toHaveLength(1);
    expect(gate.nextHop.messages).toHaveLength(0);
    const line = await messageLine(gate);
    expect(line).toMatchObject({ relay: 'ambiguous', outcome: 'ambiguous' });
  });

  it.each([
    ['451', '451 4.3.0 queue file write error', /^451 4\.3\.0 /, 'deferred', 'deferred by next hop'],
    ['554', '554 5.5.1 no valid recipients', /^554 5\.5\.1 /, 'refused', 'refused by next hop'],
  ] as const)('the DATA command itself answered %s: passed on with its class, logged deferred or refused', async (_name, reply, expected, relay, outcome) => {
    const hop = await scriptedHop('220 next-hop.internal.test ESMTP', standard({ DATA: reply }));
    const gate = await startGate({}, {}, { host: '127.0.0.1', port: hop.port });
    const r = await sendMail(gate.port, { data: BASIC_MESSAGE });
    expect(r.final[0]?.text).toMatch(expected);
    expect(await messageLine(gate)).toMatchObject({ relay, outcome });
  });

  it('the next hop stalls at MAIL FROM: 451 4.4.2 after next_hop_timeout, and the next transaction gets a fresh connection', async () => {
    let stalls = 1;
    const hop = await scriptedHop('220 next-hop.internal.test ESMTP', (line) => (/^MAIL/i.test(line) && stalls-- > 0 ? 'silence' : standard()(line)));
    const gate = await startGate({}, {}, { host: '127.0.0.1', port: hop.port });
    const started = Date.now();
    const r = await sendMail(gate.port, { data: BASIC_MESSAGE, timeoutMs: 5000 });
    expect(r.mail.text).toMatch(/^451 4\.4\.2 /);
    expect(Date.now() - started).toBeLessThan(3000);
    const again = await sendMail(gate.port, { data: BASIC_MESSAGE });
    expect(again.final[0]?.code).toBe(250);
    await waitFor(() => hop.lines.filter((l) => /^MAIL/i.test(l)).length === 2);
  });
});

describe('replies out of step with the message', () => {
  it('a 250 the next hop sends before our final dot is no delivery: 451 4.4.2, logged lost, nothing held', async () => {
    // it stops reading after 354, says "queued" unprompted, then reads on and would answer the dot 451
    const script = dataScript({
      atData: (socket) => {
        socket.write('354 go ahead\r\n');
        socket.pause();
        setTimeout(() => {
          socket.write('250 2.0.0 queued as FAKE\r\n');
          socket.resume();
        }, 100);
      },
      atDot: '451 4.3.0 not queued',
    });
    const hop = await scriptedHop('220 next-hop.internal.test ESMTP', script.answer);
    const gate = await startGate({}, { nextHopTimeout: 10 }, { host: '127.0.0.1', port: hop.port });
    const r = await sendMail(gate.port, { data: bigMessage(8), timeoutMs: 20_000 });
    expect(r.final[0]?.text).toMatch(/^451 4\.4\.2 /);
    expect(await messageLine(gate, 10_000)).toMatchObject({ relay: 'lost', outcome: 'next hop lost' });
    expect(script.held).toBe(0);
  });

  it('a 552 mid-message, then the next hop closes: the client gets that 552, logged refused', async () => {
    let bodyBytes = 0;
    const script = dataScript({
      inBody: (line) => {
        bodyBytes += line.length + 2;
        if (bodyBytes < 5000) return 'silence';
        return (socket) => {
          socket.end('552 5.3.4 message too big for us\r\n');
          socket.pause();
        };
      },
    });
    const hop = await scriptedHop('220 next-hop.internal.test ESMTP', script.answer);
    const gate = await startGate({}, { nextHopTimeout: 10 }, { host: '127.0.0.1', port: hop.port });
    const r = await sendMail(gate.port, { data: bigMessage(8), timeoutMs: 20_000 });
    expect(r.final[0]?.text).toMatch(/^552 5\.3\.4 next hop: message too big/);
    expect(await messageLine(gate, 10_000)).toMatchObject({ relay: 'refused', relayCode: 552, outcome: 'refused by next hop' });
  });

  it.each([
    ['DATA answered 250', { atData: '250 2.0.0 ok whatever' }, 'lost', 'next hop lost'],
    ['the final dot answered 354', { atDot: '354 again' }, 'ambiguous', 'ambiguous'],
  ] as const)('%s: garbled, so 451 4.4.2 (its class, not "451 2.0.0" or 4.0.0)', async (_name, steps, relay, outcome) => {
    const script = dataScript(steps);
    const hop = await scriptedHop('220 next-hop.internal.test ESMTP', script.answer);
    const gate = await startGate({}, {}, { host: '127.0.0.1', port: hop.port });
    const r = await sendMail(gate.port, { data: BASIC_MESSAGE });
    expect(r.final[0]?.text).toMatch(/^451 4\.4\.2 next hop connection lost/);
    expect(await messageLine(gate)).toMatchObject({ relay, outcome });
  });

  it.each([
    ['451 4.3.0 changed my mind', true],
    ['421 4.4.2 idle too long, bye', false],
  ] as const)('a reply after the 250, on the idle connection ("%s"): warned about unless it is a goodbye', async (late, warned) => {
    // a 250 after our dot cannot be told from a real one; what the next hop says next is the operator's only clue
    const script = dataScript({
      atDot: (socket) => {
        socket.write('250 2.0.0 queued\r\n');
        setTimeout(() => socket.write(`${late}\r\n`), 100);
      },
    });
    const hop = await scriptedHop('220 next-hop.internal.test ESMTP', script.answer);
    const gate = await startGate({}, {}, { host: '127.0.0.1', port: hop.port });
    expect((await sendMail(gate.port, { data: BASIC_MESSAGE })).final[0]?.code).toBe(250);
    // the late reply has been read once the daemon has dropped that connection
    for (let i = 0; i < 100 && (await new Promise<number>((r) => hop.server.getConnections((_e, n) => r(n)))) > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await new Promise<number>((r) => hop.server.getConnections((_e, n) => r(n)))).toBe(0);
    const warnings = gate.logs.filter((l) => String(l.msg).startsWith('next hop sent a reply nobody asked for'));
    expect(warnings.map((l) => (l.nextHopReply as { code: number }).code)).toEqual(warned ? [451] : []);
  });
});
