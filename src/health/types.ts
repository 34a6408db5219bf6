/**
 * Health checking: the plain-data types every other part uses.
 *
 *   - Checker configs (`CheckerConfigs`): what the keepalived.conf parser (src/config) produces for
 *     each checker block, keyed by keepalived's own keywords (snake_case), times in seconds as
 *     keepalived writes them. They go into the service model as the `config` of a real server's
 *     checker (src/model/types.ts). ./config.ts resolves them, with the virtual and real server's
 *     defaults, into a `CheckerSpec` (milliseconds, every default filled in), and holds the value
 *     parsers the config parser uses (status codes, hex strings, digests, DNS types), so that each
 *     keepalived rule is written once.
 *   - `CheckResult`: what one run of a checker says.
 *   - `HealthEvent`: what the scheduler (./scheduler.ts) tells the reconciler: a real server went
 *     up or down, or its weight changed.
 *
 * keepalived 2.2.7's checker keywords (its keepalived.conf(5)); the defaults are filled in by
 * ./config.ts:
 *
 *   every checker except MISC_CHECK and FILE_CHECK: connect_ip, connect_port, bindto, bind_port,
 *     bind_if, fwmark, connect_timeout                                       (ConnectionOptions)
 *   every checker except FILE_CHECK: retry (nb_get_retry: alias, resolved by the parser),
 *     delay_before_retry, warmup, delay_loop, alpha, log_all_failures        (CheckerTiming)
 *   HTTP_GET / SSL_GET: url { path digest status_code virtualhost regex regex_no_match
 *     regex_options regex_min_offset regex_max_offset regex_stack }, virtualhost, http_protocol,
 *     fast_recovery, enable_sni
 *   UDP_CHECK: payload, require_reply, min_reply_length, max_reply_length
 *   DNS_CHECK: type, name
 *   SMTP_CHECK: helo_name, host { connection options } (deprecated by keepalived, still accepted)
 *   MISC_CHECK: misc_path, misc_timeout, misc_dynamic, user
 *   FILE_CHECK: track_file, weight [reverse], dynamic
 */

/** The checker blocks xlb runs (keepalived's BFD_CHECK needs a BFD daemon: not one of them). */
export const CHECKER_KINDS = [
  'TCP_CHECK', 'HTTP_GET', 'SSL_GET', 'UDP_CHECK', 'PING_CHECK', 'DNS_CHECK', 'SMTP_CHECK', 'MISC_CHECK', 'FILE_CHECK',
] as const;
export type HealthCheckerKind = (typeof CHECKER_KINDS)[number];

// ---------------------------------------------------------------- configs (as written)

/** keepalived's connection options of a checker. Absent = the real server's address and port. */
export interface ConnectionOptions {
  connect_ip?: string;
  connect_port?: number;
  /** source address */
  bindto?: string;
  /** source port */
  bind_port?: number;
  /** the interface the checker's packets leave by (SO_BINDTODEVICE); needed for an IPv6 link-local connect_ip */
  bind_if?: string;
  /** SO_MARK on the checker's packets */
  fwmark?: number;
  /** seconds; absent = the real/virtual server's, else 5 */
  connect_timeout?: number;
}

/** How often and how patiently a checker runs. Absent = the real server's, then the virtual server's, then keepalived's default. */
export interface CheckerTiming {
  /** failed checks retried before a live real is declared down */
  retry?: number;
  /** seconds between those retries */
  delay_before_retry?: number;
  /** seconds: the first check starts after a random delay up to this (default delay_loop; 0 = none) */
  warmup?: number;
  /** seconds between checks */
  delay_loop?: number;
  /** start down: the real is out of rotation until this checker has succeeded */
  alpha?: boolean;
  log_all_failures?: boolean;
}

/** An inclusive range of HTTP status codes, 100..599 (`status_code 200-299 404` is [[200,299],[404,404]]). */
export type StatusRange = readonly [number, number];

export interface HttpUrlConfig {
  path: string;
  /** MD5 of the body, 32 hex digits, as `genhash` prints it */
  digest?: string;
  /** default 200-299 */
  status_code?: StatusRange[];
  virtualhost?: string;
  /** a regular expression the body must match (with regex_no_match: must not match) */
  regex?: string;
  regex_no_match?: boolean;
  /** PCRE2 option names (keepalived's list); see ./http.ts for the ones JavaScript can honour */
  regex_options?: string[];
  regex_min_offset?: number;
  regex_max_offset?: number;
  /** PCRE2 JIT stack sizes: accepted, meaningless for JavaScript regular expressions */
  regex_stack?: readonly [number, number];
}

export interface HttpCheckConfig extends ConnectionOptions, CheckerTiming {
  url: HttpUrlConfig[];
  virtualhost?: string;
  /** default '1.0' */
  http_protocol?: '1.0' | '1.0C' | '1.1';
  fast_recovery?: boolean;
  /** SSL_GET: send the virtual host as TLS SNI */
  enable_sni?: boolean;
}

export interface UdpCheckConfig extends ConnectionOptions, CheckerTiming {
  /** hex string as written (keepalived's free format: `Ab12f 3 456`); default: a random payload */
  payload?: string;
  /** true: a reply is required; a hex string (x/X: any nibble): the reply must match it */
  require_reply?: true | string;
  /** default 0 */
  min_reply_length?: number;
  /** default 255 */
  max_reply_length?: number;
}

export interface DnsCheckConfig extends ConnectionOptions, CheckerTiming {
  /** A NS CNAME SOA MX TXT AAAA RRSIG DNSKEY, any case; default SOA */
  type?: string;
  /** default '.' */
  name?: string;
}

