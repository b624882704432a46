// `dkimgate serve` as a real process: SIGHUP changes the verify policy for the next message, and a policy that
// cannot work (require with verification off) is refused at reload while the running one keeps applying.
// Touches: a serve process it spawns (ended by PID), a temp dir, loopback sockets.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BASIC_MESSAGE } from '../../helpers/dkim-test-kit.js';
import { waitFor } from '../../helpers/daemon-harness.js';
import { startNextHopServer, type RunningNextHop } from '../../helpers/next-hop-server.js';
import { sendMail } from '../../helpers/raw-smtp-client.js';
import { startServeProcess, stopAllServeProcesses, type StartedServe } from '../../helpers/serve-process.js';

// A reload in another process reads the config again: give it room on a loaded machine.
const RELOAD_WAIT_MS = 15_000;

let dir = '';
let hop: RunningNextHop;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dkimgate-policy-reload-'));
  hop = await startNextHopServer();
});
afterEach(() => stopAllServeProcesses());
afterAll(async () => {
  await hop.close();
  await rm(dir, { recursive: true, force: true });
});

function configYaml(policy: string, verify = 'verify: { enabled: true }'): string {
  return [
    'authserv_id: gate.test.example',
    'listen:',
    '  - { host: 127.0.0.1, port: 0, protocol: smtp }',
    `next_hop: { host: 127.0.0.1, port: ${hop.port} }`,
    'relay_hosts: []',
    // every lookup goes to a port nothing answers on: this test sends unsigned mail only
    'dns: { servers: ["127.0.0.1:9"], timeout: 500 }',
    verify,
    policy,
    '',
  ].join('\n');
}

const FROM_BANK = Buffer.from(BASIC_MESSAGE.toString('latin1').replace(/^From: .*$/m, 'From: a@bank.test'), 'latin1');

async function reloaded(served: StartedServe, count: number): Promise<void> {
  served.child.kill('SIGHUP');
  await waitFor(() => served.lines.filter((l) => typeof l.msg === 'string' && /^(configuration reloaded|reload refused)/.test(l.msg)).length >= count, RELOAD_WAIT_MS);
}

describe('SIGHUP and the verify policy', () => {
  it('applies a new require list, then refuses one that verification off would void, keeping the last good one', async () => {
    const path = join(dir, 'dkimgate.yaml');
    await writeFile(path, configYaml('policy: { require: [] }'));
    const served = await startServeProcess(path);
    expect((await sendMail(served.port, { from: 'x@bank.test', data: FROM_BANK })).final[0]?.code).toBe(250);

    await writeFile(path, configYaml('policy: { require: [{ domain: bank.test }] }'));
    await reloaded(served, 1);
    expect(served.lines.some((l) => l.msg === 'configuration reloaded')).toBe(true);
    expect((await sendMail(served.port, { from: 'x@bank.test', data: FROM_BANK })).final[0]?.text).toMatch(/^550 5\.7\.20 /);

    await writeFile(path, configYaml('policy: { require: [{ domain: bank.test }] }', 'verify: { enabled: false }'));
    await reloaded(served, 2);
    const refused = served.lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('reload refused'));
    expect(refused?.problems).toEqual([expect.stringContaining('policy.require: has no effect while verify.enabled is false')]);
    expect((await sendMail(served.port, { from: 'x@bank.test', data: FROM_BANK })).final[0]?.text).toMatch(/^550 5\.7\.20 /);
  });
});
