// /metrics and /healthz of the running daemon: valid exposition format read by a real parser, counters that
// survive a reload, what /healthz says while draining and with the next hop down, and a metrics listener that
// hostile HTTP clients neither close to scrapers nor use to disturb mail.
// Touches: loopback sockets (the daemon, a next hop, the metrics listener), a temp dir of keys, /usr/bin/python3.

import { connect, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/config.js';
import { freeClosedPort, Harness, waitFor, type Gate } from '../../helpers/daemon-harness.js';
import type { NextHopServerOptions } from '../../helpers/next-hop-server.js';
import { scrape, valueOf } from '../../helpers/prometheus-text.js';
import { sendMail } from '../../helpers/raw-smtp-client.js';

const harness = new Harness();
beforeAll(() => harness.setup());
afterEach(() => harness.cleanup());
afterAll(() => harness.dispose());

const MESSAGE = Buffer.from('From: <alice@example.com>\r\nTo: <bob@example.org>\r\nSubject: m\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nbody\r\n');

function startGate(over: Partial<Config> = {}, hop: NextHopServerOptions = {}, nextHop?: { host: string; port: number }): Promise<Gate> {
  return harness.startGate(harness.config({ metrics: { host: '127.0.0.1', port: 0 }, ...over }), hop, nextHop);
}

async function healthz(gate: Gate): Promise<{ status: number; body: Record<string, unknown> }> {
  const { host, port } = gate.daemon.metricsAddress!;
  const res = await fetch(`http://${host}:${port}/healthz`, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('/metrics exposition', () => {
  it('is valid Prometheus text 0.0.4 with HELP and TYPE for every family README names', async () => {
    const gate = await startGate();
    expect((await sendMail(gate.port, { data: MESSAGE })).final[0]?.code).toBe(250);
    await waitFor(() => gate.messageLines().length === 1);
    const { status, contentType, families } = await scrape(gate.daemon.metricsAddress!);
    expect(status).toBe(200);
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4(;|$)/);
    const byName = new Map(families.map((f) => [f.name, f]));
    const readme: Array<[string, string]> = [
      ['dkimgate_messages', 'counter'],
      ['dkimgate_sign', 'counter'],
      ['dkimgate_verify_results', 'counter'],
      ['dkimgate_policy_rejections', 'counter'],
      ['dkimgate_next_hop_errors', 'counter'],
      ['dkimgate_dns_cache', 'counter'],
      ['dkimgate_sign_seconds', 'histogram'],
      ['dkimgate_verify_seconds', 'histogram'],
      ['dkimgate_relay_seconds', 'histogram'],
      ['dkimgate_connections', 'gauge'],
      ['dkimgate_transactions_in_flight', 'gauge'],
    ];
    for (const [name, type] of readme) {
      expect(byName.get(name), name).toMatchObject({ type });
      expect(byName.get(name)!.help, name).not.toBe('');
    }
    // the parser types a family without a TYPE line "unknown", and one without HELP has no documentation
    expect(families.filter((f) => f.type === 'unknown' || f.help === '').map((f) => f.name)).toEqual([]);
    expect(families.some((f) => f.name.startsWith('process_'))).toBe(true);
    expect(families.some((f) => f.name.startsWith('nodejs_'))).toBe(true);
  });

  it('keeps every counter across a reload (SIGHUP): they never go back to zero', async () => {
    const gate = await startGate();
    for (let i = 0; i < 3; i++) expect((await sendMail(gate.port, { data: MESSAGE })).final[0]?.code).toBe(250);
    await waitFor(() => gate.messageLines().length === 3);
    const before = (await scrape(gate.daemon.metricsAddress!)).samples;
    expect(valueOf(before, 'dkimgate_messages_total', { outcome: 'delivered', domain: 'example.com' })).toBe(3);
    expect(await gate.daemon.reload({ ...gate.config })).toMatchObject({ kind: 'ok' });
    expect((await sendMail(gate.port, { data: MESSAGE })).final[0]?.code).toBe(250);
    await waitFor(() => gate.messageLines().length === 4);
    const after = (await scrape(gate.daemon.metricsAddress!)).samples;
    expect(valueOf(after, 'dkimgate_messages_total', { outcome: 'delivered', domain: 'example.com' })).toBe(4);
    expect(valueOf(after, 'dkimgate_sign_total', { domain: 'example.com', selector: 'rsa1' })).toBe(4);
    expect(valueOf(after, 'dkimgate_sign_seconds_count')).toBe(4);
    expect(valueOf(after, 'dkimgate_relay_seconds_count')).toBe(4);
    for (const s of before.filter((x) => x.name.endsWith('_total') && x.name.startsWith('dkimgate_'))) {
      expect(valueOf(after, s.name, s.labels), `${s.name} ${JSON.stringify(s.labels)}`).toBeGreaterThanOrEqual(s.value);
    }
  });
});

describe('/healthz', () => {
  it('is 200 with the next hop down (liveness: the daemon answers 451 4.4.1 and recovers by itself)', async () => {
    const gate = await startGate({}, {}, { host: '127.0.0.1', port: await freeClosedPort() });
    expect((await sendMail(gate.port, { data: MESSAGE })).mail.text).toMatch(/^451 4\.4\.1 /);
    expect(await healthz(gate)).toMatchObject({ status: 200, body: { status: 'ok', draining: false } });
    const { samples } = await scrape(gate.daemon.metricsAddress!);
    expect(valueOf(samples, 'dkimgate_next_hop_errors_total', { kind: 'unreachable' })).toBe(1);
  });

  it('is 503 while a SIGTERM drain finishes the transactions in flight, whose message line is still written', async () => {
    const gate = await startGate({}, { onData: { kind: 'delay', ms: 1500 } });
    const sending = sendMail(gate.port, { data: MESSAGE });
    await waitFor(() => gate.nextHop.received.length === 1, 5000);
    const stopping = gate.daemon.stop();
    try {
      expect(await healthz(gate)).toMatchObject({ status: 503, body: { status: 'unavailable', draining: true, inFlight: 1 } });
    } finally {
      expect((await sending).final[0]?.code).toBe(250);
      await stopping;
    }
    expect(gate.messageLines()).toMatchObject([{ outcome: 'delivered', relay: 'delivered' }]);
  });
});

describe('the metrics listener under hostile clients', () => {
  it('still answers /healthz and /metrics, and mail still flows, while many clients hold half-sent requests', async () => {
    const gate = await startGate();
    const { host, port } = gate.daemon.metricsAddress!;
    const loris: Socket[] = [];
    try {
      for (let i = 0; i < 100; i++) {
        const socket = connect({ host, port });
        socket.on('error', () => {});
        socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
        loris.push(socket);
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await healthz(gate)).toMatchObject({ status: 200 });
      expect((await scrape(gate.daemon.metricsAddress!)).status).toBe(200);
      expect((await sendMail(gate.port, { data: MESSAGE })).final[0]?.code).toBe(250);
    } finally {
      for (const s of loris) s.destroy();
    }
  });

  it('refuses other methods and a large body without reading it, and mail goes on', async () => {
    const gate = await startGate();
    const { host, port } = gate.daemon.metricsAddress!;
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const res = await fetch(`http://${host}:${port}/metrics`, { method, body: 'x'.repeat(5_000_000) });
      expect(res.status).toBe(405);
    }
    expect((await sendMail(gate.port, { data: MESSAGE })).final[0]?.code).toBe(250);
  });
});
