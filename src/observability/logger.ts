// The daemon's pino logger (JSON lines, stdout by default) with secrets redacted, and printable().
// Touches: the log destination (stream or fd). Secrets are redacted by key name; untrusted text goes through printable() first.
import pino from 'pino';

export type Logger = pino.Logger;

export type LoggerOptions = {
  /** pino level name: fatal | error | warn | info | debug | trace | silent. Default: info. */
  level?: string;
  /** A writable stream, or a file descriptor (1 = stdout, the default). */
  destination?: NodeJS.WritableStream | number;
};

export const LOG_LEVELS: readonly string[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Key names (compared case-insensitively) whose values are never logged, at any depth up to MAX_REDACT_DEPTH. */
export const SECRET_KEYS: readonly string[] = [
  'pass', // next_hop.auth.pass (interface.md §3)
  'password', // smtp-server's auth object, users_file entries
  'passwd',
  'passwordHash',
  'secret',
  'accessToken', // smtp-server XOAUTH2
  'privateKey', // SignerConfig.privateKey
  'private_key',
  'authData', // raw AUTH PLAIN/LOGIN payloads
  'auth_data',
  'credentials',
];
export const REDACTED = '[redacted]';
const MAX_REDACT_DEPTH = 6;
const SECRET_KEY_SET: ReadonlySet<string> = new Set(SECRET_KEYS.map((k) => k.toLowerCase()));

/**
 * A copy of `value` with every secret key's value replaced by REDACTED, in plain objects and arrays
 * up to MAX_REDACT_DEPTH levels down; returns `value` itself when there is nothing to redact (never mutates).
 * Hand-rolled rather than pino's `redact`: pino's wildcard paths cost ~100 µs a line (measured), this ~1 µs.
 */
export function redactSecrets<T>(value: T): T {
  return redactValue(value, 0) as T;
}

function redactValue(value: unknown, depth: number): unknown {
  if (value === null || typeof value !== 'object' || depth > MAX_REDACT_DEPTH) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | null = null;
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      const redacted = redactValue(item, depth + 1);
      if (redacted !== item) (copy ??= value.slice())[i] = redacted;
    }
    return copy ?? value;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value; // Error, Buffer, KeyObject, Date: their own serializers
  const record = value as Record<string, unknown>;
  let copy: Record<string, unknown> | null = null;
  for (const key of Object.keys(record)) {
    const item = record[key];
    const redacted = SECRET_KEY_SET.has(key.toLowerCase()) ? REDACTED : redactValue(item, depth + 1);
    if (redacted !== item) (copy ??= { ...record })[key] = redacted;
  }
  return copy ?? value;
}

/** Creates the logger; throws an Error naming the accepted levels when `level` is unknown (a start-up config error). */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? 'info';
  if (!LOG_LEVELS.includes(level)) {
    throw new Error(`unknown log level "${printable(level, 40)}": use one of ${LOG_LEVELS.join(', ')}`);
  }
  const destination = opts.destination ?? 1;
  const stream: pino.DestinationStream =
    typeof destination === 'number' ? pino.destination({ dest: destination, sync: true }) : (destination as pino.DestinationStream);
  const logger = pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (obj) => redactSecrets(obj),
      },
    },
    stream,
  );
  // pino applies no formatter to a child's bindings; children are Object.create(parent), so they inherit these.
  const child = logger.child; // unbound: `this` is the logger the call is made on
  const setBindings = logger.setBindings;
  logger.child = function (this: Logger, bindings, options) {
    return child.call(this, redactSecrets(bindings), options);
  } as Logger['child'];
  logger.setBindings = function (this: Logger, bindings) {
    setBindings.call(this, redactSecrets(bindings));
  };
  return logger;
}

const PLAIN = /^[\x20-\x5b\x5d-\x7e]*$/; // printable ASCII except the backslash
const ELLIPSIS = '...';

/**
 * Makes untrusted text safe for one log field (Postfix's printable(), but escaping instead of '?'):
 * backslash -> \\, \r \n \t -> \r \n \t, other controls and DEL -> \xHH, non-ASCII -> \u{HEX} per code point.
 * The result is at most `max` characters; when cut, it ends with "..." and no escape is split.
 */
export function printable(text: string, max = 200): string {
  const limit = Math.max(0, Math.floor(max));
  if (text.length <= limit && PLAIN.test(text)) return text;
  const pieces: string[] = [];
  let length = 0;
  for (const ch of text) {
    const piece = escapeChar(ch);
    if (length + piece.length > limit) {
      // Cut: drop whole pieces until the ellipsis fits (no ellipsis when even it would not fit).
      const room = limit >= ELLIPSIS.length ? limit - ELLIPSIS.length : limit;
      while (length > room) length -= pieces.pop()?.length ?? length;
      return pieces.join('') + (limit >= ELLIPSIS.length ? ELLIPSIS : '');
    }
    pieces.push(piece);
    length += piece.length;
  }
  return pieces.join('');
}

function escapeChar(ch: string): string {
  const cp = ch.codePointAt(0) ?? 0;
  if (cp >= 0x20 && cp <= 0x7e) return ch === '\\' ? '\\\\' : ch;
  if (cp === 0x0d) return '\\r';
  if (cp === 0x0a) return '\\n';
  if (cp === 0x09) return '\\t';
  if (cp < 0x80) return `\\x${cp.toString(16).toUpperCase().padStart(2, '0')}`;
  return `\\u{${cp.toString(16).toUpperCase()}}`;
}
