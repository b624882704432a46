// The daemon's sign options end to end: a YAML sign section with per-domain and per-selector overrides, mail relayed
// through the daemon, and the signatures judged by two independent verifiers (dkimpy and Perl Mail::DKIM) that fetch
// the keys from a real DNS server (dnsmasq). Touches: loopback sockets, temp dirs, /usr/bin/python3, /usr/bin/perl.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { formatConfigProblem } from '../../../src/config/load-config.js';
import { parseConfigText } from '../../../src/config/parse-config-text.js';
import type { Config } from '../../../src/config/config.js';
import { crlf } from '../../helpers/dkim-test-kit.js';
import { Harness, headerOf } from '../../helpers/daemon-harness.js';
import { startDnsServer, type RunningDnsServer } from '../../helpers/dns-server.js';
import { sendMail } from '../../helpers/raw-smtp-client.js';
import { jsonLines, run } from '../../interop/peer-process.js';

const PEERS = join(import.meta.dirname, '../../interop/peers');
const harness = new Harness();
let dns: RunningDnsServer;
let work = '';

beforeAll(async () => {
  const keys = await harness.setup();
  // example.com has rsa1 and ed1 (the harness's keys); example.org signs for its subdomain mail.example.org.
  await harness.writeKey('example.org', 'rsa1', keys.rsa);
  dns = await startDnsServer({
    txt: {
      'rsa1._domainkey.example.com': keys.rsa.record,
      'ed1._domainkey.example.com': keys.ed.record,
      'rsa1._domainkey.example.org': keys.rsa.record,
    },
  });
  work = await mkdtemp(join(tmpdir(), 'dkimgate-sign-options-'));
});

afterEach(() => harness.cleanup());

afterAll(async () => {
  await dns?.stop();
  await harness.dispose();
  if (work) await rm(work, { recursive: true, force: true });
});

/** The harness config with `signYaml` (a YAML sign section, indented two spaces) decoded by the real config parser. */
function configWith(signYaml: string): Config {
  const parsed = parseConfigText(`sign:\n  key: "${harness.keyDir()}/%{d}/%{s}.pem"\n${signYaml}`, 'sign-options.yaml');
  if (parsed.kind !== 'ok') throw new Error(parsed.problems.map(formatConfigProblem).join('\n'));
  return harness.config({ sign: parsed.config.sign }, dns.server);
}

/** Each peer's verdict per DKIM-Signature, top first: "selector:result". */
async function peerVerdicts(message: Buffer): Promise<{ dkimpy: string[]; mailDkim: string[] }> {
  const file = join(work, `msg-${Math.random().toString(36).slice(2)}.eml`);
  await writeFile(file, message);
  const py = jsonLines(await run('/usr/bin/python3', [join(PEERS, 'dkimpy-verify.py'), '--dns', dns.server, file], 'dkimpy-verify'));
  const pl = jsonLines(await run('/usr/bin/perl', [join(PEERS, 'mail-dkim-verify.pl'), '--dns', dns.server, file], 'mail-dkim-verify'));
  return {
    dkimpy: py.map((v) => `${String(v.selector)}:${String(v.result)}`),
    mailDkim: pl.map((v) => `${String(v.selector)}:${String(v.result)}`),
  };
}

/** The unfolded tags of the n-th DKIM-Signature field (top first). */
function tagsOf(message: Buffer, n = 0): Map<string, string> {
  const fields = headerOf(message).split(/\r\n(?![ \t])/).filter((f) => /^DKIM-Signature:/i.test(f));
  const field = fields[n]!.replace(/\r\n[ \t]/g, ' ');
  const tags = new Map<string, string>();
  for (const part of field.slice(field.indexOf(':') + 1).split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1) tags.set(part.slice(0, eq).trim(), part.slice(eq + 1).replace(/\s/g, ''));
  }
  return tags;
}

const MESSAGE = (from: string): Buffer =>
  crlf(
    [
      'Received: from a.example by b.example; Tue, 14 Nov 2023 22:13:20 +0000',
      'Received: from c.example by d.example; Tue, 14 Nov 2023 22:13:19 +0000',
      `From: Alice <alice@${from}>`,
      'To: Bob <bob@example.net>',
      'Subject: totals | q3; a=b  done',
      'X-Tag: one',
      'X-Tag: two',
      'X-Tag: three',
      'Date: Tue, 14 Nov 2023 22:13:20 +0000',
      '',
      'Hello Bob,',
      '',
      'the totals.',
      '',
    ].join('\n'),
  );

