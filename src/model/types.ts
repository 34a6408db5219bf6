/**
 * The service model: plain data in keepalived's / IPVS's own vocabulary, which the keepalived.conf
 * parser (src/config) produces and the reconciler consumes. Like src/vrrp/config.ts, the keys are
 * keepalived.conf's keywords (snake_case) and times are in seconds as keepalived writes them
 * (fractions allowed where keepalived's read_timer allows them). Optional keys absent = keepalived's
 * default, which the validation (src/model/validate.ts) fills in and documents.
 *
 *   virtual_server 198.18.0.10 80 {              { pos, service: { kind: 'ip', address: '198.18.0.10', port: 80 },
 *     lb_algo wrr                                  lb_algo: 'wrr',
 *     lb_kind DR                                   lb_kind: 'DR',
 *     persistence_timeout 300                      persistence_timeout: 300,
 *     persistence_granularity 255.255.255.0        persistence_granularity: '255.255.255.0',
 *     protocol TCP                                 protocol: 'TCP',
 *     quorum 2                                     quorum: 2,
 *     sorry_server 198.18.1.9 80                   sorry_server: { pos, address: '198.18.1.9', port: 80 },
 *     real_server 198.18.1.1 80 {                  real_server: [{ pos, address: '198.18.1.1', port: 80,
 *       weight 3                                     weight: 3,
 *       TCP_CHECK { connect_timeout 3 }              checkers: [{ pos, kind: 'TCP_CHECK', config: { connect_timeout: 3 } }] }],
 *     }                                            at: { lb_algo: <pos of the lb_algo line>, ... } }
 *   }
 *
 * Aliases are resolved by the parser: lvs_sched → lb_algo, lvs_method → lb_kind (also a real
 * server's lvs_method), sorry_server_lvs_method → sorry_server.lb_kind, sorry_server_inhibit →
 * sorry_server.inhibit, nb_get_retry → retry.
 *
 * Positions: every object carries `pos` (where its keyword stands); `at` optionally holds the
 * position of each keyword that was written, so that a message about one value (e.g. "lb_algo lc is
 * approximated") points at that value's line. Messages fall back to the object's `pos`.
 */

import type { AnyCheckerConfig, TimingDefaults } from '../health/types.ts';

/** A place in a configuration file; line and col count from 1. */
export interface SourcePos {
  file: string;
  line: number;
  col: number;
}

/** 'file:line:col', the prefix of every positioned message. */
export function formatPos(p: SourcePos): string {
  return `${p.file}:${p.line}:${p.col}`;
}

/** The position of each keyword of T that was written. */
export type Positions<T> = { [K in keyof T]?: SourcePos };

/** IPVS schedulers keepalived accepts (lb_algo / lvs_sched). How xdp realises each: ./schedulers.ts */
export const LB_ALGOS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh'] as const;
export type LbAlgo = (typeof LB_ALGOS)[number];

/** Forwarding methods (lb_kind / lvs_method): NAT = IPVS masquerading, DR = direct routing, TUN = IP-in-IP. */
export const LB_KINDS = ['NAT', 'DR', 'TUN'] as const;
export type LbKind = (typeof LB_KINDS)[number];

/** keepalived accepts SCTP; the XDP datapath does not (validation refuses it with its position). */
export const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** Scheduler flags: keepalived keywords inside virtual_server (hashed, ops, flag-N, sh-*, mh-*). */
export const SCHED_FLAGS = ['hashed', 'flag-1', 'flag-2', 'flag-3', 'sh-port', 'sh-fallback', 'mh-port', 'mh-fallback'] as const;
export type SchedFlag = (typeof SCHED_FLAGS)[number];

/**
 * One checker block: its keyword and config as src/health/types.ts defines them (the kinds xlb
 * runs are health's CHECKER_KINDS; keepalived's BFD_CHECK is not one), and its position. Opaque
 * to the model: the reconciler sees only health events keyed by virtual and real server.
 */
export type CheckerConfig = AnyCheckerConfig & { pos: SourcePos };

/** Checker settings (delay_loop, connect_timeout, retry, delay_before_retry, warmup; seconds) a
 *  virtual_server or real_server gives its checkers as defaults: src/health's TimingDefaults. */
export type CheckerDefaults = TimingDefaults;

/**
 * A notify script: the command line as written between the quotes (split like keepalived does by
 * src/vrrp/script.ts's splitCommand), and the optional user and group it runs as.
 */
export interface NotifyScript {
  command: string;
  user?: string;
  group?: string;
}

/** What `virtual_server` names: an address and port (port 0: all ports), a fwmark, or a group. */
export type ServiceAddress =
  | { kind: 'ip'; address: string; port: number }
  | { kind: 'fwmark'; fwmark: number }
  | { kind: 'group'; group: string };

