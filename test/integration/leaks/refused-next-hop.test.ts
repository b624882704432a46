// A next hop that refuses our session (its greeting, EHLO or AUTH answered 4xx/5xx) gets QUIT and is closed; every
// client MAIL FROM then opens and closes one such connection. Each closed connection must be freed at once.
// Why a test: a timer that ends a peer that never closes its side was left running after the peer did close, holding
// the closed socket for next_hop_timeout (120 s by default): ~3.5 KB a refused MAIL FROM, 35 MB at 100 a second.
// Touches: loopback sockets (the daemon in-process, a raw TCP next hop that refuses), V8's gc (test/helpers/retained-sockets).

import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Harness, waitFor } from '../../helpers/daemon-harness.js';
import { RawClient } from '../../helpers/raw-smtp-client.js';
import { watchClientSockets } from '../../helpers/retained-sockets.js';

const ATTEMPTS = 300;
const h = new Harness();
let refusing: Server;
let open = 0;

beforeAll(async () => {
  await h.setup();
  // greets with 554, answers QUIT with 221 and closes: a next hop refusing us politely
  refusing = createServer((socket: Socket) => {
    open += 1;
    socket.once('close', () => (open -= 1));
    socket.on('error', () => {});
    socket.write('554 5.3.2 not accepting mail now\r\n');
    socket.on('data', (data) => {
      if (/^QUIT/m.test(data.toString('latin1'))) socket.end('221 2.0.0 bye\r\n');
    });
  });
  await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  await h.dispose();
  await new Promise<void>((resolve) => refusing.close(() => resolve()));
});

describe('a next hop that refuses the session', () => {
  it('leaves no closed connection behind, however many MAIL FROMs it refuses', async () => {
    const port = (refusing.address() as AddressInfo).port;
    const gate = await h.startGate(h.config(), {}, { host: '127.0.0.1', port });
    const sockets = watchClientSockets(port);
    try {
      const client = await RawClient.open(gate.port);
      await client.command('EHLO client.test');
      for (let i = 0; i < ATTEMPTS; i++) {
        const reply = await client.command('MAIL FROM:<alice@example.com>');
        expect(reply.code).toBe(451); // the next hop is not the client's to blame: try again later
      }
      client.close();
      // settled: every connection the next hop accepted is closed on both sides
      await waitFor(() => open === 0, 10_000);
      expect(sockets.opened()).toBe(ATTEMPTS);
      // with the timer left running every one of them was still held here (next_hop_timeout is 120 s)
      expect(sockets.retained()).toBeLessThan(ATTEMPTS / 10);
    } finally {
      sockets.stop();
    }
  });
});
