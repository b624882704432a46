// Test helper: Authentication-Results fields read by a real RFC 8601 parser, Debian's python3-authres (run with
// /usr/bin/python3, whose site packages hold it). Touches: one python3 child per call; fails loudly when authres is missing.

import { spawnSync } from 'node:child_process';

const AUTHRES_SCRIPT = `
import json, re, sys
try:
    import authres
except ImportError:
    sys.exit(3)
ctx = authres.all_features()
out = []
for field in json.load(sys.stdin):
    try:
        h = ctx.parse(field.replace('\\r\\n', ''))
        # authres keeps quoted-pairs escaped in the values it returns: undo them (tokens never hold "\\").
        out.append({'authservId': h.authserv_id, 'results': [
            {'method': r.method, 'result': r.result,
             'props': [[p.type + '.' + p.name, re.sub(r'\\\\(.)', r'\\1', p.value)] for p in r.properties]}
            for r in h.results]})
    except Exception as e:
        out.append({'error': repr(e)})
print(json.dumps(out))
`;

export interface AuthresParse {
  authservId?: string;
  results?: { method: string; result: string; props: [string, string][] }[];
  error?: string;
}

/** Parses each field (folded or not); one result per field, in order. */
export function authresParse(fields: string[]): AuthresParse[] {
  const run = spawnSync('/usr/bin/python3', ['-c', AUTHRES_SCRIPT], { input: JSON.stringify(fields), encoding: 'utf8' });
  if (run.status === 3 || run.error) {
    throw new Error(
      `python3-authres is not installed for /usr/bin/python3${run.error ? ` (${run.error.message})` : ''}; ` +
        'install it with: DEBIAN_FRONTEND=noninteractive apt-get install -y python3-authres',
    );
  }
  if (run.status !== 0) throw new Error(`authres bridge failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as AuthresParse[];
}

