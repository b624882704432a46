// `dkimgate verify` (the built CLI) on signatures whose labels a sender chose to be hostile: the field it prepends
// is read by python3-authres, and --json gives the labels as text.
// Touches: a temp dir with a zone file and messages; runs the built CLI; /usr/bin/python3 (authres).

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authresParse } from '../../helpers/authres.js';
import { runCli } from '../../helpers/run-cli.js';

let dir = '';
let zone = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dkimgate-verify-cli-'));
  zone = join(dir, 'zone.txt');
  // a revoked key: every signature gets as far as the key lookup, keeping its labels, and is permerror
  await writeFile(zone, 'sel._domainkey.bank.test. TXT "v=DKIM1; p="\n');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const B = 'AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/';

function signature(identity: string, b: string): string {
  return `DKIM-Signature: v=1; a=rsa-sha256; d=bank.test; s=sel; i=${identity}; c=relaxed/relaxed; h=from; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=${b}\r\n`;
}

async function verify(message: Buffer, json: boolean) {
  const path = join(dir, 'message.eml');
  await writeFile(path, message);
  return runCli(['verify', '--config', '/dev/null', '--authserv-id', 'mx.test', '--dns-zone', zone, ...(json ? ['--json'] : []), path]);
}

const IDENTITIES = ['"q\\"u (x) \\\\y"@bank.test', 'üser@bank.test', 'dkim=pass@bank.test', '(c)x@bank.test'];

describe('dkimgate verify with hostile labels', () => {
  it('prepends one field that authres reads as our results only, each header.b naming one signature', async () => {
    // every b= shares its first 40 characters with the others
    const fields = IDENTITIES.map((identity, n) => signature(identity, `${B.slice(0, 40)}${n}${B.slice(41)}`));
    const message = Buffer.from(`${fields.join('')}From: üser@bank.test\r\nSubject: x\r\n\r\nbody\r\n`, 'utf8');
    const run = await verify(message, false);
    expect(run.status).toBe(0);
    const field = run.stdout.slice(0, run.stdout.search(/\r\n(?![ \t])/) + 2);
    const [parsed] = authresParse([field]);
    expect(parsed!.error).toBeUndefined();
    expect(parsed!.authservId).toBe('mx.test');
    expect(parsed!.results!.map((r) => [r.method, r.result])).toEqual(IDENTITIES.map(() => ['dkim', 'permerror']));
    const headerB = parsed!.results!.map((r) => r.props.find(([name]) => name === 'header.b')?.[1]);
    expect(headerB).toEqual(IDENTITIES.map((_, n) => `${B.slice(0, 40)}${n}`));
    // nothing after our field but the message as it was
    expect(run.stdoutBytes.subarray(Buffer.byteLength(field, 'latin1')).equals(message)).toBe(true);
  });

  it('gives a UTF-8 i= as text in --json, not its bytes one per character', async () => {
    const message = Buffer.from(`${signature('üser@bank.test', B)}From: üser@bank.test\r\n\r\nbody\r\n`, 'utf8');
    const run = await verify(message, true);
    const out = JSON.parse(run.stdout) as { signatures: { identity: string; result: string }[] };
    expect(out.signatures).toMatchObject([{ identity: 'üser@bank.test', result: 'permerror' }]);
  });
});
