// docker/: no Docker engine runs here, so what can be checked is checked without one. The Dockerfile is linted
// (dockerfile-utils) and its promises read from it; the image's entrypoint, CMD and HEALTHCHECK run directly
// on this machine against the built dist/ with the image's config file and environment overrides; the compose
// file is validated against the compose-spec schema (dclint) and its dkimgate service is run the same way.
// Touches: the processes it starts (ended by PID), temp dirs, loopback sockets.

import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { DEFAULTS } from '../../../src/config/defaults.js';
import { applyEnvironment, ENVIRONMENT_OVERRIDES } from '../../../src/config/environment-overrides.js';
import { parseConfigText } from '../../../src/config/parse-config-text.js';
import { crlf } from '../../helpers/dkim-test-kit.js';
import { startDkimgate, startNodeFlags, waitFor, type RunningDkimgate } from '../../helpers/dkimgate-process.js';
import { freePort, startNextHopServer, type RunningNextHop } from '../../helpers/next-hop-server.js';
import { RawClient } from '../../helpers/raw-smtp-client.js';
import { runCli } from '../../helpers/run-cli.js';

const execFileAsync = promisify(execFile);
const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const DOCKER = join(ROOT, 'docker');
const dockerfileText = readFileSync(join(DOCKER, 'Dockerfile'), 'utf8');

type Instruction = { keyword: string; args: string };

/** Dockerfile instructions: comments dropped, continuation lines joined. */
function instructions(text: string): Instruction[] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const space = line.search(/\s/);
      return { keyword: line.slice(0, space).toUpperCase(), args: line.slice(space + 1).trim() };
    });
}

const dockerfile = instructions(dockerfileText);
const jsonArgs = (keyword: string): string[] => JSON.parse(dockerfile.find((i) => i.keyword === keyword)!.args) as string[];
/** The image's ENV values. */
const imageEnv: Record<string, string> = Object.fromEntries(
  dockerfile.filter((i) => i.keyword === 'ENV').flatMap((i) => [...i.args.matchAll(/([A-Z_]+)=(\S+)/g)].map((m) => [m[1]!, m[2]!])),
);
/** Container path -> repository path, from the COPY lines that take files from the build context. */
const copiedFrom = new Map<string, string>(
  dockerfile
    .filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'))
    .flatMap((i) => {
      const parts = i.args.split(/\s+/);
      const target = parts.pop()!;
      return parts.map((source): [string, string] => [target.endsWith('/') ? `${target}${source.split('/').pop()}` : target, source]);
    }),
);
/** The repository path of a file the image holds at `containerPath`. */
function fromImage(containerPath: string): string {
  for (const [target, source] of copiedFrom) if (target === containerPath || target === `${containerPath}/`) return join(ROOT, source);
  const app = '/app/';
  if (containerPath.startsWith(app)) return join(ROOT, containerPath.slice(app.length));
  throw new Error(`the image does not hold ${containerPath}`);
}

const cleanups: Array<() => Promise<void>> = [];
let work = '';

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'dkimgate-docker-'));
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** Runs the image's ENTRYPOINT + CMD on this machine, with the image's ENV under `env`, and its files where dist/ is. */
async function runImageCommand(env: Record<string, string>, hop: RunningNextHop): Promise<RunningDkimgate> {
  const [entrypoint] = jsonArgs('ENTRYPOINT');
  const cmd = jsonArgs('CMD');
  const gate = await startDkimgate({
    command: [fromImage(entrypoint!), ...cmd] as [string, ...string[]],
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      ...imageEnv,
      DKIMGATE_CONFIG: fromImage(imageEnv.DKIMGATE_CONFIG!),
      DKIMGATE_NEXT_HOP: `127.0.0.1:${hop.port}`,
      ...env,
    },
    cwd: work,
  });
  cleanups.push(() => gate.stop());
  return gate;
}

