// Which configured sockets (listeners and the metrics listener) cannot all be bound at once: the same port
// on the same address, or on a wildcard address that covers the other. Pure; input: a validated Config.

import { isIPv4 } from 'node:net';
import type { Config } from './config.js';
import { formatHostPort, formatIpBytes, parseIpBytes } from './address-syntax.js';

export interface BindConflict {
  /** The later socket's key path, e.g. "listen[1].port" or "metrics.port". */
  keyPath: string;
  message: string;
}

interface Socket {
  keyPath: string;
  name: string;
  host: string;
  port: number;
}

/**
 * Every socket that an earlier one would keep from binding (EADDRINUSE at start). Port 0 (any free port)
 * never conflicts. Linux refuses 0.0.0.0:P next to 127.0.0.1:P, and Node binds "::" dual-stack, so "::"
 * covers every address of the port, IPv4 included.
 */
export function bindConflicts(config: Pick<Config, 'listen' | 'metrics'>): BindConflict[] {
  const sockets: Socket[] = config.listen.map((l, index) => ({ keyPath: `listen[${index}].port`, name: `listen[${index}]`, host: l.host, port: l.port }));
  if (config.metrics) sockets.push({ keyPath: 'metrics.port', name: 'metrics', host: config.metrics.host, port: config.metrics.port });
  const conflicts: BindConflict[] = [];
  sockets.forEach((socket, index) => {
    if (socket.port === 0) return;
    const earlier = sockets.slice(0, index).find((other) => other.port === socket.port && overlaps(other.host, socket.host));
    if (earlier === undefined) return;
    const where = formatHostPort(socket.host, socket.port);
    const same = canonical(earlier.host) === canonical(socket.host);
    conflicts.push({
      keyPath: socket.keyPath,
      message: same
        ? `${earlier.name} already listens on ${where}`
        : `${earlier.name} listens on ${formatHostPort(earlier.host, earlier.port)}, which covers ${where}: only one of them can be bound; give each its own port`,
    });
  });
  return conflicts;
}

/** The address in one spelling (::0 and :: alike); a host name as written, lower-case. */
function canonical(host: string): string {
  const bytes = parseIpBytes(host);
  return bytes === null ? host.toLowerCase().replace(/\.$/, '') : formatIpBytes(bytes);
}

function overlaps(a: string, b: string): boolean {
  const [ca, cb] = [canonical(a), canonical(b)];
  if (ca === cb) return true;
  // "::" (dual-stack) covers everything; a host name may resolve to anything, so only "::" is sure to meet it
  if (ca === '::' || cb === '::') return true;
  // 0.0.0.0 covers every IPv4 address
  return (ca === '0.0.0.0' && isIPv4(cb)) || (cb === '0.0.0.0' && isIPv4(ca));
}

/**
 * The listener that next_hop points back at, as a problem: dkimgate would relay each message to itself,
 * every hop opening another connection until max_clients, and the client would get 451. A wildcard
 * listener counts only for a loopback next hop (a remote host on the same port is another machine).
 */
export function nextHopLoop(config: Pick<Config, 'listen' | 'nextHop'>): BindConflict | null {
  const hop = canonical(config.nextHop.host);
  const index = config.listen.findIndex((l) => {
    if (l.port !== config.nextHop.port) return false;
    const own = canonical(l.host);
    if (own === hop) return true;
    const loopbackV4 = isIPv4(hop) && (hop.startsWith('127.') || hop === '0.0.0.0');
    const loopbackV6 = hop === '::1' || hop === '::';
    return (own === '0.0.0.0' && loopbackV4) || (own === '::' && (loopbackV4 || loopbackV6));
  });
  if (index === -1) return null;
  const where = formatHostPort(config.nextHop.host, config.nextHop.port);
  return {
    keyPath: 'next_hop.port',
    message: `next_hop ${where} is where listen[${index}] listens: every message would be relayed back to dkimgate itself; point next_hop at the MTA's re-injection port (e.g. Postfix's 127.0.0.1:10026)`,
  };
}
