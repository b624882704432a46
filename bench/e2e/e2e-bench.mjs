// `npm run bench:e2e`: a load generator -> dkimgate serve -> Postfix's smtp-sink, for 1 KB and 100 KB messages at 1
// and 20 sessions, signing and verifying, beside the bare sink and a hand-rolled smtp-server + mailauth + nodemailer
// proxy started in the same run. Targets are measured in interleaved rounds (shuffled order each round); it prints
// messages/s, p50/p99 latency and CPU per message (median and spread over rounds), `RATIO` lines, the added p99 over
// the bare sink, and the daemon's peak RSS with 500 concurrent 1 MB messages.
// Touches: loopback ports, child processes it starts and ends by PID (daemons, proxies, smtp-sink), a temp dir.
//
// Every process is warmed up first (--warm-up S seconds of 1 KB messages at 20 sessions, default 3; not counted):
// a daemon runs for days, so the figures are its steady state, not its first seconds of JIT compilation and heap
// growth (in a cold daemon the first thousands of messages run slower).
//
// Options: --rounds N (default 5) --seconds S per measurement (default 2) --skip-rss --only-rss
// --sessions N (only the cells with N sessions, e.g. 1 for the added-latency rows) --warm-up S

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createMessage } from '../messages.mjs';

const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const value = (name, fallback) => {
  const i = args.indexOf(name);
  return i === -1 ? fallback : Number(args[i + 1]);
};
const ROUNDS = value('--rounds', 5);
const SECONDS = value('--seconds', 2);
const WARM_UP_SECONDS = value('--warm-up', 3);
// The daemon runs with the Node flags of `npm start`, the Docker entrypoint and the systemd unit (README, Development: bench:e2e);
// BENCH_DAEMON_NODE_FLAGS replaces them for an experiment ("" for none).
const DAEMON_NODE_FLAGS = (process.env.BENCH_DAEMON_NODE_FLAGS ?? '--max-semi-space-size=4').split(' ').filter(Boolean);
const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const PROXY = fileURLToPath(new URL('./handrolled-proxy.mjs', import.meta.url));
const SINK = '/usr/sbin/smtp-sink';
const DOMAIN = 'example.com';
const SELECTOR = 'bench2026';

if (!existsSync(CLI)) fail(`${CLI} is missing: run npm run build`);
if (!existsSync(SINK)) fail(`${SINK} is missing: apt-get install postfix (for smtp-sink)`);

function fail(message) {
  process.stderr.write(`bench:e2e: ${message}\n`);
  process.exit(1);
}

// ---- processes -------------------------------------------------------------------------------------------------

const children = new Set();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitForGreeting(port, child, deadlineMs = 10_000) {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`process exited with ${child.exitCode}`);
    const ok = await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      const t = setTimeout(() => done(false), 500);
      const done = (v) => {
        clearTimeout(t);
        s.destroy();
        resolve(v);
      };
      s.once('data', (d) => done(d.toString('latin1').startsWith('220')));
      s.once('error', () => done(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('no greeting');
}

async function startSink() {
  const port = await freePort();
  const child = spawn(SINK, ['-m', '1000', ...(process.getuid?.() === 0 ? ['-u', 'nobody'] : []), `127.0.0.1:${port}`, '1024'], { stdio: 'ignore' });
  children.add(child);
  await waitForGreeting(port, child);
  return { name: 'smtp-sink', port, pid: child.pid, child };
}

/** Starts a process that prints its port on stdout (a "listening" JSON line, or "listening PORT"). */
function startListening(name, argv, pattern) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    let err = '';
    let found = false;
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', (d) => {
      if (found) return; // the rest (one log line per message) is read and dropped
      out += d;
      const m = pattern.exec(out);
      if (m) {
        found = true;
        resolve({ name, port: Number(m[1]), pid: child.pid, child });
      }
    });
    child.once('exit', (code) => {
      if (!found) reject(new Error(`${name} exited with ${code}: ${err} ${out}`));
    });
  });
}

