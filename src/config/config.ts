// The validated configuration as the rest of dkimgate sees it (camelCase mirror of the YAML, interface.md §3).
// Types only; defaults live in defaults.ts, the YAML shape in schema.ts.

export type ListenProtocol = 'smtp' | 'lmtp';
export type NextHopTls = 'none' | 'starttls' | 'implicit';
export type SignCondition = 'auth_user' | 'can_relay';
export type SignDigest = 'rsa-sha256' | 'rsa-sha1' | 'ed25519-sha256';
export type Canonicalization = 'simple' | 'relaxed';
export type OnTemperror = 'accept' | 'tempfail';

export interface TlsFiles {
  /** PEM private key file of the listener's certificate. */
  key: string;
  /** PEM certificate (chain) file. */
  cert: string;
}

export interface ListenerConfig {
  /** IP address (or host name) to bind. */
  host: string;
  /** TCP port; 0 picks a free port (tests). */
  port: number;
  protocol: ListenProtocol;
  /** STARTTLS is offered when set. */
  tls: TlsFiles | null;
  /** CIDRs whose clients can_relay on this listener; null: the global `relayHosts`. */
  relayHosts: string[] | null;
  /** Proxies whose XFORWARD this listener accepts; null: the global `xforwardHosts`. */
  xforwardHosts: string[] | null;
  /** Offer AUTH without TLS on this listener. */
  allowInsecureAuth: boolean;
  /** Bare LF in a message: turned into CRLF, or refused with 550 5.5.2. A bare CR or NUL is always refused. */
  lineEndings: 'normalize' | 'reject';
}

export interface NextHopConfig {
  host: string;
  port: number;
  tls: NextHopTls;
  /** CA certificates (PEM file) for the next hop's certificate; null: the system's CAs. */
  caFile: string | null;
  auth: { user: string; pass: string } | null;
}

export interface LimitsConfig {
  /** Bytes; advertised as SIZE. */
  maxMessageSize: number;
  /** Bytes of the header section. */
  maxHeaderSize: number;
  /** Header fields per message: each costs memory and a look at its name, whatever its size. */
  maxHeaderFields: number;
  /** Concurrent connections. */
  maxClients: number;
  /** Seconds of client silence. */
  socketTimeout: number;
  /** Seconds a whole client session may last. */
  sessionTimeout: number;
  /** Bytes per second a client must keep up while it sends a line or a message (0: no floor). */
  minDataRate: number;
  /** Seconds over which min_data_rate is measured. */
  dataRateWindow: number;
  /** Recipients per transaction. */
  maxRecipients: number;
  /** Failed AUTH attempts per client address within auth_failure_window. */
  maxAuthFailures: number;
  /** Seconds a failed AUTH attempt counts against its client address. */
  authFailureWindow: number;
  /** Seconds for the next hop to answer any command. */
  nextHopTimeout: number;
  /** Seconds SIGTERM waits for transactions in flight. */
  drainTimeout: number;
  /** Bodies larger than this many bytes are spooled to a temporary file. */
  spillThreshold: number;
  /** Directory of spool files; null: the system's temporary directory. */
  spoolDir: string | null;
}

export interface VerifyConfig {
  enabled: boolean;
  maxSignatures: number;
  minKeyBits: number;
  allowSha1: boolean;
  /** Seconds. */
  clockSkew: number;
}

export interface RequireRule {
  /** Author (From) domain, lower case, A-labels. */
  domain: string;
  /** The passing signature's d= must be aligned with the author domain. */
  aligned: boolean;
}

export interface PolicyConfig {
  onTemperror: OnTemperror;
  require: RequireRule[];
  dryRun: boolean;
}

/** The sign options a domain or one of its selectors may override (Momentum dkim_sign names). */
export interface SignOptions {
  digest: SignDigest;
  headerCanon: Canonicalization;
  bodyCanon: Canonicalization;
  /** Momentum headerlist syntax, whitespace removed, e.g. "From:From:Subject:Cc?". */
  headerlist: string;
  /** Key path template: %{d} signing domain, %{s} selector. */
  key: string;
  /** i= template (%{d} allowed), or null for no i=. */
  identity: string | null;
  /** Hours until x=; 0: no x=. */
  lifetime: number;
  bodyLengthLimit: boolean;
  copyHeaders: boolean;
}

export interface SelectorConfig {
  selector: string;
  /** Options set on this selector entry only. */
  overrides: Partial<SignOptions>;
}

export interface DomainSignConfig {
  /** Sign as this (parent) domain: d= and %{d} become it. */
  baseDomain: string | null;
  /** Per-domain sign_condition, or null for the global one. */
  signCondition: SignCondition | null;
  /** Options set on the domain (apply to all its selectors). */
  overrides: Partial<SignOptions>;
  /** One or more selectors signed side by side, in configuration order. */
  selectors: SelectorConfig[];
}

export interface SignConfig extends SignOptions {
  signCondition: SignCondition;
  /** Keyed by From domain (lower case, A-labels). */
  domains: Record<string, DomainSignConfig>;
}

export interface DnsConfig {
  /** "IP", "IP:PORT" or "[IPv6]:PORT"; empty: the system's resolvers. */
  servers: string[];
  zoneFiles: string[];
  /** Milliseconds per lookup. */
  timeout: number;
  /** Keys held in the cache. */
  cacheSize: number;
  /** Seconds. */
  cacheTtl: number;
  /** Seconds. */
  negativeTtl: number;
}

export interface MetricsConfig {
  host: string;
  port: number;
}

export interface Config {
  authservId: string;
  listen: ListenerConfig[];
  nextHop: NextHopConfig;
  /** CIDRs (normalized, always with a prefix length). */
  relayHosts: string[];
  xforwardHosts: string[];
  usersFile: string | null;
  limits: LimitsConfig;
  verify: VerifyConfig;
  policy: PolicyConfig;
  sign: SignConfig;
  dns: DnsConfig;
  metrics: MetricsConfig | null;
}

/** One configuration problem; `line` is 1-based (0 when the problem has no place in a file). */
export interface ConfigProblem {
  file: string;
  line: number;
  /** e.g. "sign.domains.example.com.digest" or "listen[0].port"; "" for the whole file. */
  keyPath: string;
  message: string;
}

/** One key to sign with, all options resolved (global < domain < selector entry). */
export interface SigningSelector {
  /** The From domain this entry serves. */
  fromDomain: string;
  /** d=: base_domain or the From domain. */
  signingDomain: string;
  selector: string;
  /** Key file path (template expanded; relative paths are relative to the working directory). */
  keyPath: string;
  algorithm: SignDigest;
  headerCanon: Canonicalization;
  bodyCanon: Canonicalization;
  headerList: string;
  /** i= with %{d} expanded, or null. */
  agentId: string | null;
  lifetimeHours: number;
  bodyLengthLimit: boolean;
  copyHeaders: boolean;
  /** The domain's sign_condition, else the global one. */
  signCondition: SignCondition;
  /** Where this entry is configured, e.g. "sign.domains.example.com.selectors[1]" (for messages). */
  origin: string;
}
