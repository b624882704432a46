// Makes `npm start` and `npm test` work on a fresh clone: installs the npm packages when they are
// missing, then builds. Run by the prestart and pretest scripts.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

function run(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', shell: process.platform === 'win32' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

if (!existsSync('node_modules/.package-lock.json') || !existsSync('node_modules/typescript')) {
  console.error('dkimgate: installing npm packages (first run)');
  run('npm', ['install', '--no-audit', '--no-fund']);
}
run('npx', ['tsc', '-p', 'tsconfig.build.json']);
