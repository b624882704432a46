// Who could ever have mail signed for a configured domain: the relay_hosts in force on some listener, and
// the AUTH users (offered on some listener) allowed to sign for it. Pure; input: a validated Config and users.

import type { Config, ListenerConfig, SignCondition } from '../config/config.js';
import { isAllowed } from './decide-signing.js';
import { formatHostPort } from '../config/address-syntax.js';

/** AUTH is offered only where it can be used: with users, and over TLS unless the listener allows it in clear. */
export function offersAuth(listener: ListenerConfig, hasUsers: boolean): boolean {
  return hasUsers && (listener.tls !== null || listener.allowInsecureAuth);
}

export interface SigningReach {
  /** relay_hosts blocks in force on at least one listener (empty for auth_user domains). */
  relayHosts: string[];
  /** Users of the users file who may sign for the domain (none limited to other domains). */
  users: string[];
  /** "host:port" of the listeners that offer AUTH. */
  authListeners: string[];
}

export interface UsersSummary {
  users: readonly string[];
  /** Users limited to some domains -> those domains. */
  allowedDomainsByUser: ReadonlyMap<string, readonly string[]>;
}

/**
 * The clients that can meet `signCondition` for mail From `fromDomain` (decide-signing.ts's trust step).
 * A domain nobody can reach is configured but never used.
 */
export function signingReach(config: Config, fromDomain: string, signCondition: SignCondition, users: UsersSummary | null): SigningReach {
  const relayHosts = new Set<string>();
  const authListeners: string[] = [];
  const allowedUsers = (users?.users ?? []).filter((user) => {
    const limit = users?.allowedDomainsByUser.get(user);
    return limit === undefined || isAllowed(fromDomain, limit);
  });
  for (const listener of config.listen) {
    if (signCondition === 'can_relay') for (const cidr of listener.relayHosts ?? config.relayHosts) relayHosts.add(cidr);
    if (offersAuth(listener, allowedUsers.length > 0)) authListeners.push(formatHostPort(listener.host, listener.port));
  }
  return { relayHosts: [...relayHosts], users: authListeners.length > 0 ? allowedUsers : [], authListeners };
}

/** True when some client could have mail signed. */
export function isReachable(reach: SigningReach): boolean {
  return reach.relayHosts.length > 0 || (reach.users.length > 0 && reach.authListeners.length > 0);
}
