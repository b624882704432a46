// `npm run soak` (not part of npm test): the ledger at soak size against `dkimgate serve` as a real process — e.g.
// 20,000 messages, 20 sessions, random faults — proving zero lost and zero duplicated outside the logged ambiguous
// window, with the daemon's RSS and heap sampled as it goes and required to stay flat.
// Touches: the daemon process it starts (ended by PID), a temp dir (config, keys), loopback sockets.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Harness, SIGN_DOMAIN } from '../helpers/daemon-harness.js';
import { ledgerNextHop, runLedger, RANDOM_FAULTS } from '../helpers/ledger.js';
import { startNextHopServer } from '../helpers/next-hop-server.js';
import { startServeProcess, type StartedServe } from '../helpers/serve-process.js';

const MESSAGES = Number(process.env.SOAK_MESSAGES ?? 20_000);
const SESSIONS = Number(process.env.SOAK_SESSIONS ?? 20);
const SEED = Number(process.env.SOAK_SEED ?? Date.now() % 1_000_000);
const NEXT_HOP_TIMEOUT_MS = 1000;

const FAULTS = RANDOM_FAULTS;

const harness = new Harness();
let served: StartedServe | null = null;
let dir = '';

afterAll(async () => {
  await served?.kill();
  await harness.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function heapUsed(port: number): Promise<number> {
  const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(/^nodejs_heap_size_used_bytes (\S+)/m.exec(body)?.[1] ?? NaN);
}

const mb = (bytes: number) => (bytes / 1048576).toFixed(1);

describe('soak', () => {
  it(`relays ${MESSAGES} messages over ${SESSIONS} sessions with random faults, losing none, with flat memory (seed ${SEED})`, { timeout: 3_600_000 }, async () => {
    const keys = await harness.setup();
    dir = await mkdtemp(join(tmpdir(), 'dkimgate-soak-'));
    const hop = await startNextHopServer(ledgerNextHop({ seed: SEED, faults: FAULTS, nextHopTimeoutMs: NEXT_HOP_TIMEOUT_MS }));
    harness.onCleanup(() => hop.close());
    // The next hop keeps what it accepted for the reconciliation; it lives in this process, not the daemon's.
    const configPath = join(dir, 'soak.yaml');
    await writeFile(
      configPath,
      [
        'authserv_id: soak.test.example',
        'listen: [{ host: 127.0.0.1, port: 0 }]',
        `next_hop: { host: 127.0.0.1, port: ${hop.port} }`,
        'relay_hosts: [127.0.0.1/32]',
        `limits: { next_hop_timeout: ${NEXT_HOP_TIMEOUT_MS / 1000}, spill_threshold: 8192, socket_timeout: 60 }`,
        'metrics: { host: 127.0.0.1, port: 0 }',
        'sign:',
        `  key: "${keys.dir}/%{d}/%{s}.pem"`,
        `  domains: { ${SIGN_DOMAIN}: { selectors: [{ selector: rsa1 }, { selector: ed1, digest: ed25519-sha256 }] } }`,
        '',
      ].join('\n'),
    );
    served = await startServeProcess(configPath);
    const metricsPort = await served.metricsPort();
    const samples: Array<{ done: number; rss: number; heap: number }> = [];
    const sample = async (done: number) => {
      const { rss } = await served!.memory();
      samples.push({ done, rss, heap: await heapUsed(metricsPort) });
      console.log(`soak: ${done} messages, daemon RSS ${mb(rss)} MB, heap used ${mb(samples.at(-1)!.heap)} MB`);
    };
    await sample(0);
    const pending: Promise<void>[] = [];
    const report = await runLedger(
      {
        port: served.port,
        messages: MESSAGES,
        sessions: SESSIONS,
        seed: SEED,
        faults: FAULTS,
        nextHopTimeoutMs: NEXT_HOP_TIMEOUT_MS,
        progressEvery: Math.max(500, Math.floor(MESSAGES / 20)),
        onProgress: (done) => void pending.push(sample(done)),
      },
      hop,
      served.lines,
    );
    await Promise.all(pending);
    await sample(MESSAGES);
    const { peak } = await served.memory();
    console.log(`soak (seed ${SEED}): ${JSON.stringify({ ...report, violations: report.violations.length })}; peak RSS ${mb(peak)} MB`);
    expect(report.violations.slice(0, 20)).toEqual([]);
    expect(report.delivered + report.refused).toBe(MESSAGES);
    // Flat memory: after the first quarter (warm-up: JIT, pools, caches), RSS and heap may wander but not climb.
    const warm = samples.filter((s) => s.done >= MESSAGES / 4);
    const first = warm[0]!;
    const last = warm.at(-1)!;
    console.log(`soak: RSS ${mb(first.rss)} -> ${mb(last.rss)} MB, heap ${mb(first.heap)} -> ${mb(last.heap)} MB from ${first.done} to ${last.done} messages`);
    expect(last.rss - first.rss).toBeLessThan(40 * 1048576);
    expect(last.heap - first.heap).toBeLessThan(20 * 1048576);
  });
});
