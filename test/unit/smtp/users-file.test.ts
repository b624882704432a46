import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUsersFile, loadUsersFile, parseUsersFile, UsersFileError } from '../../../src/smtp/users-file.js';

let dir = '';
let counter = 0;
// Cost 4 keeps the tests fast; the format is the same at any cost.
const ALICE_HASH = bcrypt.hashSync('alice-secret', 4);
const BOB_HASH = bcrypt.hashSync('bob: secret with spaces', 4).replace(/^\$2b\$/, '$2a$');
const htpasswd = spawnSync('htpasswd', ['-v'], { encoding: 'utf8' });
const HAVE_HTPASSWD = htpasswd.error === undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dkimgate-users-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function usersFile(text: string): Promise<string> {
  const path = join(dir, `users-${++counter}`);
  await writeFile(path, text, { mode: 0o600 });
  return path;
}

async function failureOf(path: string): Promise<UsersFileError> {
  const outcome = await loadUsersFile(path).then(
    () => null,
    (error: unknown) => error,
  );
  if (!(outcome instanceof UsersFileError)) throw new Error(`expected a UsersFileError, got ${String(outcome)}`);
  return outcome;
}

describe('loadUsersFile', () => {
  it('accepts the right password and refuses a wrong one', async () => {
    const users = await loadUsersFile(await usersFile(`alice:${ALICE_HASH}\nbob:${BOB_HASH}\n`));
    expect(users.users).toEqual(['alice', 'bob']);
    expect(await users.verifyPassword('alice', 'alice-secret')).toBe(true);
    expect(await users.verifyPassword('alice', 'alice-secreT')).toBe(false);
    expect(await users.verifyPassword('alice', '')).toBe(false);
    expect(await users.verifyPassword('bob', 'bob: secret with spaces')).toBe(true);
    expect(await users.verifyPassword('bob', 'alice-secret')).toBe(false);
  });

  it('refuses unknown users, also with a password some user has', async () => {
    const users = await loadUsersFile(await usersFile(`alice:${ALICE_HASH}\n`));
    expect(await users.verifyPassword('mallory', 'alice-secret')).toBe(false);
    expect(await users.verifyPassword('Alice', 'alice-secret')).toBe(false);
    expect(await users.verifyPassword('__proto__', 'x')).toBe(false);
  });

  it('spends bcrypt time on unknown users too', async () => {
    // Cost 10 for alice: one comparison takes tens of milliseconds, far above noise.
    const users = await loadUsersFile(await usersFile(`alice:${bcrypt.hashSync('pw', 10)}\n`));
    const time = async (user: string) => {
      const started = performance.now();
      await users.verifyPassword(user, 'wrong');
      return performance.now() - started;
    };
    const known = await time('alice');
    const unknown = await time('nobody');
    expect(unknown).toBeGreaterThan(known / 4);
  });

  it('reads the optional domains field, lower-cased, without trailing dots or duplicates', async () => {
    const users = await loadUsersFile(await usersFile(`alice:${ALICE_HASH}:Example.COM, example.org.,example.com\nbob:${BOB_HASH}\n`));
    expect(users.allowedDomainsByUser.get('alice')).toEqual(['example.com', 'example.org']);
    expect(users.allowedDomainsByUser.has('bob')).toBe(false);
    expect(await users.verifyPassword('alice', 'alice-secret')).toBe(true);
  });

  it('skips empty lines and # comments and accepts CRLF line ends', async () => {
    const users = await loadUsersFile(await usersFile(`# users for dkimgate\r\n\r\nalice:${ALICE_HASH}\r\n   \r\n`));
    expect(users.users).toEqual(['alice']);
    expect(await users.verifyPassword('alice', 'alice-secret')).toBe(true);
  });

  it('loads an empty file: nobody can authenticate', async () => {
    const users = await loadUsersFile(await usersFile(''));
    expect(users.users).toEqual([]);
    expect(await users.verifyPassword('alice', 'alice-secret')).toBe(false);
  });

  it('accepts a line written by "htpasswd -B" (Debian apache2-utils)', async () => {
    if (!HAVE_HTPASSWD) throw new Error('htpasswd is missing: apt-get install apache2-utils (a test peer; .ci/run installs it)');
    const path = join(dir, `htpasswd-${++counter}`);
    const made = spawnSync('htpasswd', ['-c', '-b', '-B', '-C', '5', path, 'carol', 'carol pass'], { encoding: 'utf8' });
    expect(made.status).toBe(0);
    const users = await loadUsersFile(path);
    expect(await users.verifyPassword('carol', 'carol pass')).toBe(true);
    expect(await users.verifyPassword('carol', 'carol-pass')).toBe(false);
  });

  it('names the file when it does not exist', async () => {
    const error = await failureOf(join(dir, 'missing'));
    expect(error.problems).toEqual([`users file ${join(dir, 'missing')} does not exist; create it with "htpasswd -c -B FILE USER" or fix users_file`]);
  });

  it.each([
    ['an MD5 hash', 'dave:$apr1$kQvU2ZRz$yGvMPBqJ1xVUfOuBgNNhq/', /^FILE:1: user "dave" has an MD5 \("\$apr1\$"\) hash; only bcrypt hashes .* htpasswd -B FILE dave$/],
    ['a SHA-1 hash', 'dave:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=', /SHA-1 \("\{SHA\}"\) hash/],
    ['a SHA-512 crypt hash', 'dave:$6$salt$abcdefghijklmnopqrstuvwxyz', /a "\$6\$" crypt hash/],
    ['a DES crypt hash', 'dave:rl0uELOyYXVfk', /a DES crypt hash/],
    ['a plain-text password', 'dave:hunter2', /no bcrypt hash \(plain text or an unknown scheme\)/],
    ['a truncated bcrypt hash', `dave:${ALICE_HASH.slice(0, -1)}`, /a malformed bcrypt hash/],
    ['a bcrypt cost out of range', `dave:${ALICE_HASH.replace('$04$', '$32$')}`, /bcrypt cost 32 is outside 4 to 31/],
    ['no hash field', 'dave', /expected "user:bcrypt-hash"/],
    ['too many fields', `dave:${ALICE_HASH}:example.com:more`, /too many ":" fields/],
    ['an empty user name', `:${ALICE_HASH}`, /user name must be/],
    ['a user name with a space', `da ve:${ALICE_HASH}`, /user name must be/],
    // smtp-server answers 501 to any AUTH with such a name: the user could never log in
    ['a user name with a C1 control character', `da\u0085ve:${ALICE_HASH}`, /user name must be/],
    ['an empty domains field', `dave:${ALICE_HASH}:`, /the domains field is empty/],
    ['an empty domain in the list', `dave:${ALICE_HASH}:example.com,,example.org`, /empty entry in the domains list/],
    ['a bad domain', `dave:${ALICE_HASH}:exa mple.com`, /"exa mple.com" is not a domain name/],
  ])('refuses %s with file:line', async (_name, line, pattern) => {
    const path = await usersFile(`alice:${ALICE_HASH}\n${line}\n`);
    const error = await failureOf(path);
    expect(error.problems).toHaveLength(1);
    const problem = error.problems[0]!.replaceAll(path, 'FILE');
    expect(problem).toMatch(/^FILE:2: /);
    expect(problem.replace(/^FILE:2:/, 'FILE:1:')).toMatch(pattern);
  });

  it('refuses a user defined twice, naming both lines', async () => {
    const error = await failureOf(await usersFile(`alice:${ALICE_HASH}\nbob:${BOB_HASH}\nalice:${BOB_HASH}\n`));
    expect(error.problems).toEqual([expect.stringMatching(/:3: user "alice" is already defined on line 1; keep one line per user$/)]);
  });

  it('reports every bad line at once', async () => {
    const error = await failureOf(await usersFile(`a:x\nalice:${ALICE_HASH}\nb:$apr1$x$y\n`));
    expect(error.problems.map((p) => p.replace(/^.*:(\d+): .*$/, '$1'))).toEqual(['1', '3']);
    expect(error.message).toBe(error.problems.join('\n'));
  });
});

