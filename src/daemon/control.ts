/**
 * The daemon's control interface: what a running xlb daemon tells and does on request. The
 * daemon (src/daemon/daemon.ts) implements DaemonControl; the control API (./api.ts) serves it
 * as HTTP + JSON on a unix socket, and every `xlb` command that talks to the daemon
 * (src/cli/client.ts) reads these same shapes back. Tests put a fake behind the API.
 *
 *   status()  what runs: the VRRP instances (state, priorities, VIPs) and sync groups, the
 *             virtual services with their reals (health, configured and effective weight, what
 *             the datapath holds), the last reload. Cheap: no kernel reads but the link state.
 *   stats()   counters: per datapath service and real (packets, bytes, connections, as the
 *             datapath counts them since the service was created), per VRRP instance, the
 *             health engine's totals, and the time they were read (rates are the difference of
 *             two reads over the difference of their `at`: the CLI computes them, as `ipvsadm
 *             --rate` shows the kernel's own estimates).
 *   reload()  read the configuration file again (as SIGHUP does). An invalid file changes
 *             nothing (`applied: false`) and every problem is reported with file:line:col; a
 *             valid one is applied as the difference to what runs, and its warnings reported.
 *   dump()    the VRRP instances in the schema of keepalived's JSON dump (keepalived
 *             --enable-json, SIGJSON: /tmp/keepalived.json): an array of { data, stats }, one per
 *             instance, with keepalived's field names and numeric codes (./vrrp-report.ts builds the entries).
 *
 * Every report is plain JSON-ready data: numbers, strings, booleans, arrays, objects, null (no
 * bigint, no Map, no undefined where a consumer must tell "absent" from "unknown": null is used).
 * 64-bit counters are numbers: they pass 2^53 only after years at line rate.
 *
 * Errors: a method that cannot do what is asked throws a ControlError with one of
 * CONTROL_ERROR_CODES (the API maps each to an HTTP status); any other exception is a bug of the
 * daemon and is reported as `internal`.
 */
import type { Diagnostic, ProblemClass } from '../config/diagnostics.ts';
import type { SourcePos } from '../model/types.ts';
import type { HealthCheckerKind } from '../health/types.ts';
import type { Method, Protocol } from '../datapath/driver.ts';
import type { VrrpState } from '../vrrp/fsm.ts';

/** The daemon, as the control API sees it. */
export interface DaemonControl {
  status(): Promise<StatusReport>;
  stats(): Promise<StatsReport>;
  reload(): Promise<ReloadResult>;
  dump(): Promise<KeepalivedJsonDump>;
}

// ---------------------------------------------------------------- errors

/**
 *   busy         a reload is already running (try again when it has finished)
 *   unavailable  the daemon cannot answer now (starting up, stopping)
 *   unsupported  not in this mode (e.g. -C: no VRRP, so no dump)
 *   bad_request  the request itself is wrong (the API's own: unknown route, bad method)
 *   internal     anything else (a bug): the message says what
 */
export const CONTROL_ERROR_CODES = ['busy', 'unavailable', 'unsupported', 'bad_request', 'internal'] as const;
export type ControlErrorCode = (typeof CONTROL_ERROR_CODES)[number];

export class ControlError extends Error {
  constructor(readonly code: ControlErrorCode, message: string) {
    super(message);
    this.name = 'ControlError';
  }
}

// ---------------------------------------------------------------- status

export interface StatusReport {
  /** the xlb instance name (--instance; default 'default'): names the socket and the BPF pins */
  instance: string;
  pid: number;
  /** xlb's version (package.json) */
  version: string;
  /** ISO 8601 times */
  startedAt: string;
  /** the configuration file, as given with -f */
  configFile: string;
  /** when the configuration that runs was read */
  configLoadedAt: string;
  /** what this daemon runs: -P = VRRP only, -C = checks and balancing only, else both */
  runs: { vrrp: boolean; services: boolean };
  /** the datapath driver, null when no services run (-P) */
  datapath: { kind: 'xdp' | 'ipvs' | 'fake'; failures: number } | null;
  vrrp: VrrpInstanceStatus[];
  syncGroups: SyncGroupStatus[];
  services: ServiceStatus[];
  /** the last reload (SIGHUP or the API), null before any */
  lastReload: ReloadSummary | null;
}

export interface VrrpInstanceStatus {
  name: string;
  interface: string;
  vrid: number;
  family: 'inet' | 'inet6';
  version: 2 | 3;
  state: VrrpState;
  /** the configured priority (1..255) */
  priority: number;
  /** what it advertises now: the priority moved by tracked interfaces, scripts and files */
  effectivePriority: number;
  advertIntervalMs: number;
  /** the master last heard while BACKUP (address and advertised priority), else null */
  master: { address: string; priority: number } | null;
  /** why a tracked object holds it in FAULT, else null */
  fault: string | null;
  /** virtual_ipaddress, as 'ADDRESS/PREFIX dev IFNAME' (ip address's form) */
  vips: string[];
  /** virtual_ipaddress_excluded, same form */
  excludedVips: string[];
  /** the sync group it belongs to, else null */
  syncGroup: string | null;
  /** ISO 8601 time of its last state change, null before any */
  lastTransition: string | null;
  transitions: number;
}

