// Warnings about settings that DKIMGATE_* overrides can change, so that the file and the environment judge them
// alike: next_hop.auth in clear text, auth_user without users. Pure; input: a validated Config.

import type { Config } from './config.js';
import { parseIpBytes } from './address-syntax.js';

/** The warning for next_hop.auth without TLS to a host that is not this machine; null when there is none. */
export function clearTextAuthWarning(nextHop: Config['nextHop']): string | null {
  if (nextHop.auth === null || nextHop.tls !== 'none' || isLoopback(nextHop.host)) return null;
  return `next_hop.auth without TLS: the password goes to ${nextHop.host} in clear text (and a next hop that offers AUTH only after STARTTLS refuses it, deferring every message); set next_hop.tls: starttls or implicit`;
}

function isLoopback(host: string): boolean {
  if (/^localhost\.?$/i.test(host)) return true;
  const bytes = parseIpBytes(host);
  if (bytes === null) return false;
  if (bytes.length === 4) return bytes[0] === 127;
  const mappedV4 = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (mappedV4) return bytes[12] === 127;
  return bytes.slice(0, 15).every((b) => b === 0) && bytes[15] === 1;
}

/** sign_condition auth_user (anywhere) with no users_file: nobody can authenticate, so nothing is signed. */
export function authUserWithoutUsersWarning(config: Config): string | null {
  const usesAuthUser =
    config.sign.signCondition === 'auth_user' || Object.values(config.sign.domains).some((d) => d.signCondition === 'auth_user');
  if (!usesAuthUser || config.usersFile !== null || Object.keys(config.sign.domains).length === 0) return null;
  return 'auth_user needs SMTP AUTH, but users_file is not set: no client can authenticate, so nothing will be signed';
}
