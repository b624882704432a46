// Deterministic benchmark messages: realistic text and MIME mail of a target size, CRLF line endings.
// Pure: a seeded PRNG drives everything, so every run (and every machine) gets the same bytes.
//
// What a relaxed body canonicalizer meets (share of non-empty body lines, default seed):
//   text: 70–78-char word-wrapped lines (a paragraph's last line shorter), a double space between
//         sentences on ≈ 6 % of lines, trailing spaces on ≈ 3 %, no tabs;
//   mime: a text part of 10 % of the size (≤ 8 KB, same style) + base64 attachments in 76-char lines,
//         so ≈ 0–1 % of lines have trailing or double spaces.

/** Target sizes of the benchmark cells, in bytes. */
export const SIZES = Object.freeze({ '2k': 2 * 1024, '20k': 20 * 1024, '200k': 200 * 1024, '2m': 2 * 1024 * 1024 });

/** Message kinds: plain text, and multipart/mixed with a text part and base64 attachments. */
export const KINDS = Object.freeze(['text', 'mime']);

/** mulberry32: small, fast, good enough for test data. Returns a function giving floats in [0, 1). */
export function createPrng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  'the of and to in is that for it as was with be by on not he this are or his from at which but have an ' +
  'they you were her she there been one all we their has would when if so no will more can out up about ' +
  'meeting report quarter budget invoice delivery schedule customer server network account project review ' +
  'attached document please regards thanks update release version deployment database migration ticket ' +
  'following question answer morning afternoon tomorrow yesterday weekend office team manager contract ' +
  'shipment warehouse payment balance statement reference number address request approval deadline ' +
  'performance latency throughput message signature verification domain selector resolver certificate ' +
  'configuration monitoring incident outage maintenance window backup restore snapshot cluster replica ' +
  'Monday Tuesday Wednesday Thursday Friday London Berlin Paris Alice Bob Carol David Eve Frank Grace'
).split(' ');

const FIRST = ['Alice', 'Bob', 'Carol', 'David', 'Erin', 'Frank', 'Grace', 'Heidi', 'Ivan', 'Judy', 'Mallory', 'Oscar'];
const LAST = ['Smith', 'Jones', 'Miller', 'Garcia', 'Martin', 'Bernard', 'Schmidt', 'Rossi', 'Nakamura', 'Okafor'];
const HOSTS = ['mx1.example.net', 'relay.example.org', 'smtp-out.example.com', 'mail.example.co.uk', 'edge3.example.io'];

function pick(rnd, list) {
  return list[Math.floor(rnd() * list.length)];
}

function int(rnd, lo, hi) {
  return lo + Math.floor(rnd() * (hi - lo + 1));
}

function person(rnd, domain) {
  const f = pick(rnd, FIRST);
  const l = pick(rnd, LAST);
  return { name: `${f} ${l}`, addr: `${f.toLowerCase()}.${l.toLowerCase()}@${domain}` };
}

function ip(rnd) {
  return `${int(rnd, 11, 223)}.${int(rnd, 0, 255)}.${int(rnd, 0, 255)}.${int(rnd, 1, 254)}`;
}

function hex(rnd, n) {
  let s = '';
  for (let i = 0; i < n; i++) s += Math.floor(rnd() * 16).toString(16);
  return s;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function rfc5322Date(sec) {
  const d = new Date(sec * 1000);
  const p = (n) => String(n).padStart(2, '0');
  return (
    `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ` +
    `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`
  );
}

/** A sentence of words with normal punctuation; occasionally a double space after the full stop. */
function sentence(rnd) {
  const n = int(rnd, 5, 16);
  const words = [];
  for (let i = 0; i < n; i++) {
    let w = pick(rnd, WORDS);
    if (i === 0) w = w[0].toUpperCase() + w.slice(1);
    else if (i < n - 1 && rnd() < 0.08) w += ',';
    else if (rnd() < 0.02) w = `"${w}"`;
    else if (rnd() < 0.02) w = `(${w})`;
    words.push(w);
  }
  const end = rnd() < 0.85 ? '.' : rnd() < 0.5 ? '?' : '!';
  return words.join(' ') + end;
}

/**
 * Plain text of at least `bytes` bytes: paragraphs of 70–78-character lines (word-wrapped), blank lines
 * between paragraphs, occasional double spaces, a few trailing spaces. CRLF line endings.
 */
export function textBody(rnd, bytes) {
  const lines = [];
  let total = 0;
  while (total < bytes) {
    const sentences = Math.min(int(rnd, 2, 7), Math.ceil((bytes - total) / 90));
    let para = '';
    // sentences joined by one space, sometimes two (old typewriter habit)
    for (let i = 0; i < sentences; i++) para += (i === 0 ? '' : rnd() < 0.1 ? '  ' : ' ') + sentence(rnd);
    // word-wrap into lines of 70–78 characters (a paragraph's last line is shorter)
    let rest = para;
    while (rest.length > 0) {
      let line;
      if (rest.length <= 78) {
        line = rest;
        rest = '';
      } else {
        let cut = rest.lastIndexOf(' ', int(rnd, 70, 78));
        if (cut < 70) cut = rest.lastIndexOf(' ', 78);
        if (cut <= 0) cut = 78;
        line = rest.slice(0, cut).trimEnd();
        rest = rest.slice(cut).trimStart();
      }
      if (rnd() < 0.03) line += rnd() < 0.7 ? ' ' : '  '; // a few trailing spaces
      lines.push(line);
      total += line.length + 2;
    }
    lines.push('');
    total += 2;
  }
  return lines.join('\r\n');
}

/** Base64 of `n` pseudo-random bytes, folded at 76 characters, CRLF line endings. */
function base64Block(rnd, n) {
  const bytes = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i += 4) {
    const v = Math.floor(rnd() * 4294967296);
    bytes[i] = v & 0xff;
    if (i + 1 < n) bytes[i + 1] = (v >>> 8) & 0xff;
    if (i + 2 < n) bytes[i + 2] = (v >>> 16) & 0xff;
    if (i + 3 < n) bytes[i + 3] = (v >>> 24) & 0xff;
  }
  const b64 = bytes.toString('base64');
  const out = [];
  for (let i = 0; i < b64.length; i += 76) out.push(b64.slice(i, i + 76));
  return out.join('\r\n');
}

