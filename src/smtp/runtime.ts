// The state the SMTP layer serves with: one immutable snapshot, replaced whole on SIGHUP so that a
// transaction never sees half of an old configuration and half of a new one.
// Touches nothing; src/app.ts builds snapshots.

import type { Cidr } from '../config/address-syntax.js';
import type { Config, ListenerConfig } from '../config/config.js';
import type { TxtLookup } from '../dkim/txt-lookup.js';
import type { KeyStore } from '../keys/key-store.js';
import type { UsersFile } from './users-file.js';

export interface Runtime {
  readonly config: Config;
  readonly keys: KeyStore;
  readonly users: UsersFile | null;
  readonly lookupTxt: TxtLookup;
  /** Compiled global relay_hosts and xforward_hosts. */
  readonly relayHosts: readonly Cidr[];
  readonly xforwardHosts: readonly Cidr[];
  /** Per listener (by index), the compiled lists that apply to it. */
  readonly listeners: readonly { config: ListenerConfig; relayHosts: readonly Cidr[]; xforwardHosts: readonly Cidr[] }[];
  /** The most bytes signing or verifying adds to a message: added to the SIZE declared to the next hop. */
  readonly addedHeaderBytes: number;
  /** next_hop.ca_file's certificates, read at load; null: the system's CAs. */
  readonly nextHopCa: Buffer | null;
}

/** Holds the current snapshot; readers take it once per transaction. */
export class RuntimeHolder {
  constructor(private current: Runtime) {}
  get(): Runtime {
    return this.current;
  }
  replace(next: Runtime): void {
    this.current = next;
  }
}