/** One line of a virtual_server_group. */
export type GroupEntry =
  | {
      pos: SourcePos;
      kind: 'ip';
      /** the first address */
      address: string;
      /** `198.18.0.1-10`: the last value of the last octet (IPv4) or group (IPv6, as a number);
       *  absent = the address alone */
      range_end?: number;
      port: number;
    }
  | { pos: SourcePos; kind: 'fwmark'; fwmark: number };

export interface VirtualServerGroup {
  pos: SourcePos;
  name: string;
  entries: GroupEntry[];
}

export interface SorryServer {
  pos: SourcePos;
  at?: Positions<Omit<SorryServer, 'pos' | 'at'>>;
  address: string;
  port: number;
  /** sorry_server_lvs_method; absent = the virtual server's lb_kind */
  lb_kind?: LbKind;
  /** sorry_server_inhibit: kept at weight 0 while the pool is in quorum, instead of absent */
  inhibit?: boolean;
}

export interface RealServer extends CheckerDefaults {
  pos: SourcePos;
  at?: Positions<Omit<RealServer, 'pos' | 'at'>>;
  address: string;
  /** 0 with an all-ports service */
  port: number;
  /** default 1; 0 = quiesced (keeps its connections, gets no new ones) */
  weight?: number;
  /** lvs_method of the real; absent = the virtual server's lb_kind */
  lb_kind?: LbKind;
  /** absent = the virtual server's inhibit_on_failure */
  inhibit_on_failure?: boolean;
  /** absent = the virtual server's alpha: the real starts down until its checkers succeed */
  alpha?: boolean;
  notify_up?: NotifyScript;
  notify_down?: NotifyScript;
  /** IPVS connection thresholds (upper, lower) */
  uthreshold?: number;
  lthreshold?: number;
  virtualhost?: string;
  smtp_alert?: boolean;
  checkers: CheckerConfig[];
}

export interface VirtualServer extends CheckerDefaults {
  pos: SourcePos;
  at?: Positions<Omit<VirtualServer, 'pos' | 'at'>>;
  service: ServiceAddress;
  /** default TCP */
  protocol?: Protocol;
  /** needed only when nothing else tells the family (fwmark services) */
  ip_family?: 'inet' | 'inet6';
  /** default wlc (keepalived's default) */
  lb_algo?: LbAlgo;
  /** default NAT (keepalived's default) */
  lb_kind?: LbKind;
  /** seconds; absent or 0 = not persistent. `persistence_timeout` with no value is 360 (IPVS's
   *  default), and persistence_granularity alone implies it too. */
  persistence_timeout?: number;
  /** as written: an IPv4 netmask ('255.255.255.0') or an IPv6 prefix length ('64') */
  persistence_granularity?: string;
  /** persistence_engine (sip): not realised by xdp */
  persistence_engine?: string;
  /** one-packet scheduling (UDP) */
  ops?: boolean;
  sched_flags?: SchedFlag[];
  /** default 1: the sum of the weights of the live reals the pool needs to be up */
  quorum?: number;
  /** default 0 */
  hysteresis?: number;
  quorum_up?: NotifyScript;
  quorum_down?: NotifyScript;
  /** real servers of this service go to weight 0 on failure instead of leaving */
  inhibit_on_failure?: boolean;
  /** reals start down until their checkers succeed (with quorum_down run at start) */
  alpha?: boolean;
  /** at shutdown/reload, run quorum_down and the reals' notify_down as they are removed */
  omega?: boolean;
  /** checkers run only while the node is VRRP master of the service's address */
  ha_suspend?: boolean;
  sorry_server?: SorryServer;
  virtualhost?: string;
  smtp_alert?: boolean;
  real_server: RealServer[];
}

/** global_defs settings that concern the services and their checkers. */
export interface ServiceGlobalDefs {
  /** FIFOs checker and quorum changes are written to (notify_fifo gets them too) */
  notify_fifo?: string;
  lvs_notify_fifo?: string;
  /** 'USER [GROUP]' scripts run as */
  script_user?: string;
  enable_script_security?: boolean;
  /** lvs_timeouts tcp / tcpfin / udp, seconds */
  lvs_timeouts?: { tcp?: number; tcpfin?: number; udp?: number };
  /** lvs_flush: remove every service at start */
  lvs_flush?: boolean;
  pos?: SourcePos;
}

/** What the parser produces for the services of one keepalived.conf. */
export interface ServiceConfig {
  global_defs?: ServiceGlobalDefs;
  virtual_server_group: VirtualServerGroup[];
  virtual_server: VirtualServer[];
}
