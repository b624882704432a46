// Stopping while a transaction is in flight but not yet in DATA: the drain must let it finish (DATA, the message,
// 250), not answer its next command 421 as smtp-server does once it is closing. New transactions get 421 4.3.2.
// Touches: loopback sockets, a temp dir of keys.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config/defaults.js';
import { BASIC_MESSAGE } from '../helpers/dkim-test-kit.js';
import { Harness, waitFor } from '../helpers/daemon-harness.js';
import { startNextHopServer } from '../helpers/next-hop-server.js';
import { dotStuff, RawClient, sendMail } from '../helpers/raw-smtp-client.js';

const harness = new Harness();
beforeAll(() => harness.setup());
afterEach(() => harness.cleanup());
afterAll(() => harness.dispose());

describe('stopping with a transaction before DATA', () => {
  it('lets the client send RCPT, DATA and the message (250, relayed), and refuses a new MAIL with 421 4.3.2', async () => {
    const base = defaultConfig();
    const gate = await harness.startGate(harness.config({ limits: { ...base.limits, drainTimeout: 10 } }));
    const inFlight = await RawClient.open(gate.port);
    const idle = await RawClient.open(gate.port);
    await idle.command('EHLO idle.test');
    await inFlight.command('EHLO client.test');
    expect((await inFlight.command('MAIL FROM:<alice@example.com>')).code).toBe(250);
    const stopped = gate.daemon.stop();
    expect((await inFlight.command('RCPT TO:<bob@example.org>')).code).toBe(250);
    expect((await inFlight.command('DATA')).code).toBe(354);
    inFlight.write(dotStuff(BASIC_MESSAGE));
    expect((await inFlight.command('.')).code).toBe(250);
    await stopped;
    expect(gate.nextHop.messages).toHaveLength(1);
    // The session without a transaction was told to come back.
    expect((await idle.read(2000)).text).toMatch(/^421 4\.3\.2 /);
    await waitFor(() => inFlight.isClosed);
  });

  it('answers a new MAIL FROM during the drain with 421 4.3.2', async () => {
    const base = defaultConfig();
    const gate = await harness.startGate(harness.config({ limits: { ...base.limits, drainTimeout: 10 } }));
    const busy = await RawClient.open(gate.port);
    const other = await RawClient.open(gate.port);
    await busy.command('EHLO client.test');
    await other.command('EHLO other.test');
    expect((await busy.command('MAIL FROM:<alice@example.com>')).code).toBe(250);
    const stopped = gate.daemon.stop();
    expect((await other.command('MAIL FROM:<carol@example.com>')).text).toMatch(/^421 4\.3\.2 /);
    busy.write('RSET\r\n');
    await busy.read(2000);
    await stopped;
  });
});

describe('a reload that changes next_hop with a transaction in flight', () => {
  it('the connection goes back to its own pool: a later drain timeout ends only the connection really in use', async () => {
    const base = defaultConfig();
    const gate = await harness.startGate(harness.config({ limits: { ...base.limits, drainTimeout: 1 } }), { onData: { kind: 'delay', ms: 800 } });
    const hopB = await startNextHopServer({ onData: { kind: 'stall' } });
    harness.onCleanup(() => hopB.close());
    const old = sendMail(gate.port, { data: BASIC_MESSAGE });
    await waitFor(() => gate.nextHop.received.length === 1);
    expect(await gate.daemon.reload({ ...gate.config, nextHop: { ...gate.config.nextHop, port: hopB.port } })).toMatchObject({ kind: 'ok' });
    expect((await old).final[0]?.code).toBe(250);
    // one transaction on the new next hop, which never answers its end of data
    const stuck = sendMail(gate.port, { data: BASIC_MESSAGE, timeoutMs: 10_000 });
    await waitFor(() => hopB.received.length === 1);
    await gate.daemon.stop();
    expect((await stuck).final[0]?.text).toMatch(/^451 4\.4\.2 /);
    const ended = gate.logs.find((l) => l.msg === 'drain_timeout passed: ending the transactions still in flight');
    expect(ended).toMatchObject({ inFlight: 1, nextHopConnectionsEnded: 1 });
  });
});