export interface SyncGroupStatus {
  name: string;
  state: VrrpState;
  members: string[];
}

/** One virtual_server. */
export interface ServiceStatus {
  /** keepalived's form: '[198.18.0.10]:tcp:80', a group's '[NAME]:0' */
  name: string;
  /** where it is configured */
  pos: SourcePos;
  /** lb_algo (the IPVS scheduler name) */
  scheduler: string;
  /** persistence_timeout in seconds and the granularity as a prefix length, else null */
  persistence: { timeout: number; granularity: number | null } | null;
  quorum: { required: number; hysteresis: number; up: boolean; liveWeight: number };
  /** the sorry server takes the new connections (no quorum) */
  sorryActive: boolean;
  reals: RealStatus[];
  sorryServer: RealStatus | null;
  /** what the datapath holds for it: one entry per address/port/protocol (a group has several) */
  endpoints: EndpointStatus[];
}

export type RealHealthState = 'up' | 'down';

export interface RealStatus {
  /** keepalived's form: '[198.18.1.1]:tcp:80' */
  name: string;
  address: string;
  port: number;
  method: Method;
  /** 'up' when every checker passes (a real without checkers is always up) */
  health: RealHealthState;
  /** the weight configured */
  configuredWeight: number;
  /** configured + the checkers' dynamic weight (MISC_CHECK misc_dynamic, FILE_CHECK), at least 0 */
  weight: number;
  /** ha_suspend: its checkers are paused while this node does not own the service's address */
  checking: boolean;
  checkers: CheckerStatus[];
}

export interface CheckerStatus {
  kind: HealthCheckerKind;
  /** what it checks: 'TCP 198.18.1.1:80' */
  target: string;
  up: boolean;
  /** false until its first verdict */
  hasRun: boolean;
  /** the last verdict's reason ('' before any) */
  reason: string;
}

/** A datapath service: the IPVS-like service the driver holds, with its reals as programmed. */
export interface EndpointStatus {
  address: string;
  /** 0: all ports */
  port: number;
  protocol: Protocol;
  reals: { address: string; port: number; method: Method; weight: number }[];
}

// ---------------------------------------------------------------- stats

export interface Counters {
  packets: number;
  bytes: number;
  /** connections scheduled (new flows), not connections alive */
  connections: number;
}

export interface StatsReport {
  /** when the counters were read, ms since the epoch (for rates between two reads) */
  at: number;
  /** one per datapath service (a group's virtual_server has several) */
  services: EndpointStats[];
  vrrp: VrrpInstanceStats[];
  /** the health engine's totals since start, null when no checks run (-P) */
  health: HealthStats | null;
  /** the forwarder's global counters by name (xdp: rx, tx, drop reasons, ...), empty when none */
  datapath: Record<string, number>;
}

export interface EndpointStats {
  /** the owning virtual_server's name (ServiceStatus.name) */
  service: string;
  address: string;
  port: number;
  protocol: Protocol;
  counters: Counters;
  reals: { address: string; port: number; counters: Counters }[];
}

export interface VrrpInstanceStats {
  name: string;
  state: VrrpState;
  advertsReceived: number;
  advertsSent: number;
  becameMaster: number;
  releasedMaster: number;
  priorityZeroSent: number;
  priorityZeroReceived: number;
  transitions: number;
  /** by 'A->B' (keepalived's state names: 'BACKUP->MASTER') */
  byTransition: Record<string, number>;
  /** adverts rejected, by reason */
  rejected: Record<string, number>;
  garpsSent: number;
  sendErrors: number;
}

export interface HealthStats {
  /** checks started */
  runs: number;
  /** checks that failed (timeouts included) */
  failures: number;
  timeouts: number;
  /** health events, by type */
  events: { up: number; down: number; weight: number };
}

// ---------------------------------------------------------------- reload

/** One problem of a configuration, where it is: src/config/diagnostics.ts's Diagnostic. */
export interface ReloadProblem {
  severity: 'error' | 'warning';
  pos: SourcePos;
  message: string;
  /** keepalived's class of the problem (config_err_t), when the reader gave one */
  class?: ProblemClass;
}

export interface ReloadResult {
  /** true: the new configuration runs; false: it had errors and the old one still runs */
  applied: boolean;
  configFile: string;
  /** every error and warning, in file order */
  problems: ReloadProblem[];
  /** what the reload changed (empty when not applied): names of virtual servers and VRRP instances */
  changes: {
    servicesAdded: string[];
    servicesRemoved: string[];
    servicesChanged: string[];
    instancesAdded: string[];
    instancesRemoved: string[];
    instancesChanged: string[];
  };
  /** ISO 8601 */
  at: string;
  durationMs: number;
}

export interface ReloadSummary {
  at: string;
  applied: boolean;
  errors: number;
  warnings: number;
}

