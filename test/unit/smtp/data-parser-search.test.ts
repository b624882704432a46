// The DATA parser with its byte loop replaced by indexOf (smtp-server-adapter, item 7) decides exactly as smtp-server's
// own: random messages full of dots, CRs and LFs, cut into random chunks, give the same content, the same end and the
// same commands after the end to both. The property that matters: no chunking makes either see a different end of
// data (SMTP smuggling) or a different message.

import fc from 'fast-check';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { describe, expect, it } from 'vitest';
import { installSmtpServerAdapter } from '../../../src/smtp/smtp-server-adapter.js';

type Feed = (chunk: Buffer, done: () => void) => void;
const proto = SMTPStream.prototype as unknown as { _feedDataStream: Feed };
const original = proto._feedDataStream;
installSmtpServerAdapter();
const patched = proto._feedDataStream;

/** The parts of SMTPStream this drives. */
interface TestParser {
  _feedDataStream: Feed;
  dataBytes: number;
  oncommand: (command: Buffer, callback: () => void) => void;
  startDataMode(): NodeJS.ReadableStream;
  continue(): void;
  write(chunk: Buffer): boolean;
}

interface Parsed {
  content: string;
  ended: boolean;
  dataBytes: number;
  commands: string[];
}

const ticks = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
};

async function parse(feed: Feed, chunks: Buffer[]): Promise<Parsed> {
  const parser = new SMTPStream() as unknown as TestParser;
  parser._feedDataStream = feed;
  const commands: string[] = [];
  parser.oncommand = (command, callback) => {
    commands.push(command.toString('latin1'));
    callback();
  };
  const stream = parser.startDataMode();
  const parts: Buffer[] = [];
  let ended = false;
  stream.on('data', (c: Buffer) => parts.push(c));
  stream.on('end', () => (ended = true));
  for (const chunk of chunks) parser.write(chunk);
  await ticks(40);
  if (ended) {
    parser.continue();
    await ticks(40);
  }
  return { content: Buffer.concat(parts).toString('latin1'), ended, dataBytes: parser.dataBytes, commands };
}

/** Pieces that make the parser's decisions: line starts, dots, bare CR and LF, terminators. */
const piece = fc.constantFrom('.', '..', '\r', '\n', '\r\n', '\r\n.', '\r\n..', '.\r\n', '\r\n.\r\n', 'a', 'bc', 'x'.repeat(40));
const message = fc
  .tuple(fc.array(piece, { maxLength: 40 }), fc.boolean(), fc.constantFrom('', 'QUIT\r\n', 'MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n'))
  .map(([pieces, terminate, after]) => Buffer.from(pieces.join('') + (terminate ? '\r\n.\r\n' : '') + after, 'latin1'));

function cut(buf: Buffer, points: number[]): Buffer[] {
  const at = [...new Set(points.map((p) => p % (buf.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const p of [...at, buf.length]) {
    if (p > from) chunks.push(buf.subarray(from, p));
    from = Math.max(from, p);
  }
  return chunks;
}

describe('DATA parser search (indexOf) against smtp-server’s byte loop', () => {
  it('the patch is installed and differs from the original function', () => {
    expect(patched).not.toBe(original);
  });

  it('gives the same content, end and following commands for random messages in random chunks', async () => {
    await fc.assert(
      fc.asyncProperty(message, fc.array(fc.nat(), { maxLength: 12 }), async (buf, points) => {
        const chunks = cut(buf, points);
        const ours = await parse(patched, chunks);
        const theirs = await parse(original, chunks);
        expect(ours).toEqual(theirs);
      }),
      { numRuns: 400 },
    );
  });

  it('ends at the first CRLF.CRLF and unescapes dots, whatever the chunking (a fixed case both must get right)', async () => {
    const wire = Buffer.from('Subject: x\r\n\r\n..leading dot\r\nline\r\n.\r\nQUIT\r\n', 'latin1');
    for (let split = 0; split <= wire.length; split++) {
      const got = await parse(patched, cut(wire, [split]));
      expect(got).toEqual({ content: 'Subject: x\r\n\r\n.leading dot\r\nline\r\n', ended: true, dataBytes: 34, commands: ['QUIT'] });
    }
  });
});