export interface SmtpCheckConfig extends ConnectionOptions, CheckerTiming {
  /** default 'smtpchecker.keepalived.org' */
  helo_name?: string;
  /** keepalived's deprecated host sub-blocks: each is checked in turn, all must pass; unset options come from the checker */
  host?: ConnectionOptions[];
}

export interface MiscCheckConfig extends CheckerTiming {
  /** the command line as written between the quotes (split as keepalived does: src/vrrp/script.ts) */
  misc_path: string;
  /** seconds; default: the virtual server's delay_loop */
  misc_timeout?: number;
  /** exit 2..255 sets the real's weight to status - 2 */
  misc_dynamic?: boolean;
  /** `user USERNAME [GROUPNAME]`; default: global script_user, else keepalived_script, else ours */
  user?: string;
  group?: string;
}

/**
 * FILE_CHECK, with its `track_file` block resolved by the parser: `file` is the block's file path;
 * `weight` / `reverse` are the FILE_CHECK's when written, else the block's (keepalived's default
 * weight is 1).
 */
export interface FileCheckConfig {
  track_file: string;
  file: string;
  weight?: number;
  reverse?: boolean;
  /** keepalived: the weight also counts toward the quorum; the weight change is reported either way */
  dynamic?: boolean;
}

export type TcpCheckConfig = ConnectionOptions & CheckerTiming;
export type PingCheckConfig = ConnectionOptions & CheckerTiming;

/** Each checker block's config, by its keyword. */
export interface CheckerConfigs {
  TCP_CHECK: TcpCheckConfig;
  HTTP_GET: HttpCheckConfig;
  SSL_GET: HttpCheckConfig;
  UDP_CHECK: UdpCheckConfig;
  PING_CHECK: PingCheckConfig;
  DNS_CHECK: DnsCheckConfig;
  SMTP_CHECK: SmtpCheckConfig;
  MISC_CHECK: MiscCheckConfig;
  FILE_CHECK: FileCheckConfig;
}

/** One checker block: its keyword and its config. */
export type AnyCheckerConfig = { [K in HealthCheckerKind]: { kind: K; config: CheckerConfigs[K] } }[HealthCheckerKind];

/** What a real server (then its virtual server) gives its checkers as defaults, seconds. Same keys as src/model's CheckerDefaults. */
export interface TimingDefaults {
  delay_loop?: number;
  connect_timeout?: number;
  retry?: number;
  delay_before_retry?: number;
  warmup?: number;
}

// ---------------------------------------------------------------- results and events

/**
 * One check's verdict. `weightDelta` is what the checker adds to the real server's configured
 * weight from now on: MISC_CHECK with misc_dynamic (exit 2..255: status - 2 - configured weight;
 * exit 0: 0) and FILE_CHECK with a weight (value x weight, x -1 with reverse). Absent = the
 * checker's contribution does not change.
 */
export interface CheckResult {
  up: boolean;
  /** why it failed (or what succeeded), for logs and events: 'connection refused', 'HTTP status 503', ... */
  reason: string;
  weightDelta?: number;
}

/** A real server's health changed. Plain data; the reconciler's input. */
export interface HealthEvent {
  /** the key the real server was added with (the reconciler's own id of virtual server + real server) */
  real: string;
  /** 'up'/'down': the real server entered that state; 'weight': its effective weight changed, state unchanged */
  type: 'up' | 'down' | 'weight';
  /** every checker of the real server passes */
  up: boolean;
  /** configured weight + the checkers' contributions, at least 0 */
  weight: number;
  /** the checker behind the change: its index among the checkers the real server was added with, kind and reason */
  checker: { index: number; kind: HealthCheckerKind; reason: string };
  /** the scheduler clock's time (ms) */
  at: number;
}

// ---------------------------------------------------------------- checkers at run time

/** A checker's timing, resolved (./config.ts): milliseconds, every default filled in. */
export interface CheckTiming {
  delayLoopMs: number;
  retry: number;
  delayBeforeRetryMs: number;
  /** the first check starts after bootstrap + a random delay in [0, warmupMs] */
  warmupMs: number;
  /** a run that has not finished by then fails with 'timeout' (connect_timeout; MISC_CHECK: misc_timeout) */
  timeoutMs: number;
  alpha: boolean;
  /** delays count from the start of a run, not its end (MISC_CHECK, as keepalived) */
  fromStart?: boolean;
}

/** A polled checker (every kind but FILE_CHECK). */
export interface Checker {
  readonly kind: HealthCheckerKind;
  /** what it checks, for logs: 'TCP 198.18.0.11:80' */
  readonly target: string;
  /**
   * Start one check. `done` is called once with the verdict, unless the returned function is
   * called first (the scheduler's timeout, or removal): then `done` is never called and whatever
   * the run holds (sockets, processes) is released.
   */
  run(done: (r: CheckResult) => void): () => void;
  /** what a run that times out means; default a failure ('timeout after N ms'). UDP_CHECK without require_reply: a success */
  readonly timeoutVerdict?: CheckResult;
  /** release what the checker keeps between runs */
  close?(): void;
}

/** A checker told of changes instead of polled (FILE_CHECK). Its verdicts apply at once: no retries. */
export interface WatchChecker {
  readonly kind: HealthCheckerKind;
  readonly target: string;
  /** Start watching: `report` now with the current verdict, then on every change. Returns stop. */
  watch(report: (r: CheckResult) => void): () => void;
}
