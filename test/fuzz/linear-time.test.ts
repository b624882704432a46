// Time against input size for the worst shapes found: for each, the work at 8n must cost less than
// 20 times the work at n (linear growth is 8; quadratic would be 64), medians of 5 runs after a warm-up.
// Each test prints its figures ("LINEAR <shape> n=… 8n=… ratio=…") for the record.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findOurAuthResults } from '../../src/auth-results/remove-auth-results.js';
import { parseConfigText } from '../../src/config/parse-config-text.js';
import { BodyHasher } from '../../src/dkim/body-hasher.js';
import { parseKeyRecord } from '../../src/dkim/key-record.js';
import { parseSignature } from '../../src/dkim/signature.js';
import { parseTagList } from '../../src/dkim/tag-list.js';
import { verifyMessage } from '../../src/dkim/verify.js';
import { parseZoneFile } from '../../src/dns/zone-file.js';
import { authorDomains } from '../../src/mail/author-domains.js';
import { frameMessage } from '../../src/mail/header-fields.js';
import { createSmtpReplyParser } from '../../src/relay/smtp-reply.js';
import { BASIC_MESSAGE, ed25519Key, NOW, sign, tableLookup, type TestKey } from '../helpers/dkim-test-kit.js';

/** Growth allowed from n to 8n: linear is 8, quadratic 64; the slack absorbs a loaded machine. */
const MAX_RATIO = 20;
/** Below this a run is timer noise: the smaller size is measured as at least this long. */
const FLOOR_MS = 0.5;
const RUNS = 5;
const figures: string[] = [];

let ed: TestKey;
beforeAll(() => {
  ed = ed25519Key();
});
afterAll(() => {
  console.log(figures.join('\n'));
});

async function medianMs(run: () => unknown): Promise<number> {
  await run(); // warm-up: compile, first allocation
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const started = performance.now();
    await run();
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b)[Math.floor(RUNS / 2)]!;
}

/**
 * Measures `make(n)` and `make(8n)` (make returns the work to time) and checks the growth. A ratio
 * over the limit is measured up to twice more before it counts: a GC pause or a busy neighbour must
 * not fail the test, while quadratic work stays over it every time.
 */
async function expectLinear(shape: string, n: number, make: (size: number) => Promise<() => unknown> | (() => unknown)): Promise<void> {
  const small = await make(n);
  const large = await make(8 * n);
  let ratio = Infinity;
  let smallMs = 0;
  let largeMs = 0;
  for (let attempt = 0; attempt < 3 && ratio >= MAX_RATIO; attempt++) {
    const smallTry = await medianMs(small);
    const largeTry = await medianMs(large);
    const ratioTry = largeTry / Math.max(smallTry, FLOOR_MS);
    if (ratioTry < ratio) [ratio, smallMs, largeMs] = [ratioTry, smallTry, largeTry];
  }
  figures.push(`LINEAR ${shape} n=${n}: ${smallMs.toFixed(2)} ms, 8n: ${largeMs.toFixed(2)} ms, ratio ${ratio.toFixed(1)}`);
  expect(ratio, `${shape}: ${smallMs.toFixed(2)} ms at n=${n}, ${largeMs.toFixed(2)} ms at 8n`).toBeLessThan(MAX_RATIO);
}

const HEADER_END = BASIC_MESSAGE.indexOf('\r\n\r\n') + 2;
const BASIC_HEADER = BASIC_MESSAGE.subarray(0, HEADER_END).toString('latin1');
const BASIC_BODY = BASIC_MESSAGE.subarray(HEADER_END).toString('latin1');
const lookupTxt = () => tableLookup({ 's1._domainkey.example.com': ed.record });

/** Verifies `message` and requires the first signature's result. */
function verifies(message: Buffer, result = 'pass'): () => Promise<void> {
  const lookup = lookupTxt();
  return async () => {
    const report = await verifyMessage(message, { lookupTxt: lookup, nowSec: NOW });
    expect(report.signatures[0]?.result).toBe(result);
  };
}

