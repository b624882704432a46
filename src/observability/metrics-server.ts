// The metrics listener (node:http): GET /metrics (Prometheus text) and GET /healthz (liveness JSON).
// Input: HTTP requests from the network — only the method and path are read, never a body; every socket is bounded in time.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Metrics } from './metrics.js';

export type Health = { ok: boolean; detail?: Record<string, unknown> };

export type MetricsServerOptions = {
  host: string;
  port: number;
  metrics: Metrics;
  health: () => Health;
  /** Overrides of METRICS_SERVER_LIMITS (tests use short timeouts). */
  limits?: Partial<MetricsServerLimits>;
};

export type MetricsServer = {
  address: { host: string; port: number };
  /** Stops listening and closes every open connection; resolves when the server is closed. Safe to call twice. */
  close(): Promise<void>;
};

export type MetricsServerLimits = {
  /** Whole request head must arrive within this (checked every checkIntervalMs). */
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  /** A socket silent this long is destroyed. */
  socketIdleMs: number;
  checkIntervalMs: number;
  /** Over it: 431. */
  maxHeaderBytes: number;
  /**
   * Connections still sending their request head; a new one past it ends the oldest of them, so clients that
   * connect and dawdle (slowloris) cannot keep a scrape or a /healthz probe out.
   */
  maxConnections: number;
};

/** Bounds of the listener: a scrape is one short request on its own connection. */
export const METRICS_SERVER_LIMITS: Readonly<MetricsServerLimits> = {
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  socketIdleMs: 10_000,
  checkIntervalMs: 1_000,
  maxHeaderBytes: 8 * 1024,
  maxConnections: 32,
};

const ALLOW = 'GET, HEAD';

/** Listens on host:port (port 0 picks a free one); rejects when the address cannot be bound. */
export function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const limits: MetricsServerLimits = { ...METRICS_SERVER_LIMITS, ...opts.limits };
  const server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: limits.checkIntervalMs,
      maxHeaderSize: limits.maxHeaderBytes,
    },
    (req, res) => {
      handle(req, res, opts).catch(() => {
        if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
        else res.destroy();
      });
    },
  );
  // Sockets whose request head is not complete, oldest first: at the limit, the oldest goes (a scraper sends its
  // request as soon as it connects, so only a client that dawdles is ever the oldest).
  const waiting = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    if (waiting.size >= limits.maxConnections) {
      const oldest = waiting.values().next().value as Socket;
      waiting.delete(oldest);
      oldest.destroy();
    }
    waiting.add(socket);
    socket.once('close', () => waiting.delete(socket));
  });
  server.on('request', (req: IncomingMessage) => waiting.delete(req.socket));
  // Sockets past their request (a reply being read) end within socketIdleMs; this bounds them all the same.
  server.maxConnections = limits.maxConnections * 4;
  server.maxRequestsPerSocket = 1;
  server.keepAliveTimeout = 1;
  server.setTimeout(limits.socketIdleMs, (socket) => socket.destroy());

  return new Promise<MetricsServer>((resolve, reject) => {
    let listening = false;
    server.on('error', (err) => {
      if (!listening) reject(err);
    });
    server.listen({ host: opts.host, port: opts.port }, () => {
      listening = true;
      const info = server.address() as AddressInfo;
      let closing: Promise<void> | null = null;
      resolve({
        address: { host: info.address, port: info.port },
        close() {
          closing ??= new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          });
          return closing;
        },
      });
    });
  });
}

async function handle(req: IncomingMessage, res: ServerResponse, opts: MetricsServerOptions): Promise<void> {
  const path = (req.url ?? '').split('?', 1)[0];
  if (path !== '/metrics' && path !== '/healthz') {
    send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', ALLOW);
    send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    return;
  }
  if (path === '/metrics') {
    const { contentType, body } = await opts.metrics.render();
    send(res, 200, contentType, body);
    return;
  }
  let health: Health;
  try {
    health = opts.health();
  } catch {
    health = { ok: false, detail: { error: 'health check failed' } };
  }
  const status = health.ok ? 'ok' : 'unavailable';
  send(res, health.ok ? 200 : 503, 'application/json', `${JSON.stringify({ ...health.detail, status })}\n`);
}

function send(res: ServerResponse, code: number, contentType: string, body: string): void {
  res.writeHead(code, {
    'Content-Type': contentType,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    Connection: 'close',
  });
  res.end(body);
}