describe('bcrypt cost', () => {
  /** A well-formed bcrypt hash of `cost` (of no known password: only its shape matters here). */
  const hashOfCost = (cost: number) => `$2y$${String(cost).padStart(2, '0')}$${'abcdefghijklmnopqrstuvwxyz./0123456789ABCDEFGHIJKLMNO'.slice(0, 53)}`;

  it('loads at once whatever the cost: unknown users are compared with a dummy of the usual cost, not a hash made at load', async () => {
    // cost 20 is a million rounds: hashing a dummy at load would take over a minute of CPU
    const records = ['a', 'b', 'c'].map((user) => ({ user, hash: hashOfCost(20), domains: null }));
    const seen: string[] = [];
    const users = await createUsersFile('users', [...records, { user: 'd', hash: hashOfCost(5), domains: null }], {
      compare: async (_password, hash) => {
        seen.push(hash);
        return false;
      },
    });
    expect(await users.verifyPassword('nobody', 'x')).toBe(false);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatch(/^\$2[aby]\$20\$[./A-Za-z0-9]{53}$/);
    expect(records.map((r) => r.hash)).not.toContain(seen[0]);
  });

  it('compares unknown users for real against the dummy: false, never an error', async () => {
    const users = await createUsersFile('users', [{ user: 'alice', hash: ALICE_HASH, domains: null }]);
    expect(await users.verifyPassword('nobody', 'alice-secret')).toBe(false);
  });

  it('warns about costs above 12, naming the users and the time each AUTH takes', async () => {
    const users = await createUsersFile('/etc/dkimgate/users', [
      { user: 'alice', hash: hashOfCost(14), domains: null },
      { user: 'bob', hash: hashOfCost(12), domains: null },
      ...['c', 'd', 'e', 'f'].map((user) => ({ user, hash: hashOfCost(17), domains: null })),
    ]);
    expect(users.warnings).toEqual([
      'users file /etc/dkimgate/users: bcrypt cost 14 ("alice") takes about 1.2 s of CPU per AUTH not remembered from the last 5 minutes, and AUTHs wait their turn on one helper thread; costs up to 12 are usual for SMTP (htpasswd -B -C 12 FILE USER)',
      'users file /etc/dkimgate/users: bcrypt cost 17 (4 users) takes about 9.5 s of CPU per AUTH not remembered from the last 5 minutes, and AUTHs wait their turn on one helper thread; costs up to 12 are usual for SMTP (htpasswd -B -C 12 FILE USER)',
    ]);
    expect((await createUsersFile('users', [{ user: 'bob', hash: hashOfCost(12), domains: null }])).warnings).toEqual([]);
  });
});