/** The image's HEALTHCHECK command, run here with the daemon's environment. */
function healthcheck(env: NodeJS.ProcessEnv): Promise<{ status: number; stderr: string }> {
  const check = dockerfile.find((i) => i.keyword === 'HEALTHCHECK')!.args;
  const [program, script] = JSON.parse(check.slice(check.indexOf('CMD') + 3).trim()) as string[];
  expect(program).toBe('node');
  return execFileAsync(process.execPath, [fromImage(script!)], { env, encoding: 'utf8', timeout: 10_000 }).then(
    () => ({ status: 0, stderr: '' }),
    (err: { code?: number; stderr?: string }) => ({ status: err.code ?? 1, stderr: err.stderr ?? '' }),
  );
}

/** Sends one message from `localAddress` (optionally through a trusted proxy's XFORWARD) and returns the final reply code. */
async function sendFrom(port: number, data: Buffer, opts: { localAddress?: string; xforward?: string } = {}): Promise<number> {
  const client = await RawClient.open(port, opts.localAddress);
  try {
    expect((await client.command('EHLO client.test')).code).toBe(250);
    if (opts.xforward) expect((await client.command(`XFORWARD ADDR=${opts.xforward}`)).code).toBe(250);
    expect((await client.command('MAIL FROM:<alice@example.com>')).code).toBe(250);
    expect((await client.command('RCPT TO:<bob@example.org>')).code).toBe(250);
    expect((await client.command('DATA')).code).toBe(354);
    client.write(data);
    return (await client.command('.', 10_000)).code;
  } finally {
    client.close();
  }
}

const MESSAGE = crlf('From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: from a container\nDate: Tue, 14 Nov 2023 22:13:20 +0000\n\nHello.\n');