async function startDaemon(dir, mode, nextHopPort, extra = '') {
  const config = join(dir, `dkimgate-${mode}.yaml`);
  await writeFile(
    config,
    [
      'authserv_id: bench.example.net',
      'listen: [{ host: 127.0.0.1, port: 0 }]',
      `next_hop: { host: 127.0.0.1, port: ${nextHopPort} }`,
      `relay_hosts: ${mode === 'sign' ? '[127.0.0.1/32]' : '[]'}`,
      `dns: { zone_files: ["${join(dir, 'bench.zone')}"] }`,
      extra,
      'sign:',
      `  key: "${dir}/%{d}/%{s}.pem"`,
      `  domains: { ${DOMAIN}: { selector: ${SELECTOR} } }`,
      '',
    ].join('\n'),
  );
  return startListening(`dkimgate-${mode}`, [...DAEMON_NODE_FLAGS, CLI, 'serve', '--config', config], /"listener":"smtp:\/\/127\.0\.0\.1:(\d+)"/);
}

function stop(target) {
  if (!target?.child || target.child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    target.child.once('exit', resolve);
    target.child.kill('SIGKILL');
  });
}

/** CPU time (user + system) of a process, in ms, from /proc. */
function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

function peakRss(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'latin1');
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)[1]) * 1024;
}

// ---- load generator ----------------------------------------------------------------------------------------------

