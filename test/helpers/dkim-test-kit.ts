// Keys, signing and a table-driven TXT lookup for engine tests: no DNS, a fixed clock.

import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createSigner, signMessage, type SignerConfig } from '../../src/dkim/sign.js';
import type { TxtLookup, TxtLookupOutcome } from '../../src/dkim/txt-lookup.js';

export const NOW = 1_700_000_000;

export interface TestKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The p= value. */
  p: string;
  record: string;
}

export function rsaKey(bits = 2048): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  const p = (publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64');
  return { privateKey, publicKey, p, record: `v=DKIM1; k=rsa; p=${p}` };
}

export function ed25519Key(): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const p = (publicKey.export({ type: 'spki', format: 'der' }) as Buffer).subarray(12).toString('base64');
  return { privateKey, publicKey, p, record: `v=DKIM1; k=ed25519; p=${p}` };
}

export function crlf(text: string): Buffer {
  return Buffer.from(text.replace(/\r?\n/g, '\r\n'), 'utf8');
}

export const BASIC_MESSAGE = crlf(
  [
    'Received: from client.example.com by mx.example.com; Tue, 14 Nov 2023 22:13:20 +0000',
    'From: Alice <alice@example.com>',
    'To: Bob <bob@example.org>',
    'Subject: Lunch on  Thursday?',
    'Date: Tue, 14 Nov 2023 22:13:20 +0000',
    'Message-ID: <lunch-1@example.com>',
    '',
    'Hi Bob,',
    '',
    'Are you free for lunch on Thursday?  The usual place.',
    '',
    'Alice',
    '',
  ].join('\n'),
);

export async function sign(message: Buffer, key: TestKey, over: Partial<SignerConfig> = {}, now = NOW): Promise<Buffer> {
  const signer = createSigner({
    signingDomain: 'example.com',
    selector: 's1',
    privateKey: key.privateKey,
    algorithm: key.privateKey.asymmetricKeyType === 'ed25519' ? 'ed25519-sha256' : 'rsa-sha256',
    headerCanon: 'relaxed',
    bodyCanon: 'relaxed',
    headerList: 'From:From:To:Subject:Date:Message-ID',
    ...over,
  });
  const out = await signMessage(message, [signer], now);
  if (out.kind !== 'signed') throw new Error(out.reason);
  return Buffer.concat([Buffer.from(out.fields.join(''), 'latin1'), message]);
}

/** A lookup answering from a table: a string or string[] is found, an outcome kind is returned as is. */
export function tableLookup(table: Record<string, string | string[] | TxtLookupOutcome['kind']>): TxtLookup {
  return async (name) => {
    const entry = table[name.toLowerCase()];
    if (entry === undefined) return { kind: 'nxdomain' };
    if (Array.isArray(entry)) return { kind: 'found', records: entry };
    if (entry === 'nxdomain' || entry === 'nodata' || entry === 'timeout' || entry === 'servfail') return { kind: entry };
    return { kind: 'found', records: [entry] };
  };
}

/** `message` with its From field replaced by one in `domain` (the signing domain of a test signer). */
export function fromDomain(message: Buffer, domain: string): Buffer {
  return Buffer.from(message.toString('latin1').replace(/^From: .*$/m, `From: Someone <someone@${domain}>`), 'latin1');
}

/** Replaces text inside the first DKIM-Signature field (or anywhere), for crafting broken signatures. */
export function edit(message: Buffer, from: string | RegExp, to: string): Buffer {
  const text = message.toString('latin1');
  const next = text.replace(from, to);
  if (next === text) throw new Error(`edit: ${String(from)} not found`);
  return Buffer.from(next, 'latin1');
}
