// SMTP AUTH users: an htpasswd file with bcrypt hashes (as `htpasswd -B` writes), each user optionally limited
// to the From domains it may sign for. Touches: the users file (read at start-up and reload). Never logs passwords or hashes.

import { createHmac, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import bcrypt from 'bcryptjs';
import { LruCache } from '../dns/lru-cache.js';
import { compareOnBcryptThread } from './bcrypt-thread.js';

/**
 * File format, one user a line:
 *
 *     user:$2y$05$<53 characters>               may sign for every configured domain
 *     user:$2y$05$<53 characters>:example.com,example.org
 *                                               may sign only for these domains and their subdomains
 *
 * - the hash is bcrypt ($2y$, $2b$ or $2a$, cost 4 to 31); other htpasswd schemes (MD5 "$apr1$", "{SHA}",
 *   crypt, plain text) are refused with file:line errors;
 * - the third field is dkimgate's: a comma-separated list of domains (lower-cased, a trailing dot dropped).
 *   `htpasswd` keeps it on the lines it does not touch, but rewriting a user's password (htpasswd -B FILE
 *   USER) writes "user:hash" and drops that user's list: add it again;
 * - empty lines and lines starting with "#" are ignored; CRLF line ends are accepted.
 */
export interface UsersFile {
  readonly path: string;
  /** User names, in file order. */
  readonly users: readonly string[];
  /** Whether the file has this user (exact name). */
  has(user: string): boolean;
  /** The users with a domains field -> those domains; users without one are absent (not limited). */
  readonly allowedDomainsByUser: ReadonlyMap<string, readonly string[]>;
  /** What an operator should know about the file (e.g. a bcrypt cost that makes every AUTH slow). */
  readonly warnings: readonly string[];
  /**
   * Whether `password` is the user's. Unknown users run a bcrypt comparison too (against a dummy hash
   * of the file's most common cost), so the time taken does not reveal which users exist. As with every
   * bcrypt, only the first 72 bytes of the password count. Rejects only when the bcrypt thread fails.
   */
  verifyPassword(user: string, password: string): Promise<boolean>;
}

export interface UserRecord {
  user: string;
  hash: string;
  /** null: not limited. */
  domains: string[] | null;
}

export type UsersFileParse = { kind: 'ok'; records: UserRecord[] } | { kind: 'error'; problems: string[] };

/** A users file that cannot be used; `problems` are "FILE:LINE: what and how to fix" lines. */
export class UsersFileError extends Error {
  constructor(
    readonly path: string,
    readonly problems: string[],
  ) {
    super(problems.join('\n'));
    this.name = 'UsersFileError';
  }
}

const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;
const DOMAIN = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;
/** Spaces and C0/C1 controls: smtp-server refuses an AUTH whose user name has a control (501), so no client could log in. */
const BAD_USER_CHARS = /[\x00-\x20\x7f-\x9f]/;
const MAX_USER_CHARS = 255;
const DEFAULT_COST = 10;
/** bcrypt's alphabet (its own base64), for the dummy hash's digest part. */
const BCRYPT_ALPHABET = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/**
 * Costs above this get a warning at load: bcryptjs needs about 74 ms of CPU per comparison at cost 10 here,
 * doubling with each step (0.6 s at 13, 9 s at 17), and comparisons take turns on one helper thread.
 */
const SLOW_COST = 12;
/**
 * A password that verified is remembered this long (as an HMAC under a key made at load): a client that
 * authenticates on every connection then costs one bcrypt per interval, not one per session (74 ms of CPU
 * at cost 10, 290 ms at cost 12). Failures are never remembered, so a guess costs a full bcrypt every time;
 * a reload starts from nothing.
 */
const VERIFIED_TTL_MS = 5 * 60_000;
const VERIFIED_MAX = 4096;

/** Reads and parses the users file; throws UsersFileError naming the file (and line) on any problem. */
export async function loadUsersFile(path: string): Promise<UsersFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'does not exist; create it with "htpasswd -c -B FILE USER" or fix users_file'
        : code === 'EACCES'
          ? 'is not readable by the user dkimgate runs as'
          : `cannot be read (${code ?? String(error)})`;
    throw new UsersFileError(path, [`users file ${path} ${why}`]);
  }
  const parsed = parseUsersFile(text, path);
  if (parsed.kind === 'error') throw new UsersFileError(path, parsed.problems);
  return createUsersFile(path, parsed.records);
}