/** One SMTP session: pipelined MAIL/RCPT/DATA, the message, the final dot; latency from MAIL to the final 250. */
class Session {
  constructor(socket) {
    this.socket = socket;
    this.buffer = '';
    this.waiter = null;
    socket.setNoDelay(true);
    socket.setEncoding('latin1');
    socket.on('data', (d) => {
      this.buffer += d;
      this.waiter?.();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
  }
  static async open(port) {
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const s = new Session(socket);
    await s.expect('220');
    s.socket.write('EHLO load.bench.test\r\n');
    await s.expect('250');
    return s;
  }
  async reply() {
    for (;;) {
      const m = /^(?:\d{3}-[^\n]*\n)*(\d{3})[^\n]*\n/.exec(this.buffer);
      if (m) {
        this.buffer = this.buffer.slice(m[0].length);
        return m[0];
      }
      if (this.closed) throw new Error(`connection closed: ${this.buffer}`);
      await new Promise((resolve) => {
        const t = setTimeout(resolve, 30_000);
        this.waiter = () => {
          clearTimeout(t);
          this.waiter = null;
          resolve();
        };
      });
    }
  }
  async expect(code) {
    const r = await this.reply();
    if (!r.startsWith(code)) throw new Error(`expected ${code}, got ${r.trim()}`);
    return r;
  }
  /** One message; returns its latency in ms. */
  async send(wire) {
    const t0 = performance.now();
    this.socket.write('MAIL FROM:<sender@example.com>\r\nRCPT TO:<rcpt@example.org>\r\nDATA\r\n');
    await this.expect('250');
    await this.expect('250');
    await this.expect('354');
    this.socket.write(wire);
    await this.expect('250');
    return performance.now() - t0;
  }
  close() {
    this.socket.end('QUIT\r\n');
    setTimeout(() => this.socket.destroy(), 100).unref();
  }
}

/** Runs `sessions` sessions against port for `seconds`; messages/s, latencies, CPU ms per message of `pid`. */
async function measure(port, pid, wire, sessions, seconds) {
  const open = await Promise.all(Array.from({ length: sessions }, () => Session.open(port)));
  // warm-up: a few messages per session, not counted
  await Promise.all(open.map(async (s) => { for (let i = 0; i < 3; i++) await s.send(wire); }));
  const latencies = [];
  const cpu0 = cpuMs(pid);
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  await Promise.all(
    open.map(async (s) => {
      while (performance.now() < deadline) latencies.push(await s.send(wire));
    }),
  );
  const elapsed = performance.now() - t0;
  const cpu = cpuMs(pid) - cpu0;
  for (const s of open) s.close();
  latencies.sort((a, b) => a - b);
  const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  return { rate: (latencies.length * 1000) / elapsed, p50: q(0.5), p99: q(0.99), cpuPerMsg: cpu / latencies.length, count: latencies.length };
}

// ---- messages and keys ----------------------------------------------------------------------------------------------

function wireOf(message) {
  const text = message.toString('latin1').replace(/(^|\r\n)\./g, '$1..');
  return Buffer.from(text.endsWith('\r\n') ? `${text}.\r\n` : `${text}\r\n.\r\n`, 'latin1');
}

function withFrom(message) {
  return Buffer.from(message.toString('latin1').replace(/^From: .*$/m, `From: Bench Sender <sender@${DOMAIN}>`), 'latin1');
}

// ---- the run ----------------------------------------------------------------------------------------------------------

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (x, digits = 2) => (x >= 100 ? Math.round(x).toString() : x.toFixed(digits));
const spread = (xs) => `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}`;

function shuffle(list) {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

async function main() {
  const dir = await mkdtemp(join(os.tmpdir(), 'dkimgate-bench-e2e-'));
  try {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' });
    const txt = `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`;
    await mkdir(join(dir, DOMAIN), { recursive: true });
    await writeFile(join(dir, DOMAIN, `${SELECTOR}.pem`), keyPem, { mode: 0o600 });
    await writeFile(join(dir, 'bench.zone'), `${SELECTOR}._domainkey.${DOMAIN}. 300 IN TXT "${txt.slice(0, 250)}" "${txt.slice(250)}"\n`);

    const { signMessage, createSigner } = await import(new URL('../../dist/dkim/sign.js', import.meta.url).href);
    const signer = createSigner({ signingDomain: DOMAIN, selector: SELECTOR, privateKey, algorithm: 'rsa-sha256', headerCanon: 'relaxed', bodyCanon: 'relaxed', headerList: 'From:To:Subject:Date:Message-ID' });

    const plain1k = withFrom(createMessage('text', 1024));
    const signed1k = await signMessage(plain1k, [signer], Math.floor(Date.now() / 1000));
    const wiresFor1k = { sign: wireOf(plain1k), verify: wireOf(Buffer.concat([Buffer.from(signed1k.fields.join(''), 'latin1'), plain1k])) };
    console.log(`bench:e2e on ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), Node ${process.version}, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    if (!flag('--only-rss')) {
      const sink = await startSink();
      const proxyOptions = { nextHopPort: sink.port, keyPem, txt, domain: DOMAIN, selector: SELECTOR };
      const targets = {
        sink,
        'dkimgate-sign': await startDaemon(dir, 'sign', sink.port),
        'dkimgate-verify': await startDaemon(dir, 'verify', sink.port),
        'handrolled-sign': await startListening('handrolled-sign', [PROXY, JSON.stringify({ ...proxyOptions, mode: 'sign' })], /listening (\d+)/),
        'handrolled-verify': await startListening('handrolled-verify', [PROXY, JSON.stringify({ ...proxyOptions, mode: 'verify' })], /listening (\d+)/),
      };
      const cells = [
        { size: '1k', bytes: 1024, sessions: 1 },
        { size: '1k', bytes: 1024, sessions: 20 },
        { size: '100k', bytes: 100 * 1024, sessions: 1 },
        { size: '100k', bytes: 100 * 1024, sessions: 20 },
      ];
      await warmUp(targets, wiresFor1k);
      const ratios = [];
      const onlySessions = value('--sessions', 0);
      for (const cell of cells.filter((c) => !onlySessions || c.sessions === onlySessions)) {
        const plain = withFrom(createMessage('text', cell.bytes));
        const signed = await signMessage(plain, [signer], Math.floor(Date.now() / 1000));
        const wires = { sign: wireOf(plain), verify: wireOf(Buffer.concat([Buffer.from(signed.fields.join(''), 'latin1'), plain])) };
        const results = Object.fromEntries(Object.keys(targets).map((t) => [t, []]));
        for (let round = 0; round < ROUNDS; round++) {
          for (const name of shuffle(Object.keys(targets))) {
            const wire = name.endsWith('verify') ? wires.verify : wires.sign;
            results[name].push(await measure(targets[name].port, targets[name].pid, wire, cell.sessions, SECONDS));
          }
        }
        console.log(`\n${cell.size} messages, ${cell.sessions} session(s), ${ROUNDS} rounds of ${SECONDS} s (median, min–max over rounds)`);
        console.log('target              msgs/s              p50 ms        p99 ms        CPU ms/msg');
        for (const [name, rs] of Object.entries(results)) {
          const col = (key) => `${fmt(median(rs.map((r) => r[key])))} (${spread(rs.map((r) => r[key]))})`;
          console.log(`${name.padEnd(20)}${col('rate').padEnd(20)}${fmt(median(rs.map((r) => r.p50)), 3).padEnd(14)}${fmt(median(rs.map((r) => r.p99)), 3).padEnd(14)}${col('cpuPerMsg')}`);
        }
        for (const mode of ['sign', 'verify']) {
          // same-round ratios: both measured within seconds of each other
          const perRound = results[`dkimgate-${mode}`].map((r, i) => r.rate / results[`handrolled-${mode}`][i].rate);
          const cpuPerRound = results[`dkimgate-${mode}`].map((r, i) => results[`handrolled-${mode}`][i].cpuPerMsg / r.cpuPerMsg);
          ratios.push(`RATIO e2e-${mode}-${cell.size}-${cell.sessions}-vs-handrolled ${median(perRound).toFixed(2)} (rounds ${spread(perRound)}; CPU per message ${median(cpuPerRound).toFixed(2)}x less)`);
          if (cell.sessions === 1) {
            const added = results[`dkimgate-${mode}`].map((r, i) => r.p99 - results.sink[i].p99);
            ratios.push(`ADDED-P99 e2e-${mode}-${cell.size}-1-over-sink ${median(added).toFixed(3)} ms (rounds ${spread(added)})`);
          }
        }
      }
      console.log('');
      for (const line of ratios) console.log(line);
      for (const t of Object.values(targets)) await stop(t);
    }
    if (!flag('--skip-rss')) await rssPhase(dir, wiresFor1k);
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
}

/** Each target runs WARM_UP_SECONDS of 1 KB messages at 20 sessions, not counted (JIT, heap, pools settle). */
async function warmUp(targets, wires) {
  if (WARM_UP_SECONDS <= 0) return;
  for (const [name, target] of Object.entries(targets)) {
    await measure(target.port, target.pid, name.endsWith('verify') ? wires.verify : wires.sign, 20, WARM_UP_SECONDS);
  }
}

/**
 * 500 clients each send one 1 MB message at the same time to a warmed-up daemon (its young generation grown as in
 * service); the daemon's peak RSS is read from /proc (VmHWM).
 */
async function rssPhase(dir, wires) {
  const CLIENTS = 500;
  const sink = await startSink();
  const daemon = await startDaemon(dir, 'sign', sink.port, 'limits: { max_clients: 600 }');
  await warmUp({ 'dkimgate-sign': daemon }, wires);
  const idle = peakRss(daemon.pid);
  const wire = wireOf(withFrom(createMessage('text', 1024 * 1024)));
  const sessions = [];
  for (let i = 0; i < CLIENTS; i++) sessions.push(await Session.open(daemon.port));
  const t0 = performance.now();
  const outcomes = await Promise.allSettled(sessions.map((s) => s.send(wire)));
  const elapsed = performance.now() - t0;
  const ok = outcomes.filter((o) => o.status === 'fulfilled').length;
  const peak = peakRss(daemon.pid);
  for (const s of sessions) s.close();
  console.log(`\nRSS with ${CLIENTS} concurrent 1 MB messages: ${ok}/${CLIENTS} relayed in ${(elapsed / 1000).toFixed(1)} s; daemon peak RSS ${(peak / 1048576).toFixed(0)} MB (${(idle / 1048576).toFixed(0)} MB after the warm-up; target <= 300 MB)`);
  console.log(`RSS e2e-500x1MB-peak-mb ${(peak / 1048576).toFixed(0)}`);
  if (ok !== CLIENTS) console.log(`  failures: ${[...new Set(outcomes.filter((o) => o.status === 'rejected').map((o) => o.reason.message))].slice(0, 3).join(' | ')}`);
  await stop(daemon);
  await stop(sink);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
