import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { closeSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createLogger, printable, REDACTED } from '../../../src/observability/logger.js';

/** A pino destination that keeps what was written. */
function captureStream() {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return { stream, text: () => chunks.join(''), lines: () => chunks.join('').split('\n').filter((l) => l !== '') };
}

describe('printable', () => {
  it.each([
    ['plain ASCII text', 'user@example.com', 'user@example.com'],
    ['CR and LF', 'a\r\nb', 'a\\r\\nb'],
    ['a tab', 'a\tb', 'a\\tb'],
    ['NUL', 'a\x00b', 'a\\x00b'],
    ['ESC', '\x1b[31mred', '\\x1B[31mred'],
    ['DEL', 'a\x7fb', 'a\\x7Fb'],
    ['a backslash, so escapes stay unambiguous', 'a\\nb', 'a\\\\nb'],
    ['a Latin-1 letter', 'caf\u00e9', 'caf\\u{E9}'],
    ['a character outside the BMP as one code point', 'x\u{1F600}y', 'x\\u{1F600}y'],
    ['a lone surrogate', 'a\uD800b', 'a\\u{D800}b'],
    ['the empty string', '', ''],
  ])('escapes %s', (_case, input, expected) => {
    expect(printable(input)).toBe(expected);
  });

  it('cuts long text to the limit and marks the cut with an ellipsis', () => {
    const out = printable('a'.repeat(300));
    expect(out).toHaveLength(200);
    expect(out).toBe(`${'a'.repeat(197)}...`);
  });

  it('keeps text exactly at the limit whole', () => {
    expect(printable('b'.repeat(200))).toBe('b'.repeat(200));
  });

  it('never splits an escape when cutting', () => {
    // 195 a's + \x00 (4 chars) = 199; the next \x00 would overflow, and the ellipsis needs room.
    expect(printable(`${'a'.repeat(195)}\x00\x00`, 200)).toBe(`${'a'.repeat(195)}...`);
    expect(printable('\u00e9\u00e9\u00e9', 10)).toBe('\\u{E9}...');
  });

  it('honours a small max without an ellipsis when none fits', () => {
    expect(printable('abcdef', 2)).toBe('ab');
    expect(printable('abcdef', 0)).toBe('');
  });

  it('always returns at most max printable ASCII characters', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 400 }), fc.integer({ min: 0, max: 300 }), (text, max) => {
        const out = printable(text, max);
        expect(out.length).toBeLessThanOrEqual(max);
        expect(out).toMatch(/^[\x20-\x7e]*$/);
      }),
    );
  });

  it('leaves text under the limit recoverable: no two inputs give the same output', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 30 }), (a, b) => {
        fc.pre(a !== b);
        expect(printable(a, 1000)).not.toBe(printable(b, 1000));
      }),
    );
  });
});

describe('createLogger', () => {
  it('writes one JSON line per call with the level name, time and message', () => {
    const out = captureStream();
    const logger = createLogger({ destination: out.stream });
    logger.info({ queueId: 'Q1' }, 'message');
    const lines = out.lines();
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
    expect(line).toMatchObject({ level: 'info', queueId: 'Q1', msg: 'message' });
    expect(typeof line.time).toBe('string');
  });

  it('drops lines below the configured level', () => {
    const out = captureStream();
    const logger = createLogger({ level: 'warn', destination: out.stream });
    logger.info('hidden');
    logger.warn('shown');
    expect(out.lines().map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['shown']);
  });

  it('refuses an unknown level, naming the accepted ones', () => {
    expect(() => createLogger({ level: 'verbose' })).toThrow(/unknown log level "verbose": use one of fatal, error, warn, info/);
  });

  it.each([
    ['a top-level password', { password: 'hunter2-SECRET' }],
    ['a top-level pass', { pass: 'hunter2-SECRET' }],
    ['the next hop AUTH password', { auth: { user: 'relay', pass: 'hunter2-SECRET' } }],
    ['a next hop password inside the config', { config: { next_hop: { auth: { user: 'relay', pass: 'hunter2-SECRET' } } } }],
    ['an smtp-server auth object', { session: { auth: { method: 'PLAIN', username: 'u', password: 'hunter2-SECRET' } } }],
    ['a private key', { signer: { privateKey: '-----BEGIN PRIVATE KEY-----hunter2-SECRET' } }],
    ['raw AUTH data', { authData: 'AHVzZXIAaHVudGVyMi1TRUNSRVQ=hunter2-SECRET' }],
    ['an XOAUTH2 token', { auth: { accessToken: 'hunter2-SECRET' } }],
    ['a password in an array of users', { users: [{ name: 'a', password: 'hunter2-SECRET' }] }],
  ])('never writes %s', (_case, obj) => {
    const out = captureStream();
    const logger = createLogger({ destination: out.stream });
    logger.info(obj, 'config');
    logger.child(obj).warn('child line');
    const text = out.text();
    expect(text).not.toContain('hunter2-SECRET');
    expect(text).toContain(REDACTED);
    expect(out.lines()).toHaveLength(2);
  });

  it('keeps the fields next to a redacted secret', () => {
    const out = captureStream();
    createLogger({ destination: out.stream }).info({ auth: { user: 'relay', pass: 's3cret' } }, 'x');
    expect(JSON.parse(out.lines()[0] ?? '')).toMatchObject({ auth: { user: 'relay', pass: REDACTED } });
  });

  it('redacts the bindings of grandchildren and of setBindings, keeping each logger its own bindings', () => {
    const out = captureStream();
    const root = createLogger({ destination: out.stream });
    const child = root.child({ session: 'S1' });
    const grandchild = child.child({ auth: { user: 'u', pass: 'gc-SECRET' } });
    grandchild.info('grandchild');
    child.setBindings({ Password: 'sb-SECRET' });
    child.info('child');
    root.info('root');
    expect(out.text()).not.toMatch(/SECRET/);
    const [g, c, r] = out.lines().map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(g).toMatchObject({ session: 'S1', auth: { user: 'u', pass: REDACTED }, msg: 'grandchild' });
    expect(c).toMatchObject({ session: 'S1', Password: REDACTED, msg: 'child' });
    expect(r).not.toHaveProperty('session');
    expect(r).not.toHaveProperty('Password');
  });

  it('redacts secrets nested six levels down', () => {
    const out = captureStream();
    createLogger({ destination: out.stream }).info({ a: { b: { c: { d: { e: { f: { pass: 'deep-SECRET' } } } } } } }, 'deep');
    expect(out.text()).not.toContain('deep-SECRET');
  });

  it('leaves the logged object itself untouched', () => {
    const config = { next_hop: { host: '127.0.0.1', auth: { user: 'relay', pass: 'still-here' } }, listeners: [{ password: 'x' }] };
    createLogger({ destination: captureStream().stream }).info({ config }, 'loaded');
    expect(config.next_hop.auth.pass).toBe('still-here');
    expect(config.listeners[0]?.password).toBe('x');
  });

  it('writes to a file descriptor', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dkimgate-log-'));
    try {
      const file = join(dir, 'log.jsonl');
      const fd = openSync(file, 'w');
      createLogger({ destination: fd }).error({ password: 'nope-SECRET' }, 'to fd');
      closeSync(fd);
      const text = await readFile(file, 'utf8');
      expect(JSON.parse(text)).toMatchObject({ level: 'error', msg: 'to fd', password: REDACTED });
      expect(text).not.toContain('nope-SECRET');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