/** Parses users-file text; never throws. `path` only labels the problems. */
export function parseUsersFile(text: string, path: string): UsersFileParse {
  const records: UserRecord[] = [];
  const problems: string[] = [];
  const lineOf = new Map<string, number>();
  const lines = text.split('\n');
  lines.forEach((rawLine, index) => {
    const lineNo = index + 1;
    const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    if (line.trim() === '' || line.startsWith('#')) return;
    const at = `${path}:${lineNo}`;
    const parts = line.split(':');
    const user = parts[0] ?? '';
    if (parts.length < 2) {
      problems.push(`${at}: expected "user:bcrypt-hash" or "user:bcrypt-hash:domain,domain"`);
      return;
    }
    if (parts.length > 3) {
      problems.push(`${at}: too many ":" fields; expected "user:bcrypt-hash" or "user:bcrypt-hash:domain,domain"`);
      return;
    }
    if (user === '' || user.length > MAX_USER_CHARS || BAD_USER_CHARS.test(user)) {
      problems.push(`${at}: the user name must be 1 to ${MAX_USER_CHARS} characters without spaces or control characters`);
      return;
    }
    const hash = parts[1] ?? '';
    const hashProblem = checkHash(hash, user, path);
    if (hashProblem !== null) {
      problems.push(`${at}: ${hashProblem}`);
      return;
    }
    let domains: string[] | null = null;
    if (parts.length === 3) {
      const parsed = parseDomainList(parts[2] ?? '');
      if (typeof parsed === 'string') {
        problems.push(`${at}: user "${user}": ${parsed}`);
        return;
      }
      domains = parsed;
    }
    const previous = lineOf.get(user);
    if (previous !== undefined) {
      problems.push(`${at}: user "${user}" is already defined on line ${previous}; keep one line per user`);
      return;
    }
    lineOf.set(user, lineNo);
    records.push({ user, hash, domains });
  });
  return problems.length > 0 ? { kind: 'error', problems } : { kind: 'ok', records };
}

export interface UsersFileOptions {
  /** bcrypt's comparison (a test counts the calls); bcryptjs's on the helper thread by default. */
  compare?: (password: string, hash: string) => Promise<boolean>;
  /** Monotonic clock in ms, for the remembered logins. */
  nowMs?: () => number;
}

