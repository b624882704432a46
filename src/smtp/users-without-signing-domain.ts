// Users of the users file whose domain limit leaves them no signing domain: they authenticate, but
// nothing they send can ever be signed. Pure; input: the parsed users file and a validated Config.

import type { Config } from '../config/config.js';
import { isAllowed } from '../policy/decide-signing.js';
import type { UsersFile } from './users-file.js';

/** One warning per such user; none when sign.domains is empty (then nothing is signed for anyone). */
export function usersWithoutSigningDomain(users: Pick<UsersFile, 'path' | 'allowedDomainsByUser'>, config: Config): string[] {
  const signing = Object.keys(config.sign.domains);
  if (signing.length === 0) return [];
  const warnings: string[] = [];
  for (const [user, limit] of users.allowedDomainsByUser) {
    if (signing.some((domain) => isAllowed(domain, limit))) continue;
    warnings.push(
      `users file ${users.path}: ${user} may sign only for ${limit.join(', ')}, and sign.domains has none of them: nothing ${user} sends is signed; add the domain to sign.domains or to ${user}'s list`,
    );
  }
  return warnings;
}