describe('sign options through the daemon, judged by dkimpy and Mail::DKIM', () => {
  it('applies global options, per-domain overrides and per-selector overrides, RSA and Ed25519 side by side', async () => {
    const gate = await harness.startGate(
      configWith(
        [
          '  headerlist: "From:Subject"',
          '  domains:',
          '    example.com:',
          '      headerlist: "From:From:Received+:Received:X-Tag*:Cc:Cc?:Reply-To+:Subject:To"',
          '      copy_headers: true',
          '      identity: "alice@mail.%{d}"',
          '      lifetime: 48',
          '      selectors:',
          '        - { selector: rsa1, header_canon: simple, body_canon: simple, body_length_limit: true }',
          '        - { selector: ed1, digest: ed25519-sha256, lifetime: 1 }',
        ].join('\n') + '\n',
      ),
    );
    expect((await sendMail(gate.port, { data: MESSAGE('example.com') })).final[0]?.code).toBe(250);
    const relayed = gate.nextHop.messages[0]!.data;
    const rsaTags = tagsOf(relayed, 0);
    const edTags = tagsOf(relayed, 1);
    // h= bottom-up: From oversigned, both Received plus an assertion, all three X-Tag, Cc asserted once by "Cc"
    // (Cc? asserts nothing), Reply-To+ nothing, then Subject and To.
    expect(rsaTags.get('h')).toBe('From:From:Received:Received:Received:X-Tag:X-Tag:X-Tag:Cc:Subject:To');
    expect(edTags.get('h')).toBe(rsaTags.get('h'));
    expect(rsaTags.get('c')).toBe('simple/simple');
    expect(edTags.get('c')).toBe('relaxed/relaxed');
    expect(rsaTags.get('i')).toBe('alice@mail.example.com');
    expect(Number(rsaTags.get('x')) - Number(rsaTags.get('t'))).toBe(48 * 3600);
    expect(Number(edTags.get('x')) - Number(edTags.get('t'))).toBe(3600);
    expect(rsaTags.get('l')).toMatch(/^\d+$/);
    expect(edTags.has('l')).toBe(false);
    // z=: | ; = and blanks quoted-printable (RFC 6376 §3.5), copies in h= order (bottom-up for X-Tag)
    expect(rsaTags.get('z')).toBe(
      'From:Alice=20<alice@example.com>|Received:from=20c.example=20by=20d.example=3B=20Tue,=2014=20Nov=202023=2022:13:19=20+0000|' +
        'Received:from=20a.example=20by=20b.example=3B=20Tue,=2014=20Nov=202023=2022:13:20=20+0000|X-Tag:three|X-Tag:two|X-Tag:one|' +
        'Subject:totals=20=7C=20q3=3B=20a=3Db=20=20done|To:Bob=20<bob@example.net>',
    );
    const verdicts = await peerVerdicts(relayed);
    expect(verdicts.dkimpy).toEqual(['rsa1:pass', 'ed1:pass']);
    // (Debian's Mail::DKIM 1.2023 does not know ed25519-sha256 and says invalid for it.)
    expect(verdicts.mailDkim[0]).toBe('rsa1:pass');
  });

  it('signs a subdomain as its base_domain: d=, %{d} in key and identity, and both verifiers pass', async () => {
    const gate = await harness.startGate(
      configWith(['  identity: "@%{d}"', '  domains:', '    mail.example.org: { selector: rsa1, base_domain: example.org }'].join('\n') + '\n'),
    );
    expect((await sendMail(gate.port, { data: MESSAGE('Mail.Example.ORG.') })).final[0]?.code).toBe(250);
    const relayed = gate.nextHop.messages[0]!.data;
    const tags = tagsOf(relayed);
    expect(tags.get('d')).toBe('example.org');
    expect(tags.get('i')).toBe('@example.org');
    expect(await peerVerdicts(relayed)).toEqual({ dkimpy: ['rsa1:pass'], mailDkim: ['rsa1:pass'] });
  });
});