/** Builds the lookup from parsed records (also for tests); computes the dummy hash for unknown users. */
export async function createUsersFile(path: string, records: readonly UserRecord[], opts: UsersFileOptions = {}): Promise<UsersFile> {
  const compare = opts.compare ?? compareOnBcryptThread;
  const nowMs = opts.nowMs ?? (() => performance.now());
  const hashes = new Map<string, string>();
  const allowed = new Map<string, readonly string[]>();
  /** bcrypt cost -> the users whose hash has it. */
  const usersByCost = new Map<number, string[]>();
  for (const r of records) {
    hashes.set(r.user, r.hash);
    if (r.domains !== null) allowed.set(r.user, Object.freeze([...r.domains]));
    const cost = Number(r.hash.slice(4, 6));
    const same = usersByCost.get(cost);
    if (same === undefined) usersByCost.set(cost, [r.user]);
    else same.push(r.user);
  }
  let cost = DEFAULT_COST;
  let best = 0;
  for (const [c, { length: n }] of usersByCost) if (n > best || (n === best && c > cost)) [cost, best] = [c, n];
  // A comparison's time depends on the cost alone, so the dummy need not be the hash of anything: a fresh salt
  // and a random digest. Hashing one here cost the main thread as long as an AUTH (seconds at high costs) at
  // every start and reload.
  const dummyHash = bcrypt.genSaltSync(cost) + Array.from(randomBytes(31), (b) => BCRYPT_ALPHABET[b & 63]).join('');
  const warnings = [...usersByCost]
    .filter(([c]) => c > SLOW_COST)
    .sort(([a], [b]) => a - b)
    .map(([c, names]) => slowCostWarning(path, c, names));
  const users = Object.freeze(records.map((r) => r.user));
  const secret = randomBytes(32);
  /** HMACs of "user NUL password" that verified. */
  const verified = new LruCache<true>({ capacity: VERIFIED_MAX, nowMs });
  return Object.freeze({
    path,
    users,
    allowedDomainsByUser: allowed,
    warnings: Object.freeze(warnings),
    has: (user: string) => hashes.has(user),
    async verifyPassword(user: string, password: string): Promise<boolean> {
      const hash = hashes.get(user);
      if (hash === undefined) {
        await compare(password, dummyHash);
        return false;
      }
      // (a user name holds no NUL, so "user NUL password" is unambiguous)
      const key = createHmac('sha256', secret).update(user).update('\0').update(password).digest('base64');
      if (verified.get(key)) return true;
      if (!(await compare(password, hash))) return false;
      verified.set(key, true, VERIFIED_TTL_MS);
      return true;
    },
  });
}

function slowCostWarning(path: string, cost: number, users: string[]): string {
  const seconds = (0.074 * 2 ** (cost - 10)).toPrecision(2);
  const who = users.length <= 3 ? users.map((u) => `"${u}"`).join(', ') : `${users.length} users`;
  return (
    `users file ${path}: bcrypt cost ${cost} (${who}) takes about ${seconds} s of CPU per AUTH not remembered from ` +
    `the last 5 minutes, and AUTHs wait their turn on one helper thread; costs up to ${SLOW_COST} are usual for SMTP (htpasswd -B -C ${SLOW_COST} FILE USER)`
  );
}

function checkHash(hash: string, user: string, path: string): string | null {
  const redo = `recreate it with: htpasswd -B ${path} ${user}`;
  const match = BCRYPT.exec(hash);
  if (match !== null) {
    const cost = Number(match[1]);
    return cost >= 4 && cost <= 31 ? null : `user "${user}": bcrypt cost ${cost} is outside 4 to 31; ${redo}`;
  }
  const scheme = hash.startsWith('$apr1$')
    ? 'an MD5 ("$apr1$") hash'
    : hash.startsWith('{SHA}')
      ? 'a SHA-1 ("{SHA}") hash'
      : /^\$(?:1|5|6|md5|sha1|y|gy|7)\$/.test(hash) || hash.startsWith('$argon2')
        ? `a "${hash.slice(0, hash.indexOf('$', 1) + 1)}" crypt hash`
        : hash.startsWith('$2')
          ? 'a malformed bcrypt hash'
          : /^[./A-Za-z0-9]{13}$/.test(hash)
            ? 'a DES crypt hash'
            : 'no bcrypt hash (plain text or an unknown scheme)';
  return `user "${user}" has ${scheme}; only bcrypt hashes ($2y$, $2b$, $2a$) are accepted: ${redo}`;
}

/** "example.com, Example.ORG." -> ["example.com", "example.org"], or a problem. */
function parseDomainList(text: string): string[] | string {
  const domains: string[] = [];
  for (const item of text.split(',')) {
    let domain = item.trim().toLowerCase();
    if (domain.endsWith('.')) domain = domain.slice(0, -1);
    if (domain === '') {
      return text.trim() === ''
        ? 'the domains field is empty; list the domains ("user:hash:example.com,example.org") or remove the trailing ":" to allow every domain'
        : `empty entry in the domains list "${text}"`;
    }
    if (!DOMAIN.test(domain)) return `"${item.trim()}" is not a domain name (write IDNs as A-labels, e.g. xn--bcher-kva.example)`;
    if (!domains.includes(domain)) domains.push(domain);
  }
  return domains;
}
