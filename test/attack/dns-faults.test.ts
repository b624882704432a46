// DNS faults test/integration does not already cover (it covers a server that never answers, and SERVFAIL):
// truncated UDP answers (with and without a TCP fallback), garbled answers, and the DNS time one message may
// cost with several signatures at a silent server. A real DNS server (dnsmasq) behind a tiny UDP server of ours.
// Touches: loopback UDP/TCP sockets, dnsmasq (started and stopped here), a temp dir of keys.

import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, type Server } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config/defaults.js';
import { BASIC_MESSAGE, fromDomain, rsaKey, sign, type TestKey } from '../helpers/dkim-test-kit.js';
import { firstField, Harness, messageLine } from '../helpers/daemon-harness.js';
import { useDnsServers } from '../helpers/dns-server.js';
import { sendMail } from '../helpers/raw-smtp-client.js';

const harness = new Harness();
// 4096 bits: its TXT record (about 740 bytes) does not fit a 512-byte UDP answer, as with many real keys.
const bigKey: TestKey = rsaKey(4096);
const servers = useDnsServers({ 'big._domainkey.signed.test': bigKey.record });

beforeAll(() => harness.setup());
afterEach(() => harness.cleanup());
afterAll(() => harness.dispose());

type UdpMode = 'truncate' | 'garble';

/**
 * A DNS server on one loopback port: over UDP it answers every query truncated (TC=1, no answers) or garbled;
 * over TCP it forwards to dnsmasq when `tcp` is 'forward', else nothing listens there (connection refused).
 */
async function faultyDns(mode: UdpMode, tcp: 'forward' | 'none'): Promise<{ server: string; udpQueries(): number; tcpConnections(): number }> {
  for (let attempt = 0; ; attempt++) {
    const udp: UdpSocket = createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    const port = udp.address().port;
    let tcpServer: Server | null = null;
    let tcpConnections = 0;
    if (tcp === 'forward') {
      tcpServer = createServer((client) => {
        tcpConnections++;
        const upstream = connect({ host: servers.dns.host, port: servers.dns.port });
        client.pipe(upstream).pipe(client);
        client.on('error', () => upstream.destroy());
        upstream.on('error', () => client.destroy());
      });
      const bound = await new Promise<boolean>((resolve) => {
        tcpServer!.once('error', () => resolve(false));
        tcpServer!.listen(port, '127.0.0.1', () => resolve(true));
      });
      if (!bound) {
        udp.close();
        if (attempt < 5) continue;
        throw new Error('no loopback port free for both UDP and TCP');
      }
    }
    let queries = 0;
    udp.on('message', (query, from) => {
      queries++;
      const header = Buffer.from(query.subarray(0, 12));
      if (mode === 'truncate') {
        header[2] = 0x80 | 0x02 | (query[2]! & 0x01); // QR, TC, RD as asked
        header[3] = 0x80; // RA, NOERROR
        header.writeUInt16BE(0, 6); // no answers
        udp.send(Buffer.concat([header, query.subarray(12)]), from.port, from.address);
      } else {
        header[2] = 0x80 | (query[2]! & 0x01);
        header[3] = 0x80;
        header.writeUInt16BE(3, 6); // three answers promised, garbage delivered
        udp.send(Buffer.concat([header, query.subarray(12), Buffer.from([0xc0, 0xff, 0x00, 0x10, 0x00])]), from.port, from.address);
      }
    });
    harness.onCleanup(async () => {
      udp.close();
      if (tcpServer) await new Promise<void>((resolve) => tcpServer!.close(() => resolve()));
    });
    return { server: `127.0.0.1:${port}`, udpQueries: () => queries, tcpConnections: () => tcpConnections };
  }
}

function verifyingGate(server: string, policy: 'accept' | 'tempfail' = 'accept') {
  return harness.startVerifyingGate(server, { policy: { ...defaultConfig().policy, onTemperror: policy } }, { timeout: 1000, cacheSize: 0 });
}

const signedBig = () => sign(fromDomain(BASIC_MESSAGE, 'signed.test'), bigKey, { signingDomain: 'signed.test', selector: 'big' });

describe('truncated and garbled DNS answers', () => {
  it('a truncated UDP answer is retried over TCP: dkim=pass with a 4096-bit key', async () => {
    const faulty = await faultyDns('truncate', 'forward');
    const gate = await verifyingGate(faulty.server);
    const r = await sendMail(gate.port, { from: 'someone@signed.test', data: await signedBig() });
    expect(r.final[0]?.code).toBe(250);
    expect(faulty.udpQueries()).toBeGreaterThan(0);
    expect(faulty.tcpConnections()).toBeGreaterThan(0);
    expect(firstField(gate.nextHop.messages[0]!.data)).toMatch(/dkim=pass/);
  });

  it.each([
    ['truncated, and TCP refused', 'truncate', 'accept', 250],
    ['garbled', 'garble', 'accept', 250],
    ['truncated, and TCP refused, with on_temperror: tempfail', 'truncate', 'tempfail', 451],
    ['garbled, with on_temperror: tempfail', 'garble', 'tempfail', 451],
  ] as const)('%s: dkim=temperror within the lookup timeout, relayed or 451 4.7.5 as policy says', async (_name, mode, policy, code) => {
    const faulty = await faultyDns(mode, 'none');
    const gate = await verifyingGate(faulty.server, policy);
    const started = Date.now();
    const r = await sendMail(gate.port, { from: 'someone@signed.test', data: await signedBig() });
    const ms = Date.now() - started;
    expect(r.final[0]?.code).toBe(code);
    expect(ms).toBeLessThan(4000);
    if (code === 250) expect(firstField(gate.nextHop.messages[0]!.data)).toMatch(/dkim=temperror/);
    else {
      expect(r.final[0]?.text).toMatch(/^451 4\.7\.5 /);
      expect(gate.nextHop.messages).toHaveLength(0);
    }
    const line = await messageLine(gate);
    expect((line.dkim as Array<{ result: string }>)[0]!.result).toBe('temperror');
  });
});

describe('DNS time per message', () => {
  it('five signatures whose keys sit behind a silent server cost one lookup timeout, not five', async () => {
    const gate = await verifyingGate(servers.silent.server);
    let message = fromDomain(BASIC_MESSAGE, 'd0.test');
    for (let i = 0; i < 5; i++) message = await sign(message, bigKey, { signingDomain: `d${i}.test`, selector: 'sel' });
    const started = Date.now();
    const r = await sendMail(gate.port, { from: 'someone@d0.test', data: message, timeoutMs: 15_000 });
    const ms = Date.now() - started;
    expect(r.final[0]?.code).toBe(250);
    // dns.timeout is 1 s: in parallel they end together.
    expect(ms).toBeLessThan(2500);
    const line = await messageLine(gate);
    expect((line.dkim as Array<{ result: string }>).map((d) => d.result)).toEqual(Array(5).fill('temperror'));
    console.log(`5 lookups at a silent server: message answered in ${ms} ms`);
  });
});