describe('docker/Dockerfile', () => {
  it('passes the dockerfile-utils linter', () => {
    const bin = join(ROOT, 'node_modules', 'dockerfile-utils', 'bin', 'dockerfile-utils');
    const run = spawnSync(process.execPath, [bin, 'lint', join(DOCKER, 'Dockerfile')], { encoding: 'utf8', timeout: 20_000 });
    expect([run.status, run.stdout, run.stderr]).toEqual([0, '', '']);
  });

  it('builds in one Node 24 slim stage and runs in another, as a numeric non-root user, with a HEALTHCHECK', () => {
    const from = dockerfile.filter((i) => i.keyword === 'FROM');
    expect(from).toHaveLength(2);
    expect(dockerfile.find((i) => i.keyword === 'ARG')?.args).toMatch(/^NODE_IMAGE=node:24-[a-z]+-slim$/);
    expect(from.map((i) => i.args)).toEqual(['${NODE_IMAGE} AS build', '${NODE_IMAGE}']);
    const user = dockerfile.filter((i) => i.keyword === 'USER').pop()?.args ?? '';
    expect(user).toMatch(/^[1-9]\d*:[1-9]\d*$/);
    expect(dockerfile.findIndex((i) => i.keyword === 'USER')).toBeGreaterThan(dockerfile.findIndex((i) => i.keyword === 'FROM' && !i.args.includes(' AS ')));
    expect(dockerfile.find((i) => i.keyword === 'HEALTHCHECK')?.args).toMatch(/^--interval=\S+ --timeout=\S+ .*CMD \[/);
    expect(jsonArgs('CMD')).toEqual(['serve']);
  });

  it('copies only files that exist and that its .dockerignore lets through (keys never enter the build context)', async () => {
    const ignore = (await readFile(join(DOCKER, 'Dockerfile.dockerignore'), 'utf8')).split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
    expect(ignore[0]).toBe('*');
    const allowed = ignore.slice(1).map((l) => l.replace(/^!/, ''));
    const sources = dockerfile
      .filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    expect(sources.length).toBeGreaterThan(3);
    for (const source of sources) {
      expect(existsSync(join(ROOT, source)), source).toBe(true);
      expect(allowed.some((a) => source === a || source.startsWith(a) || `${source}/` === a), `${source} is excluded by Dockerfile.dockerignore`).toBe(true);
    }
    expect(allowed.some((a) => a.startsWith('keys') || a.startsWith('docker/secrets'))).toBe(false);
  });
});

describe("the image's start command and HEALTHCHECK, run directly", () => {
  it('serves the image config with the environment overrides, is node itself (exec), and answers /healthz', async () => {
    const hop = await startNextHopServer();
    cleanups.push(() => hop.close());
    const [listen, metrics] = [await freePort(), await freePort()];
    const overrides = {
      DKIMGATE_LISTEN: `127.0.0.1:${listen}`,
      DKIMGATE_METRICS: `127.0.0.1:${metrics}`,
      DKIMGATE_AUTHSERV_ID: 'gate.docker.test',
      DKIMGATE_RELAY_HOSTS: '127.0.0.5/32',
    };
    const gate = await runImageCommand(overrides, hop);
    expect(gate.lines.find((l) => l.msg === 'configuration')).toMatchObject({
      file: join(DOCKER, 'dkimgate.yaml'),
      environment: ['DKIMGATE_AUTHSERV_ID', 'DKIMGATE_LISTEN', 'DKIMGATE_NEXT_HOP', 'DKIMGATE_RELAY_HOSTS', 'DKIMGATE_METRICS'],
    });
    expect(gate.listeners).toEqual([{ protocol: 'smtp', host: '127.0.0.1', port: listen }]);
    // exec: the process we started is node running dist/cli.js, so it gets SIGTERM and SIGHUP itself
    // with the Node flags of the other start paths (README, Development: bench:e2e)
    expect(readFileSync(`/proc/${gate.pid}/cmdline`, 'utf8').split('\0')).toEqual(expect.arrayContaining([...startNodeFlags(), join(ROOT, 'dist/cli.js'), 'serve']));

    expect(await sendFrom(listen, MESSAGE, { localAddress: '127.0.0.9' })).toBe(250);
    const relayed = hop.messages[0]!.data.toString('latin1');
    expect(relayed).toMatch(/^Authentication-Results: gate\.docker\.test;\s*dkim=none/);

    const env = { PATH: process.env.PATH ?? '', ...imageEnv, DKIMGATE_CONFIG: fromImage(imageEnv.DKIMGATE_CONFIG!), ...overrides };
    expect(await healthcheck(env)).toEqual({ status: 0, stderr: '' });
    await gate.stop();
    expect(await gate.exited).toBe(0);
    const down = await healthcheck(env);
    expect(down.status).toBe(1);
    expect(down.stderr).toMatch(/^healthcheck: http:\/\/127\.0\.0\.1:\d+\/healthz did not answer/);
  });

  it('HEALTHCHECK fails and says why when metrics are off', async () => {
    const result = await healthcheck({ PATH: process.env.PATH ?? '', DKIMGATE_CONFIG: fromImage(imageEnv.DKIMGATE_CONFIG!), DKIMGATE_METRICS: 'off' });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('healthcheck: metrics is off, so there is no /healthz to ask');
  });

  it('passes other commands through, and treats bare options as options of serve', async () => {
    const env = { PATH: process.env.PATH ?? '' };
    const entrypoint = fromImage(jsonArgs('ENTRYPOINT')[0]!);
    const keygen = spawnSync(entrypoint, ['keygen', '--help'], { env, encoding: 'utf8', timeout: 20_000 });
    expect([keygen.status, keygen.stdout]).toEqual([0, expect.stringMatching(/keygen/)]);
    const serveHelp = spawnSync(entrypoint, ['--help'], { env, encoding: 'utf8', timeout: 20_000 });
    expect([serveHelp.status, serveHelp.stdout]).toEqual([0, expect.stringMatching(/^usage: dkimgate serve/)]);
  });

  it('refuses a bad override at start-up, naming the variable (exit 2)', async () => {
    const entrypoint = fromImage(jsonArgs('ENTRYPOINT')[0]!);
    const run = spawnSync(entrypoint, [], {
      env: { PATH: process.env.PATH ?? '', DKIMGATE_CONFIG: fromImage(imageEnv.DKIMGATE_CONFIG!), DKIMGATE_NEXT_HOP: 'postfix' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('environment: DKIMGATE_NEXT_HOP: "postfix": write HOST:PORT');
  });
});

describe('docker/docker-compose.yml', () => {
  const composePath = join(DOCKER, 'docker-compose.yml');
  const compose = parseYaml(readFileSync(composePath, 'utf8')) as {
    services: Record<string, Record<string, unknown> & { environment?: Record<string, string>; build?: Record<string, string> }>;
    secrets: Record<string, { file: string }>;
  };
  const dkimgate = compose.services.dkimgate!;

  it('is valid by the compose-spec schema (dclint)', () => {
    const bin = join(ROOT, 'node_modules', 'dclint', 'bin', 'dclint.cjs');
    const style = ['service-keys-order', 'services-alphabetical-order', 'top-level-properties-order'];
    const run = spawnSync(process.execPath, [bin, composePath, '--color', 'false', '--disable-rule', ...style], { encoding: 'utf8', timeout: 30_000 });
    expect([run.status, run.stdout.trim(), run.stderr.trim()]).toEqual([0, '', '']);
  });

  it('runs dkimgate as a sidecar in the network namespace of Postfix, which takes the recipe of config/postfix/', () => {
    expect(dkimgate.network_mode).toBe('service:postfix');
    expect(dkimgate.build).toEqual({ context: '..', dockerfile: 'docker/Dockerfile' });
    const inline = compose.services.postfix!.build!.dockerfile_inline!;
    const copied = /COPY (.+) \/tmp\/dkimgate-recipe\//.exec(inline)![1]!.split(/\s+/);
    expect(copied).toEqual(['config/postfix/main.cf', 'config/postfix/master.cf']);
    for (const file of copied) expect(existsSync(join(ROOT, file)), file).toBe(true);
  });

  it("sets Postfix up as its inline Dockerfile says (run here on a copy of Debian's config): postconf accepts the result", async () => {
    const steps = instructions(compose.services.postfix!.build!.dockerfile_inline!);
    const dir = join(work, 'compose-postfix');
    const recipe = join(dir, 'recipe');
    await execFileAsync('mkdir', ['-p', join(dir, 'etc'), recipe]);
    // what the postfix package installs ("No configuration" leaves master.cf and no main.cf)
    await execFileAsync('cp', ['/etc/postfix/master.cf', join(dir, 'etc', 'master.cf')]);
    const copy = steps.find((i) => i.keyword === 'COPY')!.args.split(/\s+/);
    expect(copy.pop()).toBe('/tmp/dkimgate-recipe/');
    for (const source of copy) await execFileAsync('cp', [join(ROOT, source), recipe]);
    const setup = steps.filter((i) => i.keyword === 'RUN' && !i.args.includes('apt-get'));
    expect(setup).toHaveLength(1);
    const script = setup[0]!.args.replaceAll('/etc/postfix', join(dir, 'etc')).replaceAll('/tmp/dkimgate-recipe', recipe);
    await execFileAsync('sh', ['-ec', script], { env: { ...process.env, MAIL_CONFIG: join(dir, 'etc') } });
    const postconf = (...args: string[]) => execFileAsync('/usr/sbin/postconf', ['-c', join(dir, 'etc'), ...args], { encoding: 'utf8' });
    for (const flag of ['-n', '-M', '-P']) expect((await postconf(flag)).stderr, `postconf ${flag}`).toBe('');
    expect((await postconf('-h', 'content_filter')).stdout.trim()).toBe('dkimgate:[127.0.0.1]:10027');
    const chroots = (await postconf('-F', '*/*/chroot')).stdout.trim().split('\n');
    expect(chroots.length).toBeGreaterThan(10);
    expect(chroots.filter((line) => !line.endsWith('= n'))).toEqual([]);
    expect((await postconf('-h', 'myhostname', 'maillog_file')).stdout).toBe('mx.example.net\n/dev/stdout\n'); // edited there, not in /etc/postfix
    expect(steps.find((i) => i.keyword === 'CMD')?.args).toBe('["postfix", "start-fg"]');
  });

  it("gives dkimgate more time to stop than limits.drain_timeout, and environment values dkimgate accepts", () => {
    const grace = /^(\d+)s$/.exec(String(dkimgate.stop_grace_period));
    expect(Number(grace?.[1])).toBeGreaterThan(DEFAULTS.config.limits.drainTimeout);
    const env = dkimgate.environment!;
    for (const name of Object.keys(env)) expect(Object.keys(ENVIRONMENT_OVERRIDES)).toContain(name);
    const mounted = (dkimgate.volumes as string[]).find((v) => v.endsWith(':/etc/dkimgate/dkimgate.yaml:ro'))!;
    const file = join(DOCKER, mounted.split(':')[0]!);
    const parsed = parseConfigText(readFileSync(file, 'utf8'), file);
    expect(parsed.kind).toBe('ok');
    const effective = applyEnvironment(parsed.kind === 'ok' ? parsed.config : DEFAULTS.config, env);
    expect(effective.kind === 'ok' ? effective.warnings : effective.problems).toEqual([]);
  });

  it("runs its dkimgate service's settings: relay-host mail arriving through Postfix's XFORWARD is signed with the secret key", async () => {
    // The secret, made as the compose file's header says, where the container would see it.
    const secretsDir = join(work, 'run-secrets');
    const keys = join(work, 'secrets');
    const made = await runCli(['keygen', '--domain', 'example.com', '--selector', 's2026', '--keys-dir', keys]);
    expect(made.status, made.stderr).toBe(0);
    await writeFile(join(work, 'published.zone'), made.stdout);
    const [secretSource, secretTarget] = [compose.secrets['dkim-example.com-s2026']!.file, (dkimgate.secrets as Array<{ target: string }>)[0]!.target];
    expect(secretSource).toBe('./secrets/example.com/s2026.pem');
    await execFileAsync('mkdir', ['-p', secretsDir]);
    await execFileAsync('cp', [join(keys, 'example.com', 's2026.pem'), join(secretsDir, secretTarget)]);
    // as the compose file's header says: root:10001, mode 0440
    await chown(join(secretsDir, secretTarget), 0, 10001);
    await chmod(join(secretsDir, secretTarget), 0o440);

    const hop = await startNextHopServer();
    cleanups.push(() => hop.close());
    const env = dkimgate.environment!;
    const mounted = (dkimgate.volumes as string[]).find((v) => v.endsWith(':/etc/dkimgate/dkimgate.yaml:ro'))!;
    const [listen, metrics] = [await freePort(), await freePort()];
    const gate = await runImageCommand(
      {
        ...env,
        DKIMGATE_CONFIG: join(DOCKER, mounted.split(':')[0]!),
        DKIMGATE_SIGN_KEY: env.DKIMGATE_SIGN_KEY!.replace('/run/secrets/', `${secretsDir}/`),
        // ports of this machine instead of the container's fixed ones
        DKIMGATE_LISTEN: env.DKIMGATE_LISTEN!.replace(/:\d+$/, `:${listen}`),
        DKIMGATE_NEXT_HOP: `127.0.0.1:${hop.port}`,
        DKIMGATE_METRICS: `127.0.0.1:${metrics}`,
      },
      hop,
    );
    const relayHost = env.DKIMGATE_RELAY_HOSTS!.replace(/0\/\d+$/, '7'); // an address in the compose network (only text here)
    expect(await sendFrom(listen, MESSAGE, { xforward: relayHost })).toBe(250);
    const signed = hop.messages[0]!.data;
    expect(signed.toString('latin1')).toMatch(/^DKIM-Signature:[^]*?d=example\.com;[^]*?s=s2026;/);
    const verified = await runCli(['verify', '--json', '--dns-zone', join(work, 'published.zone')], { input: signed });
    expect(JSON.parse(verified.stdout).signatures).toEqual([expect.objectContaining({ result: 'pass', domain: 'example.com' })]);
    await waitFor('the message log line', () => gate.lines.find((l) => l.msg === 'message'));
    expect(gate.lines.find((l) => l.msg === 'message')).toMatchObject({ client: relayHost, clientVia: 'xforward', decision: 'sign' });
    expect(gate.lines.filter((l) => l.level === 'warn')).toEqual([]); // no warning, about the key or anything else
  });
});
