// The ledger: thousands of messages through the daemon with faults injected at random on both sides, then proof
// that none was lost and none duplicated outside the logged ambiguous window (reliability.md invariants 1 and 2),
// and that the daemon is left with no transaction in flight. Touches: loopback sockets, a temp dir of keys and spool.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../../src/config/defaults.js';
import { Harness } from '../../helpers/daemon-harness.js';
import { ledgerNextHop, runLedger, RANDOM_FAULTS } from '../../helpers/ledger.js';

const harness = new Harness();
beforeAll(() => harness.setup());
afterEach(() => harness.cleanup());
afterAll(() => harness.dispose());

const FAULTS = RANDOM_FAULTS;

const MESSAGES = Number(process.env.LEDGER_MESSAGES ?? 3000);
const SEED = Number(process.env.LEDGER_SEED ?? Date.now() % 1_000_000);

async function metricValue(address: { host: string; port: number }, name: string): Promise<number> {
  const body = await (await fetch(`http://${address.host}:${address.port}/metrics`)).text();
  const line = body.split('\n').find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`${name} is not in /metrics`);
  return Number(line.split(' ')[1]);
}

describe('the ledger', () => {
  it(`loses and duplicates no message among ${MESSAGES} sent with random faults (seed ${SEED})`, { timeout: 180_000 }, async () => {
    const base = defaultConfig();
    const nextHopTimeoutMs = 800;
    const config = harness.config({
      limits: { ...base.limits, nextHopTimeout: nextHopTimeoutMs / 1000, spillThreshold: 8192, socketTimeout: 30 },
      metrics: { host: '127.0.0.1', port: 0 },
    });
    const gate = await harness.startGate(config, ledgerNextHop({ seed: SEED, faults: FAULTS, nextHopTimeoutMs }));
    const report = await runLedger({ port: gate.port, messages: MESSAGES, sessions: 20, seed: SEED, faults: FAULTS, nextHopTimeoutMs }, gate.nextHop, gate.logs);
    console.log(`ledger (seed ${SEED}): ${JSON.stringify({ ...report, violations: report.violations.length })}`);
    expect(report.violations.slice(0, 20)).toEqual([]);
    // every message reached an end: delivered, or refused with the next hop's 5xx; nobody ran out of attempts
    expect(report.delivered + report.refused).toBe(MESSAGES);
    // the faults happened: this run proves something
    expect(report.byOutcome['4xx']).toBeGreaterThan(0);
    expect(report.byOutcome.vanished).toBeGreaterThan(0);
    expect(report.ambiguousLogged).toBeGreaterThan(0);
    // nothing left behind in the daemon
    expect(await metricValue(gate.daemon.metricsAddress!, 'dkimgate_transactions_in_flight')).toBe(0);
    expect(await metricValue(gate.daemon.metricsAddress!, 'dkimgate_connections')).toBe(0);
  });
});