/** A ReloadProblem from a reader's or validator's diagnostic (the same fields). */
export function reloadProblem(d: Pick<Diagnostic, 'severity' | 'pos' | 'message'> & { class?: ProblemClass }): ReloadProblem {
  const p: ReloadProblem = { severity: d.severity, pos: { file: d.pos.file, line: d.pos.line, col: d.pos.col }, message: d.message };
  if (d.class !== undefined) p.class = d.class;
  return p;
}

/** The summary status() keeps of a reload. */
export function reloadSummary(r: ReloadResult): ReloadSummary {
  return {
    at: r.at, applied: r.applied,
    errors: r.problems.filter((p) => p.severity === 'error').length,
    warnings: r.problems.filter((p) => p.severity === 'warning').length,
  };
}

// ---------------------------------------------------------------- keepalived's JSON dump

/**
 * keepalived's JSON dump (vrrp_json.c, json_version 1): one object per VRRP instance. Field names
 * and codes are keepalived's: `state` and `wantstate` are its numbers (KEEPALIVED_STATE_CODES),
 * times are seconds (last_transition: since the epoch, with microseconds), booleans that
 * keepalived writes as 0/1 stay numbers. Arrays keepalived leaves out when empty are absent.
 */
export type KeepalivedJsonDump = KeepalivedJsonInstance[];

export interface KeepalivedJsonInstance {
  data: KeepalivedJsonData;
  stats: KeepalivedJsonStats;
}

/** keepalived's VRRP_STATE_* codes (vrrp.h). */
export const KEEPALIVED_STATE_CODES: Readonly<Record<VrrpState, number>> = { INIT: 0, BACKUP: 1, MASTER: 2, FAULT: 3, STOP: 98 };

export interface KeepalivedJsonData {
  iname: string;
  dont_track_primary: number;
  skip_check_adv_addr: number;
  strict_mode: number;
  vmac_ifname?: string;
  ifp_ifname?: string;
  master_priority: number;
  last_transition: number;
  garp_delay: number;
  garp_refresh: number;
  garp_rep: number;
  garp_refresh_rep: number;
  garp_lower_prio_delay: number;
  garp_lower_prio_rep: number;
  lower_prio_no_advert: number;
  higher_prio_send_advert: number;
  vrid: number;
  base_priority: number;
  effective_priority: number;
  vipset: boolean;
  promote_secondaries: boolean;
  adver_int: number;
  master_adver_int: number;
  accept?: number;
  nopreempt: boolean;
  preempt_delay: number;
  state: number;
  wantstate: number;
  version: number;
  smtp_alert: boolean;
  notify_deleted: boolean;
  script_backup?: string;
  script_master?: string;
  script_fault?: string;
  script_stop?: string;
  script_deleted?: string;
  script?: string;
  script_master_rx_lower_pri?: string;
  vips?: string[];
  evips?: string[];
  vroutes?: string[];
  vrules?: string[];
  track_ifp?: string[];
  track_script?: string[];
  auth_type?: number;
  auth_data?: string;
}

export interface KeepalivedJsonStats {
  advert_rcvd: number;
  advert_sent: number;
  become_master: number;
  release_master: number;
  packet_len_err: number;
  advert_interval_err: number;
  ip_ttl_err: number;
  invalid_type_rcvd: number;
  addr_list_err: number;
  invalid_authtype: number;
  authtype_mismatch?: number;
  auth_failure?: number;
  pri_zero_rcvd: number;
  pri_zero_sent: number;
}

// ---------------------------------------------------------------- where the socket is

/** The control socket of an xlb instance: /run/xlb/<instance>.sock. */
export function defaultSocketPath(instance: string): string {
  return `/run/xlb/${instance}.sock`;
}

/** An instance name names files and BPF pins: letters, digits, '.', '_', '-', at most 64, not starting with '.'. */
export function checkInstanceName(name: string): string {
  if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/.test(name)) {
    throw new Error(`instance name ${JSON.stringify(name)}: use 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'`);
  }
  return name;
}

export const DEFAULT_INSTANCE = 'default';

/**
 * The path of a request target ('/v1/status?x' -> '/v1/status'); null when it cannot be read
 * (a malformed target must not throw inside a server's request handler).
 */
export function requestPath(target: string | undefined): string | null {
  try {
    return new URL(target ?? '/', 'http://xlb').pathname;
  } catch {
    return null;
  }
}

/**
 * Where the optional metrics listener (./metrics.ts) listens, as `xlb run --metrics` takes it:
 * 'HOST:PORT', '[IPV6]:PORT' or ':PORT' (all addresses) -> host and port; a clear error otherwise.
 * (Here rather than in ./metrics.ts, so that parsing the command line does not load prom-client.)
 */
export function parseListenAddress(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw new Error(`metrics address ${JSON.stringify(text)}: expected HOST:PORT, [IPV6]:PORT or :PORT with a port in 1..65535`);
  }
  return { host: m[1] ?? (m[2] || '::'), port };
}

