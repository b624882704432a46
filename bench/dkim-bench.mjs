// Benchmark (not a test) of the DKIM engine: sign and verify throughput and CPU per message, ours
// (dist/, built by `npm run build`) against mailauth 4.9.5 and against the machine's limit, in one run.
// Trusts: node:crypto, the dist/ build, node_modules/mailauth. Touches: CPU only (keys in memory, no DNS, no files).
//
// Usage: npm run bench  (= npm run build && node --expose-gc bench/dkim-bench.mjs)
//   node --expose-gc bench/dkim-bench.mjs [--quick] [--check] [--only sign|verify] [--sizes 2k,20k,200k,2m]
//        [--kinds text,mime] [--rounds N] [--round-ms MS] [--gc cell|round|slice|off] [--no-ours] [--same-process]
//   node --cpu-prof bench/dkim-bench.mjs --profile-ours sign-2m[-mime] [--seconds 5]
//
// Method: per cell (op × size × message kind), warm up each implementation (the first cell of an op 8×
// longer: JIT compilation of freshly loaded code), then R rounds; in each round
// ours, mailauth and the limit each run ≥ round-ms in 4 interleaved slices (order rotated per slice and
// round), one message at a time (sequential awaits). Each implementation runs in its own child process
// (this script with --worker NAME; the parent sends it the inputs and asks for one slice at a time, so
// the slices still interleave in time): one implementation's garbage (mailauth allocates tens of MB
// per 2 MB message) is then not collected during another's slice. --same-process runs all three in
// this process, as before. Wall time (hrtime)
// and process.cpuUsage() (user+system, all threads of the process timing) per slice, summed per round. Reported: medians and
// min–max over rounds; ratios are medians of the per-round ratios of messages/s (the three measurements
// of a round interleave in time, so pairing them cancels most of the noise of a shared machine).
// gc (when exposed) runs once per cell, before the warm-up, not between rounds: a forced full gc makes
// V8 shrink its young generation, and an engine that allocates per line then pays for re-growing it in
// every short run (measured: ours verify 2m text 6.3 CPU ms/msg steady, 8.8 with gc per round, 31 with
// gc per slice; mailauth and the limit barely move). A daemon never forces gc, so steady state is the
// fair figure. `--gc round|slice|off` selects the other placements.
// Limit = SHA-256 of the whole message + one RSA-2048 sign (or verify) with a parsed KeyObject.

import crypto from 'node:crypto';
import os from 'node:os';
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { createMessage, KINDS, SIZES } from './messages.mjs';

const require = createRequire(import.meta.url);

// `... | head` closes stdout early: stop quietly rather than with an EPIPE stack trace
process.stdout.on('error', (err) => process.exit(err.code === 'EPIPE' ? 0 : 2));

// ---------------------------------------------------------------- arguments

const USAGE =
  'usage: dkim-bench.mjs [--quick] [--check] [--only sign|verify] [--sizes 2k,20k,200k,2m] [--kinds text,mime]\n' +
  '                      [--rounds N] [--round-ms MS] [--gc cell|round|slice|off] [--no-ours] [--same-process]\n' +
  '       dkim-bench.mjs --profile-ours <sign|verify>-<2k|20k|200k|2m>[-text|-mime] [--seconds S]';