describe('remembered logins', () => {
  /** The users file of alice and bob, with bcrypt's real comparison counted and a clock the test moves. */
  async function counted() {
    const clock = { now: 1000 };
    const calls = { n: 0 };
    const records = [
      { user: 'alice', hash: ALICE_HASH, domains: null },
      { user: 'bob', hash: BOB_HASH, domains: null },
    ];
    const compare = (password: string, hash: string) => {
      calls.n++;
      return bcrypt.compare(password, hash);
    };
    return { users: await createUsersFile('users', records, { compare, nowMs: () => clock.now }), clock, calls };
  }

  it('runs bcrypt once for a password that verified, again after five minutes, and for every wrong one', async () => {
    const { users, clock, calls } = await counted();
    expect(await users.verifyPassword('alice', 'alice-secret')).toBe(true);
    expect(await users.verifyPassword('alice', 'alice-secret')).toBe(true);
    expect(calls.n).toBe(1);
    expect(await users.verifyPassword('alice', 'wrong')).toBe(false);
    expect(await users.verifyPassword('alice', 'wrong')).toBe(false);
    expect(calls.n).toBe(3);
    clock.now += 299_000;
    expect(await users.verifyPassword('alice', 'alice-secret')).toBe(true);
    expect(calls.n).toBe(3);
    clock.now += 2_000;
    expect(await users.verifyPassword('alice', 'alice-secret')).toBe(true);
    expect(calls.n).toBe(4);
  });

  it('never lets a remembered password in for another user, an unknown one or a reloaded file', async () => {
    const { users, calls } = await counted();
    expect(await users.verifyPassword('alice', 'alice-secret')).toBe(true);
    expect(await users.verifyPassword('bob', 'alice-secret')).toBe(false);
    expect(await users.verifyPassword('mallory', 'alice-secret')).toBe(false);
    expect(calls.n).toBe(3);
    const reloaded = await counted();
    expect(await reloaded.users.verifyPassword('alice', 'alice-secret')).toBe(true);
    expect(reloaded.calls.n).toBe(1);
  });
});

describe('parseUsersFile', () => {
  it('never logs a hash in its problems', () => {
    const parsed = parseUsersFile('dave:$apr1$kQvU2ZRz$yGvMPBqJ1xVUfOuBgNNhq/\n', 'users');
    expect(parsed.kind === 'error' && parsed.problems.join('\n')).not.toContain('kQvU2ZRz');
  });
});
