import { describe, expect, it } from 'vitest';
import { createSigner, estimateSignatureFieldBytes, signMessage, type SignerConfig } from '../../../src/dkim/sign.js';
import { crlf, ed25519Key, NOW, rsaKey, type TestKey } from '../../helpers/dkim-test-kit.js';

const rsa1024 = rsaKey(1024);
const rsa4096 = rsaKey(4096);
const ed = ed25519Key();

const MESSAGE = crlf(
  [
    'From: Alice Example <alice@mail.example.com>',
    'To: Bob <bob@example.org>, Carol <carol@example.org>',
    'Cc: Dave <dave@example.org>',
    'Reply-To: list@example.com',
    'Subject: ' + 'long subject '.repeat(20),
    'Date: Tue, 14 Nov 2023 22:13:20 +0000',
    'Message-ID: <estimate-1@mail.example.com>',
    'Received: by a', 'Received: by b', 'Received: by c',
    '',
    'Body.',
    '',
  ].join('\n'),
);

describe('estimateSignatureFieldBytes', () => {
  it.each<[string, TestKey, number, Partial<SignerConfig>]>([
    ['RSA-1024', rsa1024, 1024, {}],
    ['RSA-4096 with i=, x= and l=', rsa4096, 4096, { agentId: 'alice@mail.example.com', lifetimeHours: 24, bodyLengthLimit: true }],
    ['Ed25519 oversigning every field', ed, 256, { headerList: 'From:From:To:To:Cc*:Reply-To:Subject:Date:Message-ID:Received+' }],
    ['RSA-4096 with z=', rsa4096, 4096, { copyHeaders: true }],
  ])('is at least the size of the field a %s signer adds', async (_name, key, bits, over) => {
    const signer = createSigner({
      signingDomain: 'mail.example.com',
      selector: 'selector2026',
      privateKey: key.privateKey,
      algorithm: key.privateKey.asymmetricKeyType === 'ed25519' ? 'ed25519-sha256' : 'rsa-sha256',
      headerCanon: 'relaxed',
      bodyCanon: 'relaxed',
      headerList: 'From:From:Reply-To:Subject:Date:To:Cc?:Message-ID?:MIME-Version?:Content-Type?',
      ...over,
    });
    const out = await signMessage(MESSAGE, [signer], NOW);
    if (out.kind !== 'signed') throw new Error(out.reason);
    const actual = Buffer.byteLength(out.fields[0]!);
    const estimate = estimateSignatureFieldBytes(signer, bits);
    expect(estimate).toBeGreaterThanOrEqual(actual);
    // an estimate, not a wild guess (z= is estimated at a fixed 4 KB)
    expect(estimate).toBeLessThan(actual + (over.copyHeaders ? 5000 : 600));
  });
});