function parseArgs(argv) {
  const o = {
    quick: false, check: false, ops: ['sign', 'verify'], sizes: Object.keys(SIZES), kinds: [...KINDS],
    rounds: null, roundMs: null, gc: 'cell', noOurs: false, profile: null, seconds: 5, sameProcess: false, worker: null,
  };
  const value = (i, flag) => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) fail(`${flag} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--quick': o.quick = true; break;
      case '--check': o.check = true; break;
      case '--no-ours': o.noOurs = true; break;
      case '--same-process': o.sameProcess = true; break;
      case '--worker': o.worker = value(i++, a); break; // internal: a child process timing one implementation
      case '--only': {
        const v = value(i++, a);
        if (v !== 'sign' && v !== 'verify') fail(`--only takes sign or verify, not ${v}`);
        o.ops = [v];
        break;
      }
      case '--sizes': {
        o.sizes = value(i++, a).split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
        for (const s of o.sizes) if (!(s in SIZES)) fail(`unknown size ${s} (sizes: ${Object.keys(SIZES).join(',')})`);
        break;
      }
      case '--kinds': {
        o.kinds = value(i++, a).split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
        for (const k of o.kinds) if (!KINDS.includes(k)) fail(`unknown kind ${k} (kinds: ${KINDS.join(',')})`);
        break;
      }
      case '--gc': {
        o.gc = value(i++, a);
        if (!['slice', 'round', 'cell', 'off'].includes(o.gc)) fail('--gc takes slice, round, cell or off');
        break;
      }
      case '--rounds': o.rounds = positiveInt(value(i++, a), a); break;
      case '--round-ms': o.roundMs = positiveInt(value(i++, a), a); break;
      case '--seconds': o.seconds = positiveInt(value(i++, a), a); break;
      case '--profile-ours': {
        const m = /^(sign|verify)-(2k|20k|200k|2m)(?:-(text|mime))?$/.exec(value(i++, a));
        if (!m) fail('--profile-ours takes <sign|verify>-<2k|20k|200k|2m>[-text|-mime], e.g. sign-2m');
        o.profile = { op: m[1], size: m[2], kind: m[3] ?? 'text' };
        break;
      }
      case '-h': case '--help': process.stdout.write(USAGE + '\n'); process.exit(0); break;
      default: fail(`unknown argument ${a}`);
    }
  }
  o.rounds ??= o.quick ? 2 : 7;
  o.roundMs ??= o.quick ? 60 : 200;
  o.warmMs = o.quick ? 50 : 150;
  o.slices = o.quick ? 2 : 4;
  return o;
}

/** How many times longer the first cell of each op warms up (see main). */
const FIRST_CELL_WARMUP = 8;

function positiveInt(v, flag) {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) fail(`${flag} takes a positive integer, not ${v}`);
  return n;
}

function fail(msg) {
  process.stderr.write(`dkim-bench: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------- fixed world: keys, DNS, clock

const DOMAIN = 'example.com';
const SELECTOR = 'bench2026';
const KEY_NAME = `${SELECTOR}._domainkey.${DOMAIN}`;
const NOW_SEC = 1767312000; // 2026-01-02T00:00:00Z, after every message's Date
const HEADER_LIST_OURS = 'From:From:Reply-To:Subject:Date:To:Cc?:Message-ID?:MIME-Version?:Content-Type?';
const HEADER_LIST_MAILAUTH = 'From:Reply-To:Subject:Date:To:Cc:Message-ID:MIME-Version:Content-Type';

// The parent makes the key; its worker processes (--worker) get it through the environment.
const { privateKey, publicKey } = process.env.DKIM_BENCH_KEY
  ? { privateKey: crypto.createPrivateKey(process.env.DKIM_BENCH_KEY), publicKey: crypto.createPublicKey(process.env.DKIM_BENCH_KEY) }
  : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
// mailauth takes a PEM and parses it on every message (that is how it is used; it cannot take a KeyObject)
const PRIVATE_PEM = privateKey.export({ type: 'pkcs8', format: 'pem' });
const TXT = `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`;

/** Our TxtLookup, from memory. */
const lookupTxt = async (name) =>
  name.toLowerCase() === KEY_NAME ? { kind: 'found', records: [TXT] } : { kind: 'nxdomain' };

/** mailauth's resolver (dns.resolve shape: array of records, each an array of strings), from memory. */
const mailauthResolver = async (name, type) => {
  if (type === 'TXT' && name.toLowerCase() === KEY_NAME) return [[TXT]];
  const err = new Error(`queryTxt ENOTFOUND ${name}`);
  err.code = 'ENOTFOUND';
  throw err;
};

// ---------------------------------------------------------------- implementations

async function loadOurs() {
  const signUrl = new URL('../dist/dkim/sign.js', import.meta.url);
  const verifyUrl = new URL('../dist/dkim/verify.js', import.meta.url);
  let sign, verify;
  try {
    sign = await import(signUrl.href);
    verify = await import(verifyUrl.href);
  } catch (err) {
    process.stderr.write(
      `dkim-bench: cannot load the built engine (${err.code ?? err.message}); run \`npm run build\` first,\n` +
        '            or pass --no-ours to measure only mailauth and the limit.\n',
    );
    process.exit(2);
  }
  for (const [mod, name] of [[sign, 'createSigner'], [sign, 'signMessage'], [verify, 'verifyMessage']]) {
    if (typeof mod[name] !== 'function') {
      process.stderr.write(`dkim-bench: dist/dkim does not export ${name}()\n`);
      process.exit(2);
    }
  }
  const signer = sign.createSigner({
    signingDomain: DOMAIN,
    selector: SELECTOR,
    privateKey,
    algorithm: 'rsa-sha256',
    headerCanon: 'relaxed',
    bodyCanon: 'relaxed',
    headerList: HEADER_LIST_OURS,
  });
  const verifyOpts = { lookupTxt, nowSec: NOW_SEC };
  return {
    /** Returns the DKIM-Signature field(s) as one string. */
    async sign(msg) {
      const out = await sign.signMessage(msg, [signer], NOW_SEC);
      if (out.kind !== 'signed') throw new Error(`ours: sign error: ${out.reason}`);
      return out.fields.join('');
    },
    /** Returns the first signature's result. */
    async verify(msg) {
      const report = await verify.verifyMessage(msg, verifyOpts);
      return report.signatures[0]?.result ?? 'none';
    },
    async verifyDetail(msg) {
      return verify.verifyMessage(msg, verifyOpts);
    },
  };
}

function loadMailauth() {
  const { dkimSign } = require('mailauth/lib/dkim/sign.js');
  const { dkimVerify } = require('mailauth/lib/dkim/verify.js');
  const signTime = new Date(NOW_SEC * 1000);
  const curTime = new Date(NOW_SEC * 1000);
  return {
    async sign(msg) {
      const out = await dkimSign(msg, {
        canonicalization: 'relaxed/relaxed',
        algorithm: 'rsa-sha256',
        signTime,
        headerList: HEADER_LIST_MAILAUTH,
        signatureData: [{ signingDomain: DOMAIN, selector: SELECTOR, privateKey: PRIVATE_PEM }],
      });
      if (out.errors.length) throw new Error(`mailauth: sign error: ${out.errors[0].err?.message}`);
      return out.signatures;
    },
    async verify(msg) {
      const out = await dkimVerify(msg, { resolver: mailauthResolver, curTime });
      return out.results[0]?.status?.result ?? 'none';
    },
    async verifyDetail(msg) {
      return dkimVerify(msg, { resolver: mailauthResolver, curTime });
    },
  };
}

/** The machine's limit: one SHA-256 over every byte of the message plus exactly one RSA-2048 operation. */
function createLimit() {
  return {
    async sign(msg) {
      const digest = crypto.createHash('sha256').update(msg).digest();
      return crypto.sign('sha256', digest, privateKey);
    },
    /** A verify of `msg`: the signature over its digest is made here, once, outside the timing. */
    makeVerify(msg) {
      const sig = crypto.sign('sha256', crypto.createHash('sha256').update(msg).digest(), privateKey);
      return async (m) => {
        const digest = crypto.createHash('sha256').update(m).digest();
        return crypto.verify('sha256', digest, publicKey, sig) ? 'pass' : 'fail';
      };
    },
  };
}

// ---------------------------------------------------------------- measurement

const gc = typeof globalThis.gc === 'function' ? globalThis.gc : null;

let gcAt = 'cell'; // where gc() runs when exposed: slice | round | cell | off (set from --gc)

async function timedRun(fn, input, minMs, minCount) {
  if (gc && gcAt === 'slice') gc();
  let n = 0;
  let wallMs = 0;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  do {
    await fn(input);
    n++;
    wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  } while (wallMs < minMs || n < minCount);
  const cpu = process.cpuUsage(c0);
  return { n, wallMs, cpuMs: (cpu.user + cpu.system) / 1000, rate: (n * 1000) / wallMs, cpuPerMsg: (cpu.user + cpu.system) / 1000 / n };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function stats(xs) {
  return { med: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
}

/**
 * A timer of one implementation for the current cell: in this process, or in a worker process.
 * run(minMs, minCount) -> { n, wallMs, cpuMs }; gc() collects garbage (if exposed) where it runs.
 */
function localRunner(fn, input) {
  return {
    run: (minMs, minCount) => timedRun(fn, input, minMs, minCount),
    gc: async () => gc?.(),
  };
}

/**
 * Runs one cell: warm-up, then rounds. A round is `slices` short runs per implementation, interleaved
 * (order rotated per slice and per round), summed per implementation: each implementation's round spans
 * the same stretch of time, so a burst of load from other processes hits all three alike.
 */
async function runCell(runners, o, warmMs = o.warmMs) {
  const names = Object.keys(runners);
  if (gc && gcAt !== 'off') for (const name of names) await runners[name].gc();
  for (const name of names) await runners[name].run(warmMs, 3);
  const runs = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < o.rounds; r++) {
    if (gc && gcAt === 'round' && r > 0) for (const name of names) await runners[name].gc();
    const acc = Object.fromEntries(names.map((n) => [n, { n: 0, wallMs: 0, cpuMs: 0 }]));
    for (let s = 0; s < o.slices; s++) {
      for (let k = 0; k < names.length; k++) {
        const name = names[(k + r + s) % names.length];
        const run = await runners[name].run(o.roundMs / o.slices, 1);
        acc[name].n += run.n;
        acc[name].wallMs += run.wallMs;
        acc[name].cpuMs += run.cpuMs;
      }
    }
    for (const name of names) {
      const a = acc[name];
      runs[name].push({ ...a, rate: (a.n * 1000) / a.wallMs, cpuPerMsg: a.cpuMs / a.n });
    }
  }
  return runs;
}

// ---------------------------------------------------------------- worker processes

/** The timed function of implementation `name` for one cell (the limit's verify signs `input` first, untimed). */
function cellFunction(impl, name, op, input) {
  if (name === 'limit') return op === 'sign' ? impl.sign : impl.makeVerify(input);
  return op === 'sign' ? impl.sign : impl.verify;
}

async function loadImpl(name) {
  if (name === 'ours') return loadOurs();
  if (name === 'mailauth') return loadMailauth();
  if (name === 'limit') return createLimit();
  throw new Error(`unknown implementation ${name}`);
}

/** Worker side (--worker NAME): one implementation, driven over IPC by the parent, one request at a time. */
async function workerMain(name) {
  const impl = await loadImpl(name);
  let fn = null;
  let input = null;
  process.on('message', async (req) => {
    try {
      let reply = null;
      if (req.cmd === 'cell') {
        input = Buffer.from(req.input.buffer, req.input.byteOffset, req.input.byteLength);
        fn = cellFunction(impl, name, req.op, input);
      } else if (req.cmd === 'run') {
        reply = await timedRun(fn, input, req.minMs, req.minCount);
      } else if (req.cmd === 'gc') {
        gc?.();
      } else if (req.cmd === 'exit') {
        process.exit(0);
      }
      process.send({ ok: true, reply });
    } catch (err) {
      process.send({ ok: false, error: String(err?.stack ?? err) });
    }
  });
  process.send({ ok: true, reply: 'ready' });
  // Runs until the parent says exit or goes away.
  return new Promise((resolve) => process.on('disconnect', () => resolve(0)));
}

/** Parent side: a worker process for implementation `name`, with one request in flight at a time. */
async function startWorker(name) {
  const child = fork(fileURLToPath(import.meta.url), ['--worker', name, '--gc', gcAt], {
    execArgv: ['--expose-gc'],
    env: { ...process.env, DKIM_BENCH_KEY: privateKey.export({ type: 'pkcs8', format: 'pem' }) },
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let pending = null;
  child.on('message', (m) => {
    const p = pending;
    pending = null;
    if (!p) return;
    if (m.ok) p.resolve(m.reply);
    else p.reject(new Error(`worker ${name}: ${m.error}`));
  });
  child.on('exit', (code) => {
    if (pending) pending.reject(new Error(`worker ${name} exited with code ${code}`));
    pending = null;
  });
  const request = (req) =>
    new Promise((resolve, reject) => {
      pending = { resolve, reject };
      if (req) child.send(req);
    });
  await request(null); // 'ready'
  return {
    name,
    setCell: (op, input) => request({ cmd: 'cell', op, input }),
    run: (minMs, minCount) => request({ cmd: 'run', minMs, minCount }),
    gc: () => request({ cmd: 'gc' }),
    stop: () => {
      child.send({ cmd: 'exit' });
    },
  };
}

// ---------------------------------------------------------------- sanity

function abort(msg, detail) {
  process.stderr.write(`\n*** dkim-bench: SANITY CHECK FAILED: ${msg}\n`);
  if (detail !== undefined) process.stderr.write(`${typeof detail === 'string' ? detail : JSON.stringify(detail, null, 2)}\n`);
  process.stderr.write('*** no timing was done: a benchmark of a wrong answer measures nothing.\n');
  process.exit(3);
}

const prepend = (fields, msg) => Buffer.concat([Buffer.from(fields, 'latin1'), msg]);

/** Checks that every implementation agrees before anything is timed; returns the signed inputs for verify. */
async function sanity(ours, mailauth, limit, cells) {
  const signed = new Map();
  for (const { size, kind, msg } of cells) {
    const where = `${kind} ${size}`;
    const maSigned = prepend(await mailauth.sign(msg), msg);
    const maOwn = await mailauth.verifyDetail(maSigned);
    if (maOwn.results[0]?.status?.result !== 'pass') abort(`mailauth does not verify its own signature (${where})`, maOwn.results);
    if (ours) {
      const oursSigned = prepend(await ours.sign(msg), msg);
      const self = await ours.verifyDetail(oursSigned);
      if (self.signatures.length !== 1 || self.signatures[0].result !== 'pass') {
        abort(`our signed message does not verify with our verifier (${where})`, self);
      }
      const peer = await mailauth.verifyDetail(oursSigned);
      if (peer.results[0]?.status?.result !== 'pass') abort(`our signed message does not verify with mailauth (${where})`, peer.results);
      const cross = await ours.verifyDetail(maSigned);
      if (cross.signatures.length !== 1 || cross.signatures[0].result !== 'pass') {
        abort(`mailauth's signed message does not verify with our verifier (${where})`, cross);
      }
      // a tampered body must fail in both, or the timed "pass" could be a shortcut
      const tampered = Buffer.from(oursSigned);
      tampered[tampered.length - 5] ^= 0x01;
      const bad = await ours.verifyDetail(tampered);
      if (bad.signatures[0]?.result === 'pass') abort(`our verifier passes a tampered body (${where})`, bad);
      signed.set(`${size}/${kind}`, oursSigned);
    } else {
      signed.set(`${size}/${kind}`, maSigned);
    }
    const limitVerify = limit.makeVerify(signed.get(`${size}/${kind}`));
    if ((await limitVerify(signed.get(`${size}/${kind}`))) !== 'pass') abort(`the limit's RSA verify fails (${where})`);
  }
  return signed;
}

// ---------------------------------------------------------------- reporting

const TARGETS = {
  sign: { '2k': 0.9, '20k': 0.9, '200k': 0.85, '2m': 0.85 },
  verify: { '2k': 0.7, '20k': 0.5, '200k': 0.85, '2m': 0.85 },
};

const fmtRate = (x) => (x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1));
const fmtMs = (x) => (x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3));
const fmtRatio = (x) => x.toFixed(2);
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);

function perRoundRatios(a, b) {
  return a.map((run, i) => run.rate / b[i].rate);
}

// ---------------------------------------------------------------- profile mode

async function profile(o) {
  const ours = await loadOurs();
  const mailauth = loadMailauth();
  const { op, size, kind } = o.profile;
  const msg = createMessage(kind, SIZES[size]);
  const signed = await sanity(ours, mailauth, createLimit(), [{ size, kind, msg }]);
  const input = op === 'sign' ? msg : signed.get(`${size}/${kind}`);
  const fn = op === 'sign' ? ours.sign : ours.verify;
  process.stdout.write(`profiling ours ${op} ${size} ${kind} (${input.length} bytes) for ${o.seconds} s ...\n`);
  const run = await timedRun(fn, input, o.seconds * 1000, 1);
  process.stdout.write(
    `${run.n} messages in ${run.wallMs.toFixed(0)} ms: ${fmtRate(run.rate)} msg/s, ${fmtMs(run.cpuPerMsg)} CPU ms/msg\n`,
  );
}

// ---------------------------------------------------------------- main

async function main() {
  const o = parseArgs(process.argv.slice(2));
  gcAt = o.gc;
  if (o.worker) return workerMain(o.worker);
  if (o.profile) return profile(o);

  const started = Date.now();
  const ours = o.noOurs ? null : await loadOurs();
  const mailauth = loadMailauth();
  const limit = createLimit();

  const cells = [];
  for (const size of o.sizes) for (const kind of o.kinds) cells.push({ size, kind, msg: createMessage(kind, SIZES[size]) });
  const signed = await sanity(ours, mailauth, limit, cells);

  const mailauthVersion = require('mailauth/package.json').version;
  process.stdout.write(
    `dkim-bench: node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim() ?? '?'}), ` +
      `mailauth ${mailauthVersion}, RSA-2048 rsa-sha256 relaxed/relaxed\n` +
      `method: warm-up, then ${o.rounds} rounds; per round each implementation runs ≥ ${o.roundMs} ms in ${o.slices} ` +
      `interleaved slices (order rotated), one message at a time, ` +
      `${o.sameProcess ? 'all in this process' : 'each implementation in its own process'}; ` +
      `gc ${!gc ? 'NOT exposed (run with --expose-gc)' : o.gc === 'off' ? 'off' : `before each ${o.gc === 'cell' ? "cell's warm-up" : o.gc}`}\n` +
      `load average at start: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} (wall-clock figures suffer when other processes compete)\n` +
      (ours
        ? 'sanity: ours signs → ours and mailauth verify pass; mailauth signs → ours verifies pass; tampered body fails\n'
        : 'sanity: mailauth signs → mailauth verifies pass (--no-ours)\n') +
      `verify input: the message signed by ${ours ? 'ours' : 'mailauth'} (the same bytes for every implementation)\n\n`,
  );

  const hdr =
    `${pad('op', 7)}${pad('size', 6)}${pad('kind', 6)}${pad('bytes', 9)}${pad('impl', 10)}` +
    `${lpad('msg/s', 9)}  ${pad('(min–max)', 19)}${lpad('CPU ms/msg', 11)}  (min–max)`;
  process.stdout.write(`${hdr}\n${'-'.repeat(hdr.length + 8)}\n`);

  const names = ours ? ['ours', 'mailauth', 'limit'] : ['mailauth', 'limit'];
  const local = { ours, mailauth, limit };
  const workers = o.sameProcess ? null : await Promise.all(names.map((name) => startWorker(name)));
  const results = [];
  for (const op of o.ops) {
    for (const { size, kind, msg } of cells) {
      const input = op === 'sign' ? msg : signed.get(`${size}/${kind}`);
      const runners = {};
      if (workers) {
        for (const w of workers) {
          await w.setCell(op, input);
          runners[w.name] = w;
        }
      } else {
        for (const name of names) runners[name] = localRunner(cellFunction(local[name], name, op, input), input);
      }
      // The first cell of an op meets freshly loaded code: V8 is still compiling it (tier by tier, on
      // background threads whose CPU counts too), which cost the first cell up to 0.1 of its ratio
      // with the usual warm-up. Every implementation warms up longer there.
      const firstOfOp = cells[0].size === size && cells[0].kind === kind;
      const runs = await runCell(runners, o, firstOfOp ? o.warmMs * FIRST_CELL_WARMUP : o.warmMs);
      for (const [name, rs] of Object.entries(runs)) {
        const rate = stats(rs.map((r) => r.rate));
        const cpu = stats(rs.map((r) => r.cpuPerMsg));
        process.stdout.write(
          `${pad(op, 7)}${pad(size, 6)}${pad(kind, 6)}${pad(input.length, 9)}${pad(name, 10)}` +
            `${lpad(fmtRate(rate.med), 9)}  ${pad(`(${fmtRate(rate.min)}–${fmtRate(rate.max)})`, 19)}` +
            `${lpad(fmtMs(cpu.med), 11)}  (${fmtMs(cpu.min)}–${fmtMs(cpu.max)})\n`,
        );
      }
      const cell = { op, size, kind, runs };
      if (ours) {
        cell.vsLimit = stats(perRoundRatios(runs.ours, runs.limit));
        cell.vsMailauth = stats(perRoundRatios(runs.ours, runs.mailauth));
        // CPU view of the same ratio: limit CPU per message / our CPU per message (1.0 = as cheap as the limit)
        cell.cpuVsLimit = median(runs.limit.map((r) => r.cpuPerMsg)) / median(runs.ours.map((r) => r.cpuPerMsg));
        cell.cpuVsMailauth = median(runs.mailauth.map((r) => r.cpuPerMsg)) / median(runs.ours.map((r) => r.cpuPerMsg));
      }
      results.push(cell);
    }
    process.stdout.write('\n');
  }

  for (const w of workers ?? []) w.stop();

  if (!ours) {
    process.stdout.write(`(--no-ours: no ratios) total ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
    return 0;
  }

  // ratio table: both kinds
  const rh =
    `${pad('op', 7)}${pad('size', 6)}${pad('kind', 6)}${lpad('ours/limit', 11)}  ${pad('(min–max)', 13)}` +
    `${lpad('CPU', 6)}${lpad('ours/mailauth', 15)}  ${pad('(min–max)', 13)}${lpad('CPU', 6)}   target`;
  process.stdout.write(
    'ratios: medians of per-round messages/s ratios (CPU = the same ratio from median CPU ms per message)\n' +
      `${rh}\n${'-'.repeat(rh.length + 6)}\n`,
  );
  for (const c of results) {
    const t = TARGETS[c.op][c.size];
    process.stdout.write(
      `${pad(c.op, 7)}${pad(c.size, 6)}${pad(c.kind, 6)}${lpad(fmtRatio(c.vsLimit.med), 11)}  ` +
        `${pad(`(${fmtRatio(c.vsLimit.min)}–${fmtRatio(c.vsLimit.max)})`, 13)}${lpad(fmtRatio(c.cpuVsLimit), 6)}` +
        `${lpad(fmtRatio(c.vsMailauth.med), 15)}  ${pad(`(${fmtRatio(c.vsMailauth.min)}–${fmtRatio(c.vsMailauth.max)})`, 13)}` +
        `${lpad(fmtRatio(c.cpuVsMailauth), 6)}   ≥ ${t.toFixed(2)} ${Number(fmtRatio(c.vsLimit.med)) >= t ? 'pass' : 'MISS'}\n`,
    );
  }

  // RATIO lines: per op × size, the worse (lower) of the message kinds measured
  const kindsNote = o.kinds.length > 1 ? `the worse of ${o.kinds.join(' and ')} per cell` : `${o.kinds[0]} messages only`;
  process.stdout.write(`\nRATIO lines (${kindsNote}; pass/MISS against the vs-limit targets in the table above and below):\n`);
  let misses = 0;
  const summary = [];
  for (const op of o.ops) {
    for (const size of o.sizes) {
      const cs = results.filter((c) => c.op === op && c.size === size);
      const worstLimit = cs.reduce((a, c) => (c.vsLimit.med < a.vsLimit.med ? c : a));
      const worstPeer = cs.reduce((a, c) => (c.vsMailauth.med < a.vsMailauth.med ? c : a));
      const t = TARGETS[op][size];
      const ok = Number(fmtRatio(worstLimit.vsLimit.med)) >= t;
      if (!ok) misses++;
      process.stdout.write(`RATIO ${op}-${size}-vs-limit ${fmtRatio(worstLimit.vsLimit.med)}\n`);
      process.stdout.write(`RATIO ${op}-${size}-vs-mailauth ${fmtRatio(worstPeer.vsMailauth.med)}\n`);
      summary.push(
        `  ${pad(`${op}-${size}`, 12)} vs-limit ${fmtRatio(worstLimit.vsLimit.med)} (${worstLimit.kind}) target ≥ ${t.toFixed(2)} ` +
          `${ok ? 'pass' : 'MISS'}   vs-mailauth ${fmtRatio(worstPeer.vsMailauth.med)} (${worstPeer.kind})`,
      );
    }
  }
  process.stdout.write(`\ntargets:\n${summary.join('\n')}\n`);
  process.stdout.write(
    `\nload average at end: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}\n` +
    `${misses === 0 ? 'all targets met' : `${misses} target(s) missed`}; total ${((Date.now() - started) / 1000).toFixed(0)} s` +
      `${o.check ? '' : ' (measurement only: exit 0; --check exits 1 on a miss)'}\n`,
  );
  return o.check && misses > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code ?? 0),
  (err) => {
    process.stderr.write(`dkim-bench: ${err.stack ?? err}\n`);
    process.exit(2);
  },
);
