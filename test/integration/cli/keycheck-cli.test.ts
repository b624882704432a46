import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useDnsServers } from '../../helpers/dns-server.js';
import { runCli } from '../../helpers/run-cli.js';

let dir: string;
let published: string;
// dnsmasq holding no record (every name NXDOMAIN) and a server that never answers
const servers = useDnsServers({});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dkimgate-keycheck-'));
  const a = await runCli(['keygen', '--domain', 'example.com', '--selector', 'rsa2026', '--keys-dir', 'keys'], { cwd: dir });
  const b = await runCli(['keygen', '--domain', 'example.com', '--selector', 'ed2026', '--type', 'ed25519', '--keys-dir', 'keys'], { cwd: dir });
  const other = await runCli(['keygen', '--domain', 'example.org', '--selector', 's1', '--keys-dir', join(dir, 'elsewhere')]);
  expect([a.status, b.status, other.status]).toEqual([0, 0, 0]);
  published = join(dir, 'published.zone');
  writeFileSync(published, `${a.stdout}${b.stdout}`);
  // example.org publishes a key that is not the one on disk.
  writeFileSync(join(dir, 'wrong.zone'), other.stdout.replace('s1._domainkey.example.org.', 's1._domainkey.example.org.'));
  await runCli(['keygen', '--domain', 'example.org', '--selector', 's1', '--keys-dir', 'keys'], { cwd: dir });
  writeFileSync(
    join(dir, 'dkimgate.yaml'),
    [
      'sign:',
      '  domains:',
      '    example.com:',
      '      selectors:',
      '        - { selector: rsa2026 }',
      '        - { selector: ed2026, digest: ed25519-sha256 }',
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'two-domains.yaml'), ['sign:', '  domains:', '    example.com: { selector: rsa2026 }', '    example.org: { selector: s1 }', ''].join('\n'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('dkimgate keycheck', () => {
  it('says ok for every selector whose published key matches, and exits 0', async () => {
    const r = await runCli(['keycheck', '--config', 'dkimgate.yaml', '--dns-zone', published], { cwd: dir });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^ok +rsa2026\._domainkey\.example\.com: published key matches keys\/example\.com\/rsa2026\.pem \(rsa 2048 bits\)/);
    expect(lines[1]).toMatch(/^ok +ed2026\._domainkey\.example\.com: .*ed25519/);
  });

  it('names the mismatching and the unpublished selector and exits 1', async () => {
    const r = await runCli(['keycheck', '--config', 'two-domains.yaml', '--dns-zone', published, '--dns-zone', join(dir, 'wrong.zone')], { cwd: dir });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^ok +rsa2026\._domainkey\.example\.com/m);
    expect(r.stdout).toMatch(/^FAIL s1\._domainkey\.example\.org: published key differs from the private key/m);
  });

  it('fails a selector that publishes another valid key beside ours, whichever comes first', async () => {
    const stale = readFileSync(join(dir, 'wrong.zone'), 'latin1').replace('s1._domainkey.example.org.', 'rsa2026._domainkey.example.com.');
    for (const [name, text] of [['stale-first.zone', stale + readFileSync(published, 'latin1')], ['stale-last.zone', readFileSync(published, 'latin1') + stale]]) {
      writeFileSync(join(dir, name!), text!);
      const r = await runCli(['keycheck', '--config', 'dkimgate.yaml', '--dns-zone', name!], { cwd: dir });
      expect(r.status, name).toBe(1);
      expect(r.stdout).toMatch(/^FAIL rsa2026\._domainkey\.example\.com: another valid key record \(rsa 2048 bits\) is published beside ours: .*remove it/m);
      expect(r.stdout).toMatch(/^ok +ed2026\._domainkey\.example\.com/m);
    }
  });

  it('fails a record whose v=DKIM1 is not its first tag, naming the rule, though verifiers use it', async () => {
    const reordered = join(dir, 'reordered.zone');
    writeFileSync(reordered, readFileSync(published, 'latin1').replace('"v=DKIM1; k=rsa; ', '"k=rsa; v=DKIM1; '));
    const r = await runCli(['keycheck', '--config', 'dkimgate.yaml', '--dns-zone', reordered], { cwd: dir });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^FAIL rsa2026\._domainkey\.example\.com: v=DKIM1 is not the first tag: RFC 6376 §3\.6\.1 wants it first/m);
    expect(r.stdout).toMatch(/^ok +ed2026\._domainkey\.example\.com/m);
  });

  it('fails a t=s record when the identity (i=) is in a subdomain of d=, which receivers refuse, and passes it for an identity in d=', async () => {
    const strict = join(dir, 'strict.zone');
    writeFileSync(strict, readFileSync(published, 'latin1').replace('"v=DKIM1; k=rsa; ', '"v=DKIM1; k=rsa; t=s; " "'));
    const config = (identity: string): string => {
      const name = `strict-${identity.replace(/\W/g, '_')}.yaml`;
      writeFileSync(join(dir, name), ['sign:', `  identity: "${identity}"`, '  domains:', '    example.com: { selector: rsa2026 }', ''].join('\n'));
      return name;
    };
    const sub = await runCli(['keycheck', '--config', config('alice@mail.%{d}'), '--dns-zone', strict], { cwd: dir });
    expect(sub.stderr).toBe("");
    expect(sub.status).toBe(1);
    expect(sub.stdout).toMatch(
      /^FAIL rsa2026\._domainkey\.example\.com: record t=s forbids an i= in a subdomain of example\.com, but identity is alice@mail\.example\.com: receivers give dkim=permerror/m,
    );
    const same = await runCli(['keycheck', '--config', config('alice@%{d}'), '--dns-zone', strict], { cwd: dir });
    expect(same.stdout).toMatch(/^ok +rsa2026\._domainkey\.example\.com/m);
    expect(same.status).toBe(0);
  });

  it('reports a selector that is not published at all', async () => {
    const r = await runCli(['keycheck', '--config', 'dkimgate.yaml', '--dns-server', servers.dns.server], { cwd: dir });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^FAIL rsa2026\._domainkey\.example\.com: not published \(no such name\); publish the record dkimgate keygen printed$/m);
  });

  it.each([
    ['refused (servfail)', () => '127.0.0.1:1', 'servfail'],
    ['unanswered (timeout)', () => servers.silent.server, 'timeout'],
  ])('does not call a selector unpublished when the lookup is %s', async (_name, server, kind) => {
    writeFileSync(join(dir, 'short-timeout.yaml'), `${readFileSync(join(dir, 'dkimgate.yaml'), 'utf8')}dns: { timeout: 500 }\n`);
    const r = await runCli(['keycheck', '--config', 'short-timeout.yaml', '--dns-server', server()], { cwd: dir });
    expect(r.status).toBe(1);
    expect(r.stdout).toContain(
      `FAIL rsa2026._domainkey.example.com: the lookup failed (${kind}), so it is not known whether it is published; check dns.servers or --dns-server\n`,
    );
  });
});
