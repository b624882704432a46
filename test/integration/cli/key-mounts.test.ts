// Private keys as containers deliver them: a read-only bind mount and a secret on a read-only tmpfs, made for
// real in a private mount namespace (unshare -m, so nothing is visible outside the child), checked by the
// built CLI's `config check`. Touches: temp dirs, the unshare children it runs (they end by themselves).

import { spawnSync } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rsaKey } from '../../helpers/dkim-test-kit.js';
import { CLI } from '../../helpers/run-cli.js';

let dir = '';
const pem = rsaKey(2048).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dkimgate-key-mounts-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/**
 * Writes the key with `mode` into a source directory, mounts it at a target as `how` says, and runs
 * `dkimgate config check` on a config whose key lives under the target. Fails loudly without mount rights.
 */
async function checkMounted(name: string, mode: number, how: 'bind-ro' | 'tmpfs-secret', owner = 0): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const source = join(dir, `${name}-source`);
  const target = join(dir, `${name}-target`);
  await mkdir(join(source, 'example.com'), { recursive: true });
  await mkdir(target);
  const keyFile = join(source, 'example.com', 's1.pem');
  await writeFile(keyFile, pem);
  await chmod(keyFile, mode);
  await chown(keyFile, owner, 0);
  const config = join(dir, `${name}.yaml`);
  await writeFile(config, `sign:\n  key: "${target}/%{d}/%{s}.pem"\n  domains:\n    example.com: { selector: s1 }\n`);
  const mount =
    how === 'bind-ro'
      ? 'mount --bind -o ro "$1" "$2"'
      : // a secret: a tmpfs with the file, then made read-only, as docker and Kubernetes mount them
        'mount -t tmpfs -o size=64k,mode=0755 tmpfs "$2" && cp -a "$1/." "$2/" && mount -o remount,ro "$2"';
  const script = `${mount} || { echo "cannot mount (unshare -m needs CAP_SYS_ADMIN)" >&2; exit 99; }; exec "$3" "$4" config check --config "$5"`;
  const run = spawnSync('unshare', ['-m', 'sh', '-c', script, 'sh', source, target, process.execPath, CLI, config], { encoding: 'utf8', timeout: 20_000 });
  if (run.error) throw new Error(`unshare (util-linux) could not run: ${run.error.message}`);
  if (run.status === 99) throw new Error(`this test mounts file systems in a private namespace: ${run.stderr}`);
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('private keys mounted the way containers mount them', () => {
  it('accepts a root-owned 0644 key on a read-only bind mount, warning that every user can read it', async () => {
    const result = await checkMounted('bind-0644', 0o644, 'bind-ro');
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^ok: /);
    expect(result.stderr).toContain('is readable by every user (mode 0644) on a read-only mount, as container secrets are');
  });

  it('accepts a root-owned 0444 secret on a read-only tmpfs', async () => {
    const result = await checkMounted('secret-0444', 0o444, 'tmpfs-secret');
    expect(result.status, result.stderr).toBe(0);
    expect(result.stderr).toContain('(mode 0444) on a read-only mount');
  });

  it('accepts a 0400 secret without a warning', async () => {
    const result = await checkMounted('secret-0400', 0o400, 'tmpfs-secret');
    expect([result.status, result.stderr]).toEqual([0, '']);
  });

  it('refuses a world-writable key even on a read-only mount: the file behind the mount can still be replaced', async () => {
    const result = await checkMounted('bind-0666', 0o666, 'bind-ro');
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('is writable by others (mode 0666)');
  });

  it('refuses a key on a read-only mount that another non-root user owns', async () => {
    const result = await checkMounted('bind-owner', 0o644, 'bind-ro', 1234);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('is owned by uid 1234, neither root nor the user dkimgate runs as');
  });
});
