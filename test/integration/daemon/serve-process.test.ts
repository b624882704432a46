// `dkimgate serve` as a real process (node dist/cli.js): SIGHUP reloads (broken config refused, good one applied)
// and SIGTERM drains a transaction in flight. Touches: the processes it spawns (ended by PID), temp dirs, loopback sockets.

import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { BASIC_MESSAGE, rsaKey } from '../../helpers/dkim-test-kit.js';
import { waitFor } from '../../helpers/daemon-harness.js';
import { startNextHopServer, type NextHopServerOptions, type RunningNextHop } from '../../helpers/next-hop-server.js';
import { openUnlinkedSpools } from '../../helpers/spool-files.js';
import { spawnServe, startServeProcess, stopAllServeProcesses, type StartedServe } from '../../helpers/serve-process.js';


import { RawClient, type Reply } from '../../helpers/raw-smtp-client.js';

// A reload in another process loads keys and config again: give it room on a loaded machine.
const RELOAD_WAIT_MS = 15_000;

/** Sends one message up to the final dot; returns the client and the end-of-data reply's promise. */
async function startTransaction(port: number, data: Buffer): Promise<{ client: RawClient; final: Promise<Reply> }> {
  const client = await RawClient.open(port);
  expect((await client.command('EHLO client.test')).code).toBe(250);
  expect((await client.command(`MAIL FROM:<${/^From: .*<([^>]+)>/m.exec(data.toString('latin1'))?.[1] ?? 'a@b.test'}>`)).code).toBe(250);
  expect((await client.command('RCPT TO:<bob@example.org>')).code).toBe(250);
  expect((await client.command('DATA')).code).toBe(354);
  client.socket.write(data);
  client.socket.write('.\r\n');
  return { client, final: client.read(10_000) };
}

async function sendMail(port: number, data: Buffer): Promise<Reply> {
  const { client, final } = await startTransaction(port, data);
  try {
    return await final;
  } finally {
    client.close();
  }
}

const closers: Array<() => Promise<void>> = [];

/** A next hop for one test, closed after it. */
async function nextHop(options?: NextHopServerOptions): Promise<RunningNextHop> {
  const hop = await startNextHopServer(options);
  closers.push(() => hop.close());
  return hop;
}

function serve(configPath: string): Promise<StartedServe> {
  return startServeProcess(configPath);
}

let dir = '';
const key = rsaKey(2048);

function configYaml(nextHopPort: number, domains: string[], extra = '', limits = 'drain_timeout: 10'): string {
  return [
    'authserv_id: gate.test.example',
    'listen:',
    '  - { host: 127.0.0.1, port: 0, protocol: smtp }',
    `next_hop: { host: 127.0.0.1, port: ${nextHopPort} }`,
    'relay_hosts: [127.0.0.1/32]',
    `limits: { ${limits} }`,
    'sign:',
    `  key: "${dir}/%{d}/%{s}.pem"`,
    '  domains:',
    ...domains.map((d) => `    ${d}: { selector: rsa1 }`),
    extra,
    '',
  ].join('\n');
}

function fromDomain(domain: string): Buffer {
  return Buffer.from(BASIC_MESSAGE.toString('latin1').replace(/^From: .*$/m, `From: Alice <alice@${domain}>`), 'latin1');
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dkimgate-serve-'));
  for (const d of ['example.com', 'added.test']) {
    await mkdir(join(dir, d), { recursive: true });
    await writeFile(join(dir, d, 'rsa1.pem'), key.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  }
});

