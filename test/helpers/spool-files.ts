// Test helper: the spool files a process holds open that no longer have a name in their directory.
// Touches: reads /proc (Linux) only.

import { readdirSync, readlinkSync } from 'node:fs';

/** /proc/PID/fd/N paths of `pid`'s open, unlinked dkimgate spool files in `dir` (stat them for their size). */
export function openUnlinkedSpools(pid: number | 'self', dir: string): string[] {
  const found: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target = '';
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed since readdir listed it (readdir's own descriptor, for one)
    }
    if (target.startsWith(`${dir}/dkimgate-`) && target.endsWith('.spool (deleted)')) found.push(`/proc/${pid}/fd/${fd}`);
  }
  return found;
}
