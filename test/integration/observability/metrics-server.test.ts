import { request } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createMetrics, type Metrics } from '../../../src/observability/metrics.js';
import { startMetricsServer, type Health, type MetricsServer } from '../../../src/observability/metrics-server.js';

type Reply = { status: number; headers: Record<string, string | string[] | undefined>; body: string };

function httpRequest(port: number, method: string, path: string, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent: false, timeout: 5_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

/** Writes raw bytes and resolves with everything the server sent until it closed the socket, and how long that took. */
function rawExchange(port: number, bytes: string): Promise<{ text: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect({ host: '127.0.0.1', port }, () => socket.write(bytes));
    const chunks: Buffer[] = [];
    socket.setTimeout(10_000, () => socket.destroy(new Error('server never closed the socket')));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve({ text: Buffer.concat(chunks).toString(), ms: performance.now() - started }));
  });
}

const servers: MetricsServer[] = [];

async function start(health: () => Health = () => ({ ok: true }), metrics: Metrics = createMetrics({ defaultMetrics: false })) {
  const server = await startMetricsServer({
    host: '127.0.0.1',
    port: 0,
    metrics,
    health,
    limits: { headersTimeoutMs: 300, checkIntervalMs: 100 },
  });
  servers.push(server);
  return { server, metrics, port: server.address.port };
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe('startMetricsServer', () => {
  it('listens on a free loopback port and reports its address', async () => {
    const { server } = await start();
    expect(server.address.host).toBe('127.0.0.1');
    expect(server.address.port).toBeGreaterThan(0);
  });

  it('serves the recorded metrics as Prometheus text at GET /metrics', async () => {
    const metrics = createMetrics({ signingDomains: ['example.com'] });
    metrics.recordSign('example.com', 's2026');
    metrics.recordVerifyResult('fail', 'body_hash_mismatch');
    metrics.recordNextHopError('unreachable');
    metrics.setDnsCacheStats(() => ({ hits: 4, misses: 1 }));
    metrics.connectionOpened();
    const { port } = await start(undefined, metrics);
    const reply = await httpRequest(port, 'GET', '/metrics');
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(reply.headers.connection).toBe('close');
    for (const line of [
      'dkimgate_sign_total{domain="example.com",selector="s2026"} 1',
      'dkimgate_verify_results_total{result="fail",reason="body_hash_mismatch"} 1',
      'dkimgate_next_hop_errors_total{kind="unreachable"} 1',
      'dkimgate_dns_cache_total{result="hit"} 4',
      'dkimgate_dns_cache_total{result="miss"} 1',
      'dkimgate_connections 1',
    ]) {
      expect(reply.body).toContain(line);
    }
    for (const name of [
      'dkimgate_messages_total',
      'dkimgate_policy_rejections_total',
      'dkimgate_sign_seconds',
      'dkimgate_verify_seconds',
      'dkimgate_relay_seconds',
      'dkimgate_transactions_in_flight',
      'process_cpu_user_seconds_total',
    ]) {
      expect(reply.body).toContain(`# TYPE ${name} `);
    }
  });

  it('ignores a query string on /metrics', async () => {
    const { port } = await start();
    expect((await httpRequest(port, 'GET', '/metrics?name[]=x')).status).toBe(200);
  });

  it('answers /healthz with 200 and the detail when healthy', async () => {
    const { port } = await start(() => ({ ok: true, detail: { listeners: 2, status: 'overridden?' } }));
    const reply = await httpRequest(port, 'GET', '/healthz');
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('application/json');
    expect(JSON.parse(reply.body)).toEqual({ status: 'ok', listeners: 2 });
  });

  it('answers /healthz with 503 when unhealthy, and follows the health function as it changes', async () => {
    let ok = false;
    const { port } = await start(() => ({ ok, detail: { nextHop: ok ? 'up' : 'down' } }));
    const down = await httpRequest(port, 'GET', '/healthz');
    expect(down.status).toBe(503);
    expect(JSON.parse(down.body)).toEqual({ status: 'unavailable', nextHop: 'down' });
    ok = true;
    expect((await httpRequest(port, 'GET', '/healthz')).status).toBe(200);
  });

  it('answers /healthz with 503 when the health function throws', async () => {
    const { port } = await start(() => {
      throw new Error('boom');
    });
    const reply = await httpRequest(port, 'GET', '/healthz');
    expect(reply.status).toBe(503);
    expect(JSON.parse(reply.body)).toMatchObject({ status: 'unavailable' });
  });

  it.each(['/', '/metrics/', '/healthz/extra', '/favicon.ico', '/METRICS'])('answers 404 for %s', async (path) => {
    const { port } = await start();
    expect((await httpRequest(port, 'GET', path)).status).toBe(404);
  });

  it.each(['POST', 'PUT', 'DELETE', 'OPTIONS'])('answers 405 with Allow for %s /metrics', async (method) => {
    const { port } = await start();
    const reply = await httpRequest(port, method, '/metrics', method === 'POST' || method === 'PUT' ? 'x'.repeat(100_000) : undefined);
    expect(reply.status).toBe(405);
    expect(reply.headers.allow).toBe('GET, HEAD');
  });

  it('answers HEAD /healthz with the status and no body', async () => {
    const { port } = await start(() => ({ ok: false }));
    const reply = await httpRequest(port, 'HEAD', '/healthz');
    expect(reply.status).toBe(503);
    expect(reply.body).toBe('');
  });

  it('serves one request per connection', async () => {
    const { port } = await start();
    const { text } = await rawExchange(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(text.match(/^HTTP\/1\.1 /gm)).toHaveLength(1);
  });

  it('closes a connection whose request head never completes', async () => {
    const { port } = await start();
    const { text, ms } = await rawExchange(port, 'GET /metrics HTTP/1.1\r\nHost: x\r\n');
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(ms).toBeLessThan(5_000);
  });

  it('refuses oversized request headers with 431', async () => {
    const { port } = await start();
    const { text } = await rawExchange(port, `GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(16 * 1024)}\r\n\r\n`);
    expect(text).toMatch(/^HTTP\/1\.1 431 /);
  });

  it('rejects when the port is taken', async () => {
    const { port } = await start();
    await expect(startMetricsServer({ host: '127.0.0.1', port, metrics: createMetrics({ defaultMetrics: false }), health: () => ({ ok: true }) })).rejects.toMatchObject({
      code: 'EADDRINUSE',
    });
  });

  it('stops listening after close, and a second close is harmless', async () => {
    const { server, port } = await start();
    await server.close();
    await server.close();
    await expect(httpRequest(port, 'GET', '/healthz')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});