afterEach(async () => {
  await stopAllServeProcesses();
  for (const c of closers.splice(0)) await c();
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function hasSignature(data: Buffer): boolean {
  const text = data.toString('latin1');
  return /^DKIM-Signature:/im.test(text.slice(0, text.indexOf('\r\n\r\n')));
}

describe('dkimgate serve (a real process)', () => {
  it('refuses a broken configuration on SIGHUP, says so in the log, and keeps relaying mail', async () => {
    const hop = await nextHop();
    const configPath = join(dir, 'broken.yaml');
    await writeFile(configPath, configYaml(hop.port, ['example.com']));
    const served = await serve(configPath);
    await writeFile(configPath, configYaml(hop.port, ['example.com'], 'no_such_key: 1'));
    served.child.kill('SIGHUP');
    const refused = await waitFor(() => served.lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('reload refused')), RELOAD_WAIT_MS);
    // the field every refusal logs (it used to be `problem`, one string, for a broken file)
    expect(refused.problems).toEqual([`${configPath}:11: no_such_key: unknown key`]);
    expect((await sendMail(served.port, BASIC_MESSAGE)).code).toBe(250);
    expect(hop.messages).toHaveLength(1);
    expect(hasSignature(hop.messages[0]!.data)).toBe(true);
  });

  it('signs a newly configured domain after SIGHUP with a good configuration', async () => {
    const hop = await nextHop();
    const configPath = join(dir, 'good.yaml');
    await writeFile(configPath, configYaml(hop.port, ['example.com']));
    const served = await serve(configPath);
    expect((await sendMail(served.port, fromDomain('added.test'))).code).toBe(250);
    expect(hasSignature(hop.messages[0]!.data)).toBe(false);
    await writeFile(configPath, configYaml(hop.port, ['example.com', 'added.test']));
    served.child.kill('SIGHUP');
    await waitFor(() => served.lines.find((l) => l.msg === 'configuration reloaded'), RELOAD_WAIT_MS);
    expect((await sendMail(served.port, fromDomain('added.test'))).code).toBe(250);
    expect(hop.messages).toHaveLength(2);
    expect(hop.messages[1]!.data.toString('latin1')).toMatch(/^DKIM-Signature:[^]*?d=added\.test/);
  });

  it('logs the warnings config check prints, at start and at each reload', async () => {
    const hop = await nextHop();
    const configPath = join(dir, 'warned.yaml');
    const authUser = configYaml(hop.port, ['example.com']).replace('sign:\n', 'sign:\n  sign_condition: auth_user\n');
    await writeFile(configPath, authUser);
    const served = await serve(configPath);
    const warned = (l: { level?: unknown; msg?: unknown }) =>
      l.level === 'warn' && typeof l.msg === 'string' && l.msg.includes('sign.sign_condition: warning: auth_user needs SMTP AUTH, but users_file is not set');
    // it used to be silent: nothing signed, and only `config check` said why
    expect(served.lines.filter(warned)).toEqual([expect.objectContaining({ msg: expect.stringMatching(/^\S*warned\.yaml:\d+: /) })]);
    served.child.kill('SIGHUP');
    await waitFor(() => served.lines.find((l) => l.msg === 'configuration reloaded'), RELOAD_WAIT_MS);
    expect(served.lines.filter(warned)).toHaveLength(2);
  });

  it('finishes a transaction in flight on SIGTERM, exits 0, and then refuses new connections', async () => {
    // A next hop that answers end-of-data about a second late.
    const delayed = await nextHop({ onData: { kind: 'delay', ms: 1000 } });
    const hopPort = delayed.port;

    const configPath = join(dir, 'term.yaml');
    await writeFile(configPath, configYaml(hopPort, ['example.com']));
    const served = await serve(configPath);
    const { client, final } = await startTransaction(served.port, BASIC_MESSAGE);
    try {
      await waitFor(() => delayed.received.length > 0);
      served.child.kill('SIGTERM');
      const reply = await final;
      expect(reply.code).toBe(250);
    } finally {
      client.close();
    }
    const code = await Promise.race([served.exited, new Promise((r) => setTimeout(() => r('timeout'), 10_000))]);
    expect(code).toBe(0);
    const refused = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port: served.port });
      s.once('connect', () => {
        s.destroy();
        resolve(false);
      });
      s.once('error', () => resolve(true));
    });
    expect(refused).toBe(true);
  });

  it.each([
    ['', false],
    [' (its connection from before a reload that moved next_hop)', true],
  ])('stops at drain_timeout even when the next hop never answers end-of-data%s: 451 to the client, logged ambiguous, exit 0', async (_name, reload) => {
    const stuck = await nextHop({ onData: { kind: 'delay', ms: 30_000 } });
    const configPath = join(dir, 'drain.yaml');
    await writeFile(configPath, configYaml(stuck.port, ['example.com'], '', 'drain_timeout: 2'));
    const served = await serve(configPath);
    const { client, final } = await startTransaction(served.port, BASIC_MESSAGE);
    const told = final.then((reply) => reply.text, (err: Error) => err.message);
    try {
      await waitFor(() => stuck.received.length > 0);
      if (reload) {
        const other = await nextHop();
        await writeFile(configPath, configYaml(other.port, ['example.com'], '', 'drain_timeout: 2'));
        served.child.kill('SIGHUP');
        await served.waitForLine((l) => l.msg === 'configuration reloaded', RELOAD_WAIT_MS);
      }
      const stopping = Date.now();
      served.child.kill('SIGTERM');
      expect(await served.exited).toBe(0);
      // drain_timeout plus the moment the ended transaction takes to answer, not the next hop's 30 s
      expect(Date.now() - stopping).toBeLessThan(6000);
      expect(await told).toMatch(/^451 4\.4\.2 /);
      expect(served.lines.find((l) => l.msg === 'drain_timeout passed: ending the transactions still in flight')).toMatchObject({ inFlight: 1, nextHopConnectionsEnded: 1 });
      // the next hop had the final dot and may deliver it: a duplicate is possible, and the line says so
      expect(served.lines.find((l) => l.msg === 'message')).toMatchObject({ outcome: 'ambiguous', relay: 'ambiguous' });
    } finally {
      client.close();
    }
  });

  it('stops at drain_timeout with a client stalled mid-DATA: 421 4.3.2 to it, nothing relayed, exit 0', async () => {
    const hop = await nextHop();
    const configPath = join(dir, 'stall.yaml');
    await writeFile(configPath, configYaml(hop.port, ['example.com'], '', 'drain_timeout: 2'));
    const served = await serve(configPath);
    const client = await RawClient.open(served.port);
    try {
      for (const [command, code] of [['EHLO client.test', 250], ['MAIL FROM:<alice@example.com>', 250], ['RCPT TO:<bob@example.org>', 250], ['DATA', 354]] as const) {
        expect((await client.command(command)).code).toBe(code);
      }
      client.socket.write('From: Alice <alice@example.com>\r\nSubject: half a message');
      const stopping = Date.now();
      served.child.kill('SIGTERM');
      const told = client.read(10_000).then((r) => r.text, (err: Error) => err.message);
      expect(await served.exited).toBe(0);
      // drain_timeout, then the settle time for transactions ended at the next hop
      expect(Date.now() - stopping).toBeLessThan(6000);
      expect(await told).toMatch(/^421 4\.3\.2 /);
      expect(hop.messages).toHaveLength(0);
    } finally {
      client.close();
    }
  });

  it('refuses to start, and a reload, with a spool_dir where no file can be created, naming file, line and key as config check does', async () => {
    const hop = await nextHop();
    const missing = join(dir, 'no-such-spool');
    const configPath = join(dir, 'spool-dir.yaml');
    await writeFile(configPath, configYaml(hop.port, ['example.com'], '', `spool_dir: "${missing}"`));
    const failed = spawnServe(['--config', configPath]);
    expect(await failed.exited).toBe(1);
    expect(failed.stderr()).toBe(`dkimgate serve: cannot start: ${configPath}:6: limits.spool_dir: cannot create spool files in ${missing}: no such directory\n`);

    await writeFile(configPath, configYaml(hop.port, ['example.com']));
    const served = await serve(configPath);
    await writeFile(configPath, configYaml(hop.port, ['example.com'], '', `spool_dir: "${missing}"`));
    served.child.kill('SIGHUP');
    const refused = await served.waitForLine((l) => l.msg === 'reload refused: keeping the running configuration', RELOAD_WAIT_MS);
    expect(refused.problems).toEqual([`${configPath}:6: limits.spool_dir: cannot create spool files in ${missing}: no such directory`]);
    expect((await sendMail(served.port, fromDomain('example.com'))).code).toBe(250);
  });

  it('says once, without a stack trace, that the listen address is taken', async () => {
    const hop = await nextHop();
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const port = (taken.address() as AddressInfo).port;
      const configPath = join(dir, 'port-taken.yaml');
      await writeFile(configPath, configYaml(hop.port, ['example.com']).replace('port: 0,', `port: ${port},`));
      const failed = spawnServe(['--config', configPath]);
      expect(await failed.exited).toBe(1);
      expect(failed.stderr()).toBe(`dkimgate serve: cannot listen on 127.0.0.1:${port}: address already in use; change listen in the config\n`);
      expect(failed.lines.filter((l) => l.level !== 'info')).toEqual([]);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('exits when the metrics address is taken, closing the SMTP listener it had opened', async () => {
    const hop = await nextHop();
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const port = (taken.address() as AddressInfo).port;
      const configPath = join(dir, 'metrics-taken.yaml');
      await writeFile(configPath, configYaml(hop.port, ['example.com'], `metrics: { host: 127.0.0.1, port: ${port} }`));
      const failed = spawnServe(['--config', configPath]);
      // it used to say it cannot listen, then go on serving mail half-started (no SIGHUP or SIGTERM handling)
      const outcome = await Promise.race([failed.exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 10_000))]);
      expect(outcome).toBe(1);
      expect(failed.stderr()).toBe(`dkimgate serve: cannot listen on 127.0.0.1:${port}: address already in use; change metrics in the config\n`);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('refuses to start with a STARTTLS certificate it cannot serve, naming the file and the fault', async () => {
    const hop = await nextHop();
    const tls = { key: join(dir, 'tls-key.pem'), cert: join(dir, 'tls-cert.pem') };
    await writeFile(tls.key, key.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await writeFile(tls.cert, 'not a certificate\n');
    const configPath = join(dir, 'tls-files.yaml');
    const yaml = configYaml(hop.port, ['example.com']).replace('protocol: smtp }', `protocol: smtp, tls: { key: "${tls.key}", cert: "${tls.cert}" } }`);
    expect(yaml).toContain('tls-cert.pem');
    await writeFile(configPath, yaml);
    const failed = spawnServe(['--config', configPath]);
    expect(await failed.exited).toBe(1);
    expect(failed.stderr()).toBe(
      `dkimgate serve: cannot start: ${configPath}:3: listen[0].tls.cert: TLS certificate ${tls.cert} is not a PEM certificate (no readable "-----BEGIN CERTIFICATE-----" block)\n`,
    );
  });

  it('leaves no spool file behind when killed (kill -9) while relaying a spooled message', async () => {
    const delayed = await nextHop({ onData: { kind: 'delay', ms: 5000 } });
    const spoolDir = await mkdtemp(join(dir, 'spool-'));
    const configPath = join(dir, 'kill.yaml');
    await writeFile(configPath, configYaml(delayed.port, ['example.com'], '', `spill_threshold: 0, spool_dir: "${spoolDir}"`));
    const served = await serve(configPath);
    const { client, final } = await startTransaction(served.port, Buffer.concat([BASIC_MESSAGE, Buffer.from('x'.repeat(998) + '\r\n', 'latin1')]));
    const told = final.then((reply) => `${reply.code}`, (err: Error) => err.message);
    try {
      await waitFor(() => delayed.received.length > 0);
      // the body is in a spool file the daemon holds open: it has no name in the directory
      expect(openUnlinkedSpools(served.child.pid!, spoolDir)).toHaveLength(1);
      expect(await readdir(spoolDir)).toEqual([]);
      served.child.kill('SIGKILL');
      expect(await served.exited).toBeNull();
      expect(await told).toMatch(/^connection closed/); // never a 250 for it
      expect(await readdir(spoolDir)).toEqual([]);
    } finally {
      client.close();
    }
  });
});
