// Test helper: every DKIM-Signature of a message verified by Debian's python3-dkim (dkimpy), an independent
// implementation, with keys from a table instead of DNS. Touches: a temp dir and one /usr/bin/python3 child per call.

import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

const SCRIPT = `
import sys
try:
    import dkim
except ImportError:
    sys.exit(3)
records = {}
for arg in sys.argv[2:]:
    name, value = arg.split('=', 1)
    records[name.encode()] = value.encode()
def dnsfunc(name, timeout=5):
    return records.get(name.rstrip(b'.'))
data = open(sys.argv[1], 'rb').read()
d = dkim.DKIM(data)
n = len([l for l in data.split(b'\\r\\n\\r\\n')[0].split(b'\\r\\n') if l.lower().startswith(b'dkim-signature:')])
print(' '.join('pass' if d.verify(idx=i, dnsfunc=dnsfunc) else 'fail' for i in range(n)))
`;

/** 'pass' or 'fail' for each DKIM-Signature, top first; records maps "sel._domainkey.domain" to the TXT value. */
export async function dkimpyVerify(message: Buffer, records: Record<string, string>): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'dkimgate-dkimpy-'));
  try {
    await writeFile(join(dir, 'msg.eml'), message);
    await writeFile(join(dir, 'v.py'), SCRIPT);
    const args = [join(dir, 'v.py'), join(dir, 'msg.eml'), ...Object.entries(records).map(([name, value]) => `${name}=${value}`)];
    const { stdout } = await execFileAsync('/usr/bin/python3', args, { timeout: 20_000 }).catch((err: { code?: number; message: string }) => {
      if (err.code === 3) throw new Error('python3-dkim is not installed for /usr/bin/python3; install it with: apt-get install python3-dkim');
      throw err;
    });
    return stdout.trim().split(/\s+/).filter((w) => w !== '');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
