// Test helper: a private Postfix instance (Debian's postfix package) in a temporary directory: its own
// main.cf/master.cf, queue and data directories, loopback ports only, logging to a file. Touches: the
// processes it starts (its master and that master's children, found by their MAIL_CONFIG and ended by PID).

import { execFile, execFileSync } from 'node:child_process';
import { constants, existsSync, readdirSync, readFileSync } from 'node:fs';
import { access, chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const POSTFIX_PATH = '/usr/sbin/postfix';
/** Debian's stock master.cf: the starting point of every test instance's master.cf. */
const STOCK_MASTER_CF = '/usr/share/postfix/master.cf.dist';
const STOP_DEADLINE_MS = 10_000;

/** One message in Postfix's queue, as `postqueue -j` prints it. */
export interface QueuedMessage {
  queue_name: string;
  queue_id: string;
  sender: string;
  recipients: Array<{ address: string; delay_reason?: string }>;
}

export interface PostfixInstance {
  /** The temporary directory holding everything (etc/, spool/, data/, maillog). */
  dir: string;
  configDir: string;
  /** Runs a Postfix command (postconf, postqueue, postsuper, ...) against this instance; returns stdout. */
  command(program: string, args: string[], input?: string | Buffer): Promise<string>;
  /** The messages in the queue (`postqueue -j`). */
  queue(): Promise<QueuedMessage[]>;
  /** `postfix reload`: re-reads main.cf and master.cf. */
  reload(): Promise<void>;
  /** `postqueue -f`: tries every deferred message now. */
  flush(): Promise<void>;
  /** The instance's log so far. */
  log(): string;
  /** Stops Postfix, ends every process of this instance, removes the directory. */
  stop(): Promise<void>;
}

export interface PostfixOptions {
  /** main.cf lines after the instance's own (queue_directory, inet_interfaces, logging, ...). */
  mainCf: string;
  /** The whole master.cf. */
  masterCf: string;
  /** More files for the config directory, by path relative to it (e.g. "sasl/smtpd.conf"). */
  files?: Record<string, string>;
}

/** Throws, naming the Debian package, when Postfix is not installed. */
export async function requirePostfix(): Promise<void> {
  try {
    await access(POSTFIX_PATH, constants.X_OK);
  } catch {
    throw new Error(`${POSTFIX_PATH} is missing: these tests run a real Postfix. Install the Debian package "postfix" (apt-get install postfix; .ci/run does it without starting the system's Postfix).`);
  }
  if (userInfo().uid !== 0) throw new Error('the Postfix tests start a private Postfix instance, which must run as root');
}

/** Starts a private Postfix instance. On any failure it is stopped again and the error carries its log. */
export async function startPostfix(options: PostfixOptions): Promise<PostfixInstance> {
  await requirePostfix();
  const dir = await mkdtemp(join(tmpdir(), 'dkimgate-postfix-'));
  const configDir = join(dir, 'etc');
  const queueDir = join(dir, 'spool');
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'maillog');
  // Postfix's daemons run as the postfix user and read main.cf themselves: the path must be open to them.
  await chmod(dir, 0o755);
  await mkdir(configDir, { mode: 0o755 });
  await mkdir(queueDir, { mode: 0o755 });
  await mkdir(dataDir, { mode: 0o700 });
  const postfixUid = Number(execFileSync('id', ['-u', 'postfix'], { encoding: 'utf8' }).trim());
  await chown(dataDir, postfixUid, 0);
  const ownLines = [
    '# the private instance (test/helpers/postfix-instance.ts)',
    'compatibility_level = 3.6',
    `queue_directory = ${queueDir}`,
    `data_directory = ${dataDir}`,
    'inet_interfaces = 127.0.0.1',
    'inet_protocols = ipv4',
    `maillog_file = ${logFile}`,
    `maillog_file_prefixes = ${dir}`,
    'alias_maps =',
    'alias_database =',
    'biff = no',
    // No DNS here: name the client "unknown" instead of asking for its PTR record.
    'smtpd_peername_lookup = no',
    '',
  ];
  await writeFile(join(configDir, 'main.cf'), `${ownLines.join('\n')}${options.mainCf}\n`);
  await writeFile(join(configDir, 'master.cf'), options.masterCf);
  for (const [name, content] of Object.entries(options.files ?? {})) {
    await mkdir(dirname(join(configDir, name)), { recursive: true, mode: 0o755 });
    await writeFile(join(configDir, name), content, { mode: 0o644 });
  }

  const run = async (program: string, args: string[], input?: string | Buffer): Promise<string> => {
    const child = execFileAsync(program, args, { encoding: 'utf8', env: { ...process.env, MAIL_CONFIG: configDir }, timeout: 20_000 });
    if (input !== undefined) child.child.stdin?.end(input);
    try {
      return (await child).stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`${program} ${args.join(' ')} failed: ${e.stderr || e.message}\n--- maillog ---\n${readLog(logFile)}`);
    }
  };

  let masterPid: number | null = null;
  const killEverything = (): void => {
    for (const pid of [...(masterPid === null ? [] : [masterPid]), ...instanceProcesses(configDir)]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  // If the test process ends without stop(), do not leave this Postfix behind.
  process.once('exit', killEverything);

  const stop = async (): Promise<void> => {
    process.removeListener('exit', killEverything);
    if (existsSync(join(queueDir, 'pid', 'master.pid')) && masterPid !== null && isAlive(masterPid)) {
      await run(POSTFIX_PATH, ['-c', configDir, 'stop']).catch(() => undefined);
    }
    const deadline = Date.now() + STOP_DEADLINE_MS;
    while ((masterPid !== null && isAlive(masterPid)) || instanceProcesses(configDir).length > 0) {
      if (Date.now() > deadline) {
        killEverything();
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await rm(dir, { recursive: true, force: true });
  };

  try {
    // check creates the queue directories with the owners and modes Postfix wants.
    await run(POSTFIX_PATH, ['-c', configDir, 'check']);
    await run(POSTFIX_PATH, ['-c', configDir, 'start']);
    const pidText = await readFile(join(queueDir, 'pid', 'master.pid'), 'utf8');
    masterPid = Number(pidText.trim());
    if (!Number.isInteger(masterPid) || !isAlive(masterPid)) throw new Error(`Postfix's master is not running (master.pid: "${pidText.trim()}")\n${readLog(logFile)}`);
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    dir,
    configDir,
    command: run,
    async queue() {
      const out = await run('/usr/sbin/postqueue', ['-c', configDir, '-j']);
      return out
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => JSON.parse(line) as QueuedMessage);
    },
    async reload() {
      await run(POSTFIX_PATH, ['-c', configDir, 'reload']);
    },
    async flush() {
      await run('/usr/sbin/postqueue', ['-c', configDir, '-f']);
    },
    log: () => readLog(logFile),
    stop,
  };
}

function readLog(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '(no maillog)';
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The PIDs of processes whose environment names this instance's config directory (Postfix passes MAIL_CONFIG on). */
function instanceProcesses(configDir: string): number[] {
  const wanted = `MAIL_CONFIG=${configDir}\0`;
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (`${readFileSync(`/proc/${entry}/environ`, 'latin1')}\0`.includes(wanted)) pids.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

/**
 * Debian's stock master.cf with its smtp inet line rewritten by `rewriteSmtpLine` (a loopback test port, options),
 * every service without chroot: a test instance has no jail set up.
 */
export async function stockMasterCf(rewriteSmtpLine: (text: string) => string): Promise<string> {
  return rewriteSmtpLine(await readFile(STOCK_MASTER_CF, 'utf8'))
    .split('\n')
    .map((line) => {
      if (!/^[^#\s]/.test(line)) return line;
      const fields = line.split(/\s+/);
      if (fields.length < 8) return line;
      fields[4] = 'n';
      return fields.join('  ');
    })
    .join('\n');
}
