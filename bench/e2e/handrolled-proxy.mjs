// The comparison peer of `npm run bench:e2e`: the minimal filter a Node developer would write in an afternoon —
// smtp-server in, mailauth (sign or verify), nodemailer's pooled SMTP client out. TCP noDelay on every socket.
// Usage: node handrolled-proxy.mjs '{"mode":"sign"|"verify","nextHopPort":N,"keyPem":"…","txt":"…","domain":"…","selector":"…"}'
// Prints "listening PORT" on stdout. Touches: a loopback port, the next hop.

import net from 'node:net';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const options = JSON.parse(process.argv[2]);

// nodemailer opens its sockets with net.connect: give them noDelay too (loopback + Nagle = 40 ms a message).
const connect = net.connect;
net.connect = net.createConnection = function noDelayConnect(...args) {
  const socket = connect.apply(this, args);
  socket.setNoDelay(true);
  return socket;
};

const { SMTPServer } = require('smtp-server');
const nodemailer = require('nodemailer');
const { dkimSign } = require('mailauth/lib/dkim/sign.js');
const { dkimVerify } = require('mailauth/lib/dkim/verify.js');

const keyName = `${options.selector}._domainkey.${options.domain}`;
const resolver = async (name, type) => {
  if (type === 'TXT' && name.toLowerCase() === keyName) return [[options.txt]];
  const err = new Error(`queryTxt ENOTFOUND ${name}`);
  err.code = 'ENOTFOUND';
  throw err;
};

const transport = nodemailer.createTransport({
  host: '127.0.0.1',
  port: options.nextHopPort,
  pool: true,
  maxConnections: 64,
  maxMessages: Infinity,
  ignoreTLS: true,
});

async function filter(message) {
  if (options.mode === 'sign') {
    const out = await dkimSign(message, {
      canonicalization: 'relaxed/relaxed',
      algorithm: 'rsa-sha256',
      signatureData: [{ signingDomain: options.domain, selector: options.selector, privateKey: options.keyPem }],
    });
    if (out.errors.length) throw new Error('signing failed');
    return Buffer.concat([Buffer.from(out.signatures), message]);
  }
  const out = await dkimVerify(message, { resolver });
  const results = out.results.map((r) => r.info).join('; ') || 'dkim=none';
  return Buffer.concat([Buffer.from(`Authentication-Results: handrolled.test; ${results}\r\n`), message]);
}

const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ['AUTH', 'STARTTLS'],
  logger: false,
  size: 64 * 1024 * 1024,
  onData(stream, session, callback) {
    const chunks = [];
    stream.on('data', (c) => chunks.push(c));
    stream.on('end', () => {
      filter(Buffer.concat(chunks))
        .then((raw) =>
          transport.sendMail({ envelope: { from: session.envelope.mailFrom.address, to: session.envelope.rcptTo.map((r) => r.address) }, raw }),
        )
        .then(
          () => callback(null, 'queued'),
          (err) => callback(Object.assign(new Error(err.message), { responseCode: 451 })),
        );
    });
  },
});
server.server.on('connection', (socket) => socket.setNoDelay(true));
server.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${server.server.address().port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
