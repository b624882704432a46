// How long the fuzz properties run: a bounded budget in `npm test`, a longer one on demand (`npm run fuzz`).
// Reads FUZZ_SECONDS (per property) and FUZZ_SEED from the environment; touches nothing else.

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Parameters } from 'fast-check';

/** Seconds each property may run; `npm test` uses a short default so the whole fuzz part stays well under 40 s. */
export const FUZZ_SECONDS = Number(process.env.FUZZ_SECONDS ?? '') > 0 ? Number(process.env.FUZZ_SECONDS) : 1;
/** True under `npm run fuzz` (FUZZ_SECONDS set): properties run until their time is up. */
export const FUZZ_LONG = process.env.FUZZ_SECONDS !== undefined;

/**
 * fast-check parameters: `runs` inputs (a time budget ends it earlier; under `npm run fuzz`, runs are
 * unbounded and the time budget decides). A failure prints its seed; FUZZ_SEED replays it.
 */
export function fuzzParams<T>(runs: number): Parameters<T> {
  const seed = process.env.FUZZ_SEED;
  return {
    numRuns: FUZZ_LONG ? 1_000_000_000 : runs,
    interruptAfterTimeLimit: FUZZ_SECONDS * 1000,
    markInterruptAsFailure: false,
    ...(seed === undefined ? {} : { seed: Number(seed) }),
  };
}

/** The seed corpus: nasty inputs kept in test/fixtures/fuzz-corpus/, fed to every parser. */
export function loadFuzzCorpus(): { name: string; bytes: Buffer }[] {
  const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'fuzz-corpus');
  return readdirSync(dir)
    .sort()
    .map((name) => ({ name, bytes: readFileSync(join(dir, name)) }));
}
