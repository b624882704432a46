// `npm run send-demo`: sends one message From the demo domain (example.test) to the daemon that `npm start`
// runs on 127.0.0.1:10027, then names the copy the demo next hop stored in var/outbox/ and how to verify it.
// Touches: one SMTP connection to 127.0.0.1:10027 (or --port N), reads var/outbox/ in the working directory.
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

const OUTBOX = 'var/outbox';
const portFlag = process.argv.indexOf('--port');
const port = portFlag === -1 ? 10027 : Number(process.argv[portFlag + 1]);

let nodemailer;
try {
  nodemailer = (await import('nodemailer')).default;
} catch {
  fail('the npm packages are not installed yet: run "npm start" first (it installs and builds what is missing)');
}

const messageId = `<demo.${Date.now()}.${randomBytes(4).toString('hex')}@example.test>`;
const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, connectionTimeout: 5000 });
let info;
try {
  info = await transport.sendMail({
    from: 'Demo Sender <demo@example.test>',
    to: 'Someone <someone@example.net>',
    subject: 'dkimgate demo',
    messageId,
    text: 'Hello from the dkimgate quick start.\nThis message was signed by dkimgate with the demo key for example.test.\n',
  });
} catch (error) {
  if (error.code === 'ESOCKET' || error.code === 'ECONNECTION' || /ECONNREFUSED/.test(String(error.message))) {
    fail(`nothing answers on 127.0.0.1:${port}: start the daemon with "npm start" in another terminal, then run this again`);
  }
  fail(`the daemon refused the message: ${error.response ?? error.message}`);
}
console.log(`sent demo@example.test -> someone@example.net: ${info.response}`);

// Our 250 comes only after the next hop's 250, which comes only once the file is written: it is there now.
const stored = await findStored(messageId);
if (stored === null) {
  console.log(`no copy in ${OUTBOX}/ holds ${messageId}: the daemon relayed to another next hop (see its log)`);
} else {
  console.log(`stored by the demo next hop as ${stored}`);
  console.log(`check the signature:  npx dkimgate verify --json ${stored}`);
}

async function findStored(id) {
  let names;
  try {
    names = (await readdir(OUTBOX)).filter((n) => n.endsWith('.eml')).sort().reverse();
  } catch {
    return null;
  }
  for (const name of names) {
    const path = join(OUTBOX, name);
    const head = (await readFile(path, 'latin1')).split('\r\n\r\n', 1)[0] ?? '';
    if (head.includes(id)) return path;
  }
  return null;
}

function fail(message) {
  console.error(`send-demo: ${message}`);
  process.exit(1);
}
