// The fuzz seed corpus (test/fixtures/fuzz-corpus/) as DATA through the running daemon, on the verify
// path and on the sign path: every file gets one final reply and one log line, whatever is relayed
// starts with what we add, and the daemon keeps serving. Touches: loopback sockets, a temp key dir.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASIC_MESSAGE } from '../../helpers/dkim-test-kit.js';
import { AUTHSERV, Harness, waitFor, type Gate } from '../../helpers/daemon-harness.js';
import { loadFuzzCorpus } from '../../helpers/fuzz-budget.js';
import { sendMail } from '../../helpers/raw-smtp-client.js';

const harness = new Harness();
const CORPUS = loadFuzzCorpus();

beforeAll(async () => {
  await harness.setup();
});

afterAll(async () => {
  await harness.dispose();
});

describe('the fuzz corpus through the daemon', () => {
  it.each([
    ['the verify path (no relay hosts)', [] as string[], /^Authentication-Results: /],
    ['the sign path (127.0.0.1 a relay host)', ['127.0.0.1/32'], /^(DKIM-Signature|Authentication-Results): /],
  ])('answers every file once on %s and keeps serving', async (_name, relayHosts, firstAdded) => {
    // max_header_size at its default, DNS nowhere: lookups fail fast enough for the signature files.
    const gate: Gate = await harness.startGate(harness.config({ relayHosts }));
    try {
      for (const { name, bytes } of CORPUS) {
        const relayedBefore = gate.nextHop.messages.length;
        const linesBefore = gate.messageLines().length;
        const r = await sendMail(gate.port, { from: 'alice@example.com', data: bytes, timeoutMs: 20_000 });
        const code = r.final[0]?.code ?? 0;
        expect([250, 451, 452, 550, 552], `${name}: ${r.final[0]?.text}`).toContain(code);
        await waitFor(() => gate.messageLines().length === linesBefore + 1, 5000);
        if (code === 250) {
          expect(gate.nextHop.messages.length, name).toBe(relayedBefore + 1);
          expect(gate.nextHop.messages.at(-1)!.data.toString('latin1'), name).toMatch(firstAdded);
        } else {
          expect(gate.nextHop.messages.length, name).toBe(relayedBefore);
        }
      }
      const ordinary = await sendMail(gate.port, { data: BASIC_MESSAGE });
      expect(ordinary.final[0]?.code).toBe(250);
      expect(gate.nextHop.messages.at(-1)!.data.toString('latin1')).toMatch(new RegExp(`^(DKIM-Signature: |Authentication-Results: ${AUTHSERV.replace(/\./g, '\\.')};)`));
    } finally {
      await harness.cleanup();
    }
  }, 120_000);
});
