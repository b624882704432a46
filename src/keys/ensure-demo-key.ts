// The quick-start demo key: created on first start (RSA 2048, mode 0600, never replacing a file), and the
// zone file with its TXT record written beside it. Touches: the demo key file and zone file, their directory.

import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { formatKeyRecord, formatTxtRecordZone, generateKey } from './generate-key.js';
import { loadPrivateKey, type LoadedKey } from './load-private-key.js';
import { writeNewKeyFile } from './write-key-file.js';

export interface DemoKeyPaths {
  domain: string;
  selector: string;
  keyPath: string;
  zonePath: string;
}

export interface DemoKeySetup {
  /** True when this call generated the key; false when an existing one was used. */
  created: boolean;
  key: LoadedKey;
  /** True when the zone file was written (missing, or not matching the key). */
  zoneWritten: boolean;
}

/**
 * Makes sure the demo key and its zone file exist. An existing key file is never replaced: it is loaded
 * with the daemon's own checks (permissions, type, size), and a problem is thrown as KeyLoadError. The
 * zone file is derived from the key and rewritten whenever it does not match it.
 */
export async function ensureDemoKey(paths: DemoKeyPaths): Promise<DemoKeySetup> {
  let created = false;
  await mkdir(dirname(paths.keyPath), { recursive: true, mode: 0o700 });
  if (!(await exists(paths.keyPath))) {
    const generated = await generateKey({ type: 'rsa', bits: 2048 });
    try {
      await writeNewKeyFile(paths.keyPath, generated.privateKeyPem);
      created = true;
    } catch (error) {
      // A concurrent start won the race: use its key, never replace it.
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  const key = await loadPrivateKey(paths.keyPath);
  const zone = formatDemoZone(paths, formatKeyRecord(key.keyObject));
  const current = await readFile(paths.zonePath, 'utf8').catch(() => null);
  if (current === zone) return { created, key, zoneWritten: false };
  // Write beside, then rename over: a reader never sees half a zone file.
  const temporary = `${paths.zonePath}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(temporary, zone, { mode: 0o644 });
    await rename(temporary, paths.zonePath);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  return { created, key, zoneWritten: true };
}

function formatDemoZone(paths: DemoKeyPaths, record: string): string {
  return [
    `; dkimgate demo zone: the TXT record of ${paths.keyPath}, rewritten by "dkimgate serve" when it does not match.`,
    `; ${paths.domain} is reserved for testing (RFC 2606); this key signs nothing real. Read through dns.zone_files.`,
    formatTxtRecordZone(paths.selector, paths.domain, record),
    '',
  ].join('\n');
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}
