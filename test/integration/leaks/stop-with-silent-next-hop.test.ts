// SIGTERM's stop with idle next-hop connections whose next hop never answers QUIT: the stop waits a short grace for
// the goodbyes, then closes them. Why a test: it waited for each QUIT's reply up to next_hop_timeout (120 s by
// default) with nothing in flight, past systemd's 90 s stop timeout (SIGKILL) and Docker's 10 s.
// Touches: loopback sockets (the daemon in-process, a raw TCP next hop that accepts mail and ignores QUIT).

import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Harness } from '../../helpers/daemon-harness.js';
import { sendMail } from '../../helpers/raw-smtp-client.js';

const h = new Harness();
let hop: Server;
const open = new Set<Socket>();

/** Accepts every command and message; QUIT is never answered (a next hop that hangs, or a peer gone without a RST). */
function serveIgnoringQuit(socket: Socket): void {
  open.add(socket);
  socket.once('close', () => open.delete(socket));
  socket.on('error', () => {});
  socket.write('220 hop.test ESMTP\r\n');
  let pending = '';
  let inData = false;
  socket.on('data', (chunk: Buffer) => {
    pending += chunk.toString('latin1');
    for (;;) {
      if (inData) {
        const end = pending.indexOf('\r\n.\r\n');
        if (end === -1) return;
        pending = pending.slice(end + 5);
        inData = false;
        socket.write('250 2.0.0 queued\r\n');
        continue;
      }
      const eol = pending.indexOf('\r\n');
      if (eol === -1) return;
      const line = pending.slice(0, eol);
      pending = pending.slice(eol + 2);
      if (/^EHLO /i.test(line)) socket.write('250-hop.test\r\n250 PIPELINING\r\n');
      else if (/^DATA$/i.test(line)) {
        socket.write('354 go ahead\r\n');
        inData = true;
        pending = `\r\n${pending}`; // the end marker is CRLF.CRLF, and the message starts after DATA's CRLF
      } else if (!/^QUIT$/i.test(line)) socket.write('250 2.0.0 ok\r\n');
    }
  });
}

beforeAll(async () => {
  await h.setup();
  hop = createServer(serveIgnoringQuit);
  await new Promise<void>((resolve) => hop.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  await h.dispose();
  for (const socket of open) socket.destroy();
  await new Promise<void>((resolve) => hop.close(() => resolve()));
});

describe('stop with a next hop that never answers QUIT', () => {
  it('ends the idle next-hop connections after a short grace, not after next_hop_timeout', async () => {
    const port = (hop.address() as AddressInfo).port;
    const base = h.config();
    const gate = await h.startGate({ ...base, limits: { ...base.limits, nextHopTimeout: 60, drainTimeout: 1 } }, {}, { host: '127.0.0.1', port });
    const sent = await Promise.all([1, 2, 3].map(() => sendMail(gate.port, { data: Buffer.from('From: <alice@example.com>\r\nSubject: s\r\n\r\nbody\r\n') })));
    expect(sent.map((s) => s.final[0]?.code)).toEqual([250, 250, 250]);
    expect(open.size).toBeGreaterThan(0); // idle in the pool

    const stopped = gate.daemon.stop().then(() => 'stopped' as const);
    // generous for a loaded machine: the grace is 2 s; next_hop_timeout (what the stop waited for) is 60 s
    const late = new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), 15_000).unref());
    expect(await Promise.race([stopped, late])).toBe('stopped');
    // the connections are closed, not left to the next hop
    const deadline = Date.now() + 5000;
    while (open.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(open.size).toBe(0);
  }, 30_000);
});