describe('hostile shapes cost time linear in their size (8n against n)', () => {
  it.each([
    ['whitespace-only lines', ' \t \r\n'],
    ['lines of trailing whitespace', 'a \t\r\n'],
    ['empty lines', '\r\n'],
  ])('hashes a relaxed body of %s', async (name, line) => {
    const spec = { canon: 'relaxed', hash: 'sha256', limit: null } as const;
    await expectLinear(`relaxed body of ${name}`, 1024 * 1024, (bytes) => {
      const body = Buffer.from(line.repeat(Math.ceil(bytes / line.length)));
      return () => {
        const hasher = new BodyHasher([spec]);
        hasher.update(body);
        hasher.finish();
      };
    });
  });

  it('verifies a signature over a Subject folded over 10,000 lines', async () => {
    await expectLinear('Subject folded over n lines', 1250, async (lines) => {
      const subject = `Subject: a${'\r\n\t b  c'.repeat(lines)}\r\n`;
      return verifies(await sign(Buffer.from(subject + BASIC_HEADER + BASIC_BODY, 'latin1'), ed, { headerList: 'From:Subject' }));
    });
  });

  it('verifies a signature over a header value of 5 MB', async () => {
    await expectLinear('one header value of n bytes', 640 * 1024, async (bytes) => {
      const field = `X-Big: ${'ab '.repeat(Math.ceil(bytes / 3))}\r\n`;
      return verifies(await sign(Buffer.from(field + BASIC_HEADER + BASIC_BODY, 'latin1'), ed, { headerList: 'From:X-Big' }));
    });
  });

  it('frames, reads From and finds our Authentication-Results among 10,000 header fields', async () => {
    await expectLinear('n header fields', 1250, (count) => {
      const header = Buffer.from(`${'Authentication-Results: other.example; dkim=pass\r\nX-A: b\r\n'.repeat(count / 2)}${BASIC_HEADER}\r\n`, 'latin1');
      return () => {
        const framed = frameMessage(header);
        expect(authorDomains(framed)).toEqual(['example.com']);
        findOurAuthResults(framed.fields, header, 'gate.test.example');
      };
    });
  });

  it('refuses a DKIM-Signature with 10,000 h= entries', async () => {
    await expectLinear('h= of n entries', 1250, (entries) => {
      const value = ` v=1; a=ed25519-sha256; d=example.com; s=s1; bh=AAAA; b=AAAA; h=${Array<string>(entries).fill('From').join(':')}`;
      return () => parseSignature(value);
    });
  });

  it('parses tag lists of repeated tags, empty segments and separators', async () => {
    // 8n distinct tags: about what a 64 KB signature field (the cap) can hold.
    await expectLinear('n distinct tags', 1600, (count) => {
      const list = Array.from({ length: count }, (_, i) => `t${i}=v`).join(';');
      return () => parseTagList(list);
    });
    // 8n stays under the 64 KB cap of a signature field, so both sizes are parsed, not refused.
    await expectLinear('n empty segments before b=', 3000, (count) => {
      const value = ` v=1;${' ;'.repeat(count)} b=AAAA`;
      return () => expect(parseSignature(value)).toMatchObject({ kind: 'error', reason: 'missing_tag' });
    });
    // 8n stays under the 8 KB cap of a key record.
    await expectLinear('key record of n unknown tags', 120, (count) => {
      const record = `v=DKIM1; k=ed25519; ${Array.from({ length: count }, (_, i) => `n${i}=x`).join("; ")}; p=${ed.p}`;
      return () => expect(parseKeyRecord(record).kind).toBe('ok');
    });
  });

  it('evaluates 5 of n signatures on one message', async () => {
    const one = (await sign(BASIC_MESSAGE, ed)).subarray(0, -BASIC_MESSAGE.length);
    await expectLinear('n signatures', 125, (count) => verifies(Buffer.concat([...Array<Buffer>(count).fill(one), BASIC_MESSAGE])));
  });

  it('refuses YAML alias bombs, and reads a long flat configuration', async () => {
    await expectLinear('YAML nested aliases n wide', 50, (n) => {
      const selectors = Array<string>(n).fill('*s').join(', ');
      const domains = Array.from({ length: n }, (_, i) => `    d${i}.example: *d`).join('\n');
      const text = `sign:\n  domains:\n    d.example: &d\n      selectors: [&s { selector: s1 }, ${selectors}]\n${domains}\n`;
      return () => expect(parseConfigText(text, 'bomb.yaml').kind).toBe('error');
    });
    await expectLinear('YAML relay_hosts of n entries', 250, (n) => {
      const text = `relay_hosts:\n${Array.from({ length: n }, (_, i) => `  - 10.${(i >> 8) & 255}.${i & 255}.0/24`).join('\n')}\n`;
      return () => expect(parseConfigText(text, 'long.yaml').kind).toBe('ok');
    });
    // a hosting provider's thousands of domains: parsed again at every SIGHUP, on the event loop
    await expectLinear('YAML sign.domains of n domains', 500, (n) => {
      const text = `sign:\n  domains:\n${Array.from({ length: n }, (_, i) => `    d${i}.example: { selector: s1 }`).join('\n')}\n`;
      return () => expect(parseConfigText(text, 'domains.yaml').kind).toBe('ok');
    });
  });

  it('parses a zone file of many records and a next hop that sends many replies', async () => {
    await expectLinear('zone file of n records', 500, (n) => {
      const text = `$ORIGIN example.com.\n${Array.from({ length: n }, (_, i) => `s${i}._domainkey 300 IN TXT ( "v=DKIM1; k=ed25519; "\n  "p=${ed.p}" )`).join('\n')}\n`;
      return () => expect(parseZoneFile(text).kind).toBe('ok');
    });
    await expectLinear('n SMTP replies in one read', 1000, (n) => {
      const bytes = Buffer.from('250-2.1.5 ok\r\n250 2.1.5 recipient ok\r\n'.repeat(n));
      return () => expect(createSmtpReplyParser().push(bytes)).toHaveLength(n);
    });
  });
});
