// Writes a new private key file: created exclusively (never replacing anything), mode 0600 whatever the umask, synced.
// Touches: the one file it creates.

import { open } from 'node:fs/promises';

/** Creates `path` with `pem`; rejects with EEXIST when anything (file, symlink) is already there. */
export async function writeNewKeyFile(path: string, pem: string): Promise<void> {
  const handle = await open(path, 'wx', 0o600);
  try {
    await handle.chmod(0o600); // exact mode whatever the umask
    await handle.writeFile(pem);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
