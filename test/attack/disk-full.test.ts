// Fault: the spool disk fills up while messages are being received. A 64 KB tmpfs (mounted here; needs root) is the
// spool_dir: the client gets 452 4.3.1 and keeps the message, the next hop sees nothing (not even DATA), no spool
// file is left behind, the log names the cause, and the daemon keeps serving. Unmounted afterwards.
// Touches: mounts and unmounts one tmpfs under the system temp dir; loopback sockets; a temp dir of keys.

import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config/defaults.js';
import { BASIC_MESSAGE } from '../helpers/dkim-test-kit.js';
import { Harness, waitFor } from '../helpers/daemon-harness.js';
import { sendMail } from '../helpers/raw-smtp-client.js';

const isRoot = process.getuid?.() === 0;
const harness = new Harness();
let spool = '';
let mounted = false;

beforeAll(async () => {
  await harness.setup();
  if (!isRoot) return;
  spool = await mkdtemp(join(tmpdir(), 'dkimgate-full-spool-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', spool]);
  mounted = true;
});
afterEach(() => harness.cleanup());
afterAll(async () => {
  if (mounted) execFileSync('umount', [spool]);
  if (spool) await rm(spool, { recursive: true, force: true });
  await harness.dispose();
});

/** The spool's files once the daemon had a moment to remove them (it does so just after its reply). */
async function spoolFilesAfterwards(): Promise<string[]> {
  for (let i = 0; i < 50; i++) {
    const files = await readdir(spool);
    if (files.length === 0) return files;
    await new Promise((r) => setTimeout(r, 20));
  }
  return readdir(spool);
}

/** BASIC_MESSAGE with `kb` KB of body lines added. */
function withBody(kb: number): Buffer {
  return Buffer.concat([BASIC_MESSAGE, Buffer.from(`${'x'.repeat(1022)}\r\n`.repeat(kb), 'latin1')]);
}

describe.skipIf(!isRoot)('disk full while spooling (tmpfs of 64 KB)', () => {
  it('answers 452 4.3.1 for a message that does not fit, relays nothing, leaves no file, and keeps serving', async () => {
    const base = defaultConfig();
    const gate = await harness.startGate(harness.config({ limits: { ...base.limits, spoolDir: spool, spillThreshold: 4096 } }));

    // Fits: spooled to the tmpfs, relayed, its file removed.
    expect((await sendMail(gate.port, { data: withBody(32) })).final[0]?.code).toBe(250);

    // Does not fit (200 KB into 64 KB).
    const r = await sendMail(gate.port, { data: withBody(200) });
    expect(r.final[0]?.text).toMatch(/^452 4\.3\.1 /);
    expect(gate.nextHop.received).toHaveLength(1);
    expect(gate.nextHop.commands.filter((c) => /^DATA/i.test(c.line))).toHaveLength(1);
    expect(await spoolFilesAfterwards()).toEqual([]);
    const logged = await waitFor(() => gate.logs.find((l) => l.msg === 'spooling the message failed'));
    expect(logged).toMatchObject({ reason: 'disk_full', spoolDir: spool });
    expect(String(logged.detail)).toMatch(/ENOSPC|short write/);
    const line = await waitFor(() => gate.messageLines()[1]);
    expect(line).toMatchObject({ outcome: 'deferred: spool disk_full', relay: 'not_relayed' });

    // The disk stays full (another program filled it): small messages, kept in memory, still go through.
    await writeFile(join(spool, 'filler'), Buffer.alloc(64 * 1024)).catch(() => undefined);
    expect((await sendMail(gate.port, { data: BASIC_MESSAGE })).final[0]?.code).toBe(250);
    expect((await sendMail(gate.port, { data: withBody(16) })).final[0]?.text).toMatch(/^452 4\.3\.1 /);
    await rm(join(spool, 'filler'));

    // Room again: the large one that failed before goes through when the client retries.
    expect((await sendMail(gate.port, { data: withBody(48) })).final[0]?.code).toBe(250);
    expect(gate.nextHop.messages).toHaveLength(3);
    expect(await spoolFilesAfterwards()).toEqual([]);
  });

  it('five clients at once into a full disk: each gets 452 4.3.1 or 250, and the next hop holds exactly the 250s', async () => {
    const base = defaultConfig();
    const gate = await harness.startGate(harness.config({ limits: { ...base.limits, spoolDir: spool, spillThreshold: 4096 } }));
    // 5 × 24 KB = 120 KB into 64 KB: some fit, some do not.
    const results = await Promise.all(Array.from({ length: 5 }, () => sendMail(gate.port, { data: withBody(24) })));
    const codes = results.map((r) => r.final[0]?.code);
    expect(codes.every((c) => c === 250 || c === 452)).toBe(true);
    expect(codes.filter((c) => c === 452).length).toBeGreaterThan(0);
    expect(gate.nextHop.messages).toHaveLength(codes.filter((c) => c === 250).length);
    expect(await spoolFilesAfterwards()).toEqual([]);
    console.log(`5 concurrent 24 KB messages into a 64 KB spool: ${codes.join(', ')}`);
  });
});
