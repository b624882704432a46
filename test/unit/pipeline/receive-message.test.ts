import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BodyHasher } from '../../../src/dkim/body-hasher.js';
import { headerMemoryInUse } from '../../../src/pipeline/header-memory.js';
import { receiveMessage, type ReceiveOptions } from '../../../src/pipeline/receive-message.js';

const spoolDir = mkdtempSync(join(tmpdir(), 'dkimgate-spool-'));
afterAll(() => rmSync(spoolDir, { recursive: true, force: true }));
const OPTS: ReceiveOptions = { maxHeaderBytes: 4096, maxHeaderFields: 20, maxMessageBytes: 1 << 20, spillThresholdBytes: 1024, spoolDir, lineEndings: 'normalize' };
const SPEC = { canon: 'relaxed', hash: 'sha256', limit: null } as const;

function chunked(text: string, cuts: number[]): Readable {
  const buf = Buffer.from(text, 'latin1');
  const parts: Buffer[] = [];
  let prev = 0;
  for (const c of [...cuts, buf.length].map((x) => Math.min(x, buf.length)).sort((a, b) => a - b)) {
    parts.push(buf.subarray(prev, c));
    prev = c;
  }
  return Readable.from(parts);
}

async function readAll(gen: AsyncIterable<Buffer>): Promise<string> {
  const parts: Buffer[] = [];
  for await (const p of gen) parts.push(p);
  return Buffer.concat(parts).toString('latin1');
}

function expectedHash(body: string): string {
  const h = new BodyHasher([SPEC]);
  h.update(Buffer.from(body, 'latin1'));
  h.finish();
  return h.result(SPEC).digest.toString('base64');
}

describe('receiving a message from the DATA stream', () => {
  it('splits header and body wherever the chunks are cut, and hashes the body as it arrives', async () => {
    const header = 'From: a@example.com\r\nSubject: hi\r\n\r\n';
    const body = 'Hello  world \r\n'.repeat(200);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat({ max: header.length + 200 }), { maxLength: 6 }), async (cuts) => {
        const out = await receiveMessage(chunked(header + body, cuts), OPTS, () => [SPEC]);
        if (out.kind !== 'received') throw new Error(out.kind);
        const m = out.message;
        expect(m.header.toString('latin1')).toBe(header);
        expect(m.framed.fields.map((f) => f.lowerName)).toEqual(['from', 'subject']);
        expect(await readAll(m.body.read())).toBe(body);
        expect(m.bodyHashes.result(SPEC).digest.toString('base64')).toBe(expectedHash(body));
        expect(m.body.spilled).toBe(true);
        await m.dispose();
      }),
      { numRuns: 100 },
    );
    expect(readdirSync(spoolDir)).toEqual([]);
  });

  it('treats a message without an empty line as all header, and one starting with CRLF as all body', async () => {
    const headerOnly = await receiveMessage(chunked('From: a@example.com\r\nSubject: x\r\n', []), OPTS, () => [SPEC]);
    expect(headerOnly.kind === 'received' && headerOnly.message.header.toString()).toBe('From: a@example.com\r\nSubject: x\r\n');
    const bodyOnly = await receiveMessage(chunked('\r\nbody\r\n', [1]), OPTS, () => [SPEC]);
    if (bodyOnly.kind !== 'received') throw new Error(bodyOnly.kind);
    expect(bodyOnly.message.header.toString()).toBe('\r\n');
    expect(await readAll(bodyOnly.message.body.read())).toBe('body\r\n');
  });

  it('normalizes bare LF before the header is framed and the body hashed', async () => {
    const out = await receiveMessage(chunked('From: a@example.com\nSubject: x\n\nline\n', [5, 20]), OPTS, () => [SPEC]);
    if (out.kind !== 'received') throw new Error(out.kind);
    expect(out.message.header.toString()).toBe('From: a@example.com\r\nSubject: x\r\n\r\n');
    expect(await readAll(out.message.body.read())).toBe('line\r\n');
    expect(out.message.sizeBytes).toBe('From: a@example.com\r\nSubject: x\r\n\r\nline\r\n'.length);
  });

  it.each([
    ['a bare CR in a header', 'From: a@example.com\rBcc: x\r\n\r\nb\r\n', 'bare_cr'],
    ['a NUL in the body', 'From: a@example.com\r\n\r\nb\0\r\n', 'nul'],
    ['a header section over the limit', `From: a@example.com\r\nX: ${'y'.repeat(5000)}\r\n\r\nb\r\n`, 'header_too_large'],
    ['21 header fields (the limit is 20)', `From: a@example.com\r\n${'X: y\r\n'.repeat(20)}\r\nb\r\n`, 'too_many_header_fields'],
    ['21 header fields and no body', `From: a@example.com\r\n${'X: y\r\n'.repeat(20)}`, 'too_many_header_fields'],
    ['a header whose first line starts with a tab', '\tdkim=pass\r\nFrom: a@example.com\r\n\r\nb\r\n', 'header_starts_folded'],
    ['a header-only message whose first line starts with a space', ' x\r\nFrom: a@example.com\r\n', 'header_starts_folded'],
  ])('refuses %s, reading the rest of the stream', async (_name, text, reason) => {
    const stream = chunked(text, [10]);
    const out = await receiveMessage(stream, OPTS, () => [SPEC]);
    expect(out).toEqual({ kind: 'refused', reason });
    expect(stream.readableEnded).toBe(true);
  });

  it('takes 20 header fields, however many lines they are folded over', async () => {
    const text = `From: a@example.com\r\n${'X: y\r\n z\r\n\tw\r\n'.repeat(19)}\r\nb\r\n`;
    const out = await receiveMessage(chunked(text, [10]), OPTS, () => [SPEC]);
    if (out.kind !== 'received') throw new Error(out.kind);
    expect(out.message.framed.fields).toHaveLength(20);
    await out.message.dispose();
  });

  it('refuses a message over the size limit', async () => {
    const out = await receiveMessage(chunked(`From: a@example.com\r\n\r\n${'x'.repeat(3000)}\r\n`, [100]), { ...OPTS, maxMessageBytes: 2000 }, () => []);
    expect(out).toEqual({ kind: 'refused', reason: 'message_too_large' });
  });

  it('reports a spool that cannot be written', async () => {
    const out = await receiveMessage(chunked(`From: a@example.com\r\n\r\n${'x'.repeat(3000)}\r\n`, []), { ...OPTS, spoolDir: '/nonexistent/dir' }, () => []);
    expect(out.kind).toBe('spool_failed');
  });
});

