// A Node binary another user can run. Tests that drop to "nobody" (root reads every file) need one:
// under `npx node@24` process.execPath lies in root's private npm cache, which nobody cannot enter.

import { spawnSync } from 'node:child_process';

const CANDIDATES = [process.execPath, '/usr/local/bin/node', '/usr/bin/node'];
const found = new Map<number, string>();

/** The first of this Node, then the system's, that `uid` can start; throws when none can. */
export function nodeForUser(uid: number, gid: number): string {
  const known = found.get(uid);
  if (known) return known;
  for (const candidate of CANDIDATES) {
    if (spawnSync(candidate, ['-e', ''], { uid, gid }).status === 0) {
      found.set(uid, candidate);
      return candidate;
    }
  }
  throw new Error(`no Node binary that uid ${uid} may run among ${CANDIDATES.join(', ')}`);
}