/** The header section (without the blank line): Received x3, From, To, Cc, Subject, Date, Message-ID, MIME-Version. */
function headerLines(rnd, dateSec, subject) {
  const from = person(rnd, 'example.com');
  const to = [person(rnd, 'example.org'), person(rnd, 'example.net')];
  const cc = [person(rnd, 'example.org'), person(rnd, 'example.com'), person(rnd, 'example.net')];
  const lines = [];
  let t = dateSec + 9;
  for (let i = 0; i < 3; i++) {
    const by = HOSTS[i];
    const fromHost = HOSTS[i + 1];
    lines.push(
      `Received: from ${fromHost} (${fromHost} [${ip(rnd)}])\r\n` +
        `\tby ${by} (Postfix) with ESMTPS id ${hex(rnd, 10).toUpperCase()}\r\n` +
        `\tfor <${to[0].addr}>; ${rfc5322Date(t)}`,
    );
    t -= 3;
  }
  lines.push(`From: "${from.name}" <${from.addr}>`);
  lines.push(`To: ${to.map((p) => `${p.name} <${p.addr}>`).join(',\r\n  ')}`);
  lines.push(`Cc: ${cc.map((p) => `${p.name} <${p.addr}>`).join(', ')}`);
  lines.push(`Subject: ${subject}`);
  lines.push(`Date: ${rfc5322Date(dateSec)}`);
  lines.push(`Message-ID: <${hex(rnd, 16)}.${hex(rnd, 8)}@example.com>`);
  lines.push('MIME-Version: 1.0');
  return lines;
}

/**
 * Builds one message of about `bytes` bytes (within a few hundred bytes above). `kind` is 'text' or 'mime'.
 * Same (kind, bytes, seed) -> same Buffer.
 */
export function createMessage(kind, bytes, seed = 20260101) {
  const rnd = createPrng(seed ^ bytes ^ (kind === 'mime' ? 0x5a5a5a5a : 0));
  const dateSec = 1767225600 + int(rnd, 0, 86400); // 2026-01-01
  const subject = `Re: ${sentence(rnd).slice(0, 60).replace(/[.?! ]+$/, '')}`;
  const head = headerLines(rnd, dateSec, subject);
  if (kind === 'text') {
    head.push('Content-Type: text/plain; charset=utf-8; format=flowed');
    head.push('Content-Transfer-Encoding: 7bit');
    const headText = head.join('\r\n') + '\r\n\r\n';
    const body = textBody(rnd, Math.max(200, bytes - headText.length));
    return Buffer.from(headText + body, 'latin1');
  }
  if (kind !== 'mime') throw new Error(`unknown message kind ${kind}`);
  const boundary = `----=_Part_${int(rnd, 100000, 999999)}_${hex(rnd, 12)}`;
  head.push(`Content-Type: multipart/mixed;\r\n boundary="${boundary}"`);
  const headText = head.join('\r\n') + '\r\n\r\n';
  const preamble = 'This is a multi-part message in MIME format.\r\n';
  const textPartHead =
    `--${boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n`;
  // a text part of 10% of the message (at least 300, at most 8 KB); the rest in one or two attachments
  const textBytes = Math.min(8192, Math.max(300, Math.floor(bytes * 0.1)));
  const text = textBody(rnd, textBytes);
  const attachments = bytes >= 100 * 1024 ? 2 : 1;
  const names = ['report-q3.pdf', 'photo-0412.jpg'];
  const types = ['application/pdf', 'image/jpeg'];
  const attHeads = [];
  for (let i = 0; i < attachments; i++) {
    attHeads.push(
      `\r\n--${boundary}\r\nContent-Type: ${types[i]}; name="${names[i]}"\r\n` +
        `Content-Disposition: attachment; filename="${names[i]}"\r\nContent-Transfer-Encoding: base64\r\n\r\n`,
    );
  }
  const closing = `\r\n--${boundary}--\r\n`;
  const fixed =
    headText.length + preamble.length + textPartHead.length + text.length + attHeads.join('').length + closing.length;
  // base64 grows 4/3 plus CRLF every 76 characters (78 per 57 raw bytes)
  const rawTotal = Math.max(57, Math.floor(((bytes - fixed) * 57) / 78));
  let body = preamble + textPartHead + text;
  for (let i = 0; i < attachments; i++) {
    const share = i === attachments - 1 ? rawTotal - Math.floor(rawTotal / attachments) * i : Math.floor(rawTotal / attachments);
    body += attHeads[i] + base64Block(rnd, Math.max(3, share));
  }
  body += closing;
  return Buffer.from(headText + body, 'latin1');
}