describe('finding the end of the header', () => {
  it('finds the empty line when it arrives split over several tiny and empty chunks', async () => {
    const header = 'From: a@example.com\r\nSubject: hi\r\n\r\n';
    const text = `${header}body\r\n`;
    for (const cuts of [[34, 34], [33, 34, 35], [34, 35], [32, 33, 34, 35, 36]]) {
      const out = await receiveMessage(chunked(text, cuts), OPTS, () => [SPEC]);
      if (out.kind !== 'received') throw new Error(out.kind);
      expect(out.message.header.toString('latin1')).toBe(header);
      expect(await readAll(out.message.body.read())).toBe('body\r\n');
    }
  });
});

describe('the process-wide budget for header bytes', () => {
  const header = (kb: number) => `From: a@example.com\r\n${`X-Pad: ${'p'.repeat(1016)}\r\n`.repeat(kb)}\r\nbody\r\n`;
  const opts = { ...OPTS, maxHeaderBytes: 1 << 20, headerMemoryBudgetBytes: 20 * 1024 };

  it('counts a header until its message is disposed, and defers one that would pass the budget (the rest is read)', async () => {
    const before = headerMemoryInUse();
    const first = await receiveMessage(chunked(header(12), [3000, 9000]), opts, () => []);
    if (first.kind !== 'received') throw new Error(first.kind);
    expect(headerMemoryInUse() - before).toBe(first.message.header.length);
    // 12 KB held: another 12 KB header does not fit in 20 KB
    const stream = chunked(header(12), [4000]);
    expect(await receiveMessage(stream, opts, () => [])).toEqual({ kind: 'busy', reason: 'header_memory' });
    expect(stream.readableEnded).toBe(true);
    expect(headerMemoryInUse() - before).toBe(first.message.header.length);
    await first.message.dispose();
    expect(headerMemoryInUse()).toBe(before);
    // room again
    const again = await receiveMessage(chunked(header(12), []), opts, () => []);
    expect(again.kind).toBe('received');
    if (again.kind === 'received') await again.message.dispose();
    expect(headerMemoryInUse()).toBe(before);
  });

  it('gives the bytes back when the message is refused for another reason', async () => {
    const before = headerMemoryInUse();
    const out = await receiveMessage(chunked(`${header(4)}\0`, [100]), opts, () => []);
    expect(out).toEqual({ kind: 'refused', reason: 'nul' });
    expect(headerMemoryInUse()).toBe(before);
  });
});
